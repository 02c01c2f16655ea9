"""Shape ops: reshapes and views, transposes, slicing and indexing, padding, joining and splitting,
broadcasting and its adjoint, ``flip``/``roll``/``repeat``, ``tril``/``triu``, ``masked_fill``.

Slice bounds are read from both traces: a bound equal in both is a constant; one that moved with a
dynamic size is kept at the same distance from the end (ONNX counts negative bounds from the end);
any other is refused.
"""
from __future__ import annotations

import numpy as np

from distgrad.ops import broadcast as bc
from distgrad.ops import indexing as ix
from distgrad.ops import joining as jn
from distgrad.ops import shape as sh
from distgrad.ops.triangular import Triangle
from distgrad.onnx.graph import INT_MAX
from distgrad.onnx.registry import translates
from distgrad.onnx.values import host
from distgrad.tensor import Tensor


@translates(sh.View, sh.ReshapeCopy, varying=(1,))
def _view(e):
    x = e.args[0]
    return e.reshape(e.input(0), e.dims(x), e.out_dims())


@translates(sh.Permute)
def _permute(e):
    return e.add("Transpose", [e.input(0)], perm=list(e.args[1]))


@translates(bc.BroadcastTo, varying=(1,))
def _broadcast_to(e):
    x = e.args[0]
    in_dims, out_dims = e.dims(x), e.out_dims()
    lead = len(out_dims) - len(in_dims)
    # Expand broadcasts the input's own dims: a 1 asks for no size where the input has the dim already
    target = [1 if i >= lead and in_dims[i - lead] == d and not isinstance(d, int) else d
              for i, d in enumerate(out_dims)]
    return e.add("Expand", [e.input(0), e.shape(target)])


@translates(bc.SumTo, varying=(1,))
def _sum_to(e):
    x, target = e.args
    axes = bc._reduced_axes(x.shape, tuple(target))
    in_dims = e.dims(x)
    summed = e.add("ReduceSum", [e.input(0), e.ints(axes)], keepdims=1)
    kept = tuple(1 if i in axes else d for i, d in enumerate(in_dims))
    return e.reshape(summed, kept, e.out_dims())


# --- slicing ----------------------------------------------------------------------------------------
def bound(e, first: int, second: int, size1: int, size2: int, end: bool) -> int:
    """An ONNX slice bound for a position that was ``first`` (of ``size1``) and ``second`` (of ``size2``)."""
    if first == second:
        return first
    if first - size1 == second - size2:  # the same distance from the end
        return INT_MAX if first == size1 and end else first - size1
    e.unsupported(f"a slice bound moves with a dynamic size ({first} of {size1}, then {second} of {size2}) in a way "
                  "ONNX cannot reproduce")


def _slices(e, x, items1, items2):
    """Slice, Squeeze and Unsqueeze for a key of ints, slices and None (Ellipsis expanded)."""
    shape1, shape2 = x.shape, e.second.args[0].shape
    starts, ends, axes, steps, squeezed, inserted = [], [], [], [], [], []
    axis = out = 0
    for k1, k2 in zip(items1, items2):
        if k1 is None:
            inserted.append(out)
            out += 1
            continue
        n1, n2 = shape1[axis], shape2[axis]
        if isinstance(k1, int):
            i1, i2 = k1 % n1, k2 % n2
            start = bound(e, i1, i2, n1, n2, end=False)
            starts.append(start)
            ends.append(INT_MAX if start == -1 else start + 1)
            axes.append(axis)
            steps.append(1)
            squeezed.append(axis)
        elif k1 != slice(None):
            (a1, b1, s1), (a2, b2, _) = k1.indices(n1), k2.indices(n2)
            if s1 < 0:
                if n1 != n2:
                    e.unsupported("a slice with a negative step along a dynamic axis")
                starts.append(a1)
                ends.append(-INT_MAX if b1 < 0 else b1)
            else:
                starts.append(bound(e, a1, a2, n1, n2, end=False))
                ends.append(bound(e, b1, b2, n1, n2, end=True))
            axes.append(axis)
            steps.append(s1)
            out += 1
        else:
            out += 1
        axis += 1
    name = e.input(0)
    if axes:
        name = e.add("Slice", [name, e.ints(starts), e.ints(ends), e.ints(axes), e.ints(steps)])
    if squeezed:
        name = e.add("Squeeze", [name, e.ints(squeezed)])
    if inserted:
        name = e.add("Unsqueeze", [name, e.ints(inserted)])
    return name if name != e.input(0) else e.add("Identity", [name])


def _expanded(key: tuple, ndim: int) -> list:
    """``key`` with its Ellipsis (if any) replaced by full slices and full slices added up to ``ndim``."""
    used = sum(1 for k in key if k is not None and k is not Ellipsis)
    items = []
    for k in key:
        items += [slice(None)] * (ndim - used) if k is Ellipsis else [k]
    if Ellipsis not in key:
        items += [slice(None)] * (ndim - used)
    return items


@translates(ix.BasicIndex, varying=(1,))
def _basic_index(e):
    x = e.args[0]
    return _slices(e, x, _expanded(e.args[1], x.ndim), _expanded(e.second.args[1], x.ndim))


@translates(sh.Narrow, varying=(2, 3))
def _narrow(e):
    x, dim, start, length = e.args
    _, _, start2, length2 = e.second.args
    key1 = [slice(None)] * dim + [slice(start, start + length)]
    key2 = [slice(None)] * dim + [slice(start2, start2 + length2)]
    return _slices(e, x, key1 + [slice(None)] * (x.ndim - dim - 1), key2 + [slice(None)] * (x.ndim - dim - 1))


@translates(sh.Select, varying=(2,))
def _select(e):
    x, dim, index = e.args
    rest = [slice(None)] * (x.ndim - dim - 1)
    return _slices(e, x, [slice(None)] * dim + [index] + rest, [slice(None)] * dim + [e.second.args[2]] + rest)


def _gather_axis(key: tuple, ndim: int):
    """The dim of a ``gather`` key (``ops.indexing._gather_key``: one index array, and along every other dim d
    the positions ``arange(n)`` shaped to broadcast from dim d), or None for any other key."""
    if len(key) != ndim or not all(hasattr(k, "shape") for k in key):
        return None

    def positions(d, k):
        return k.shape == (k.size,) + (1,) * (ndim - d - 1) and np.array_equal(host(k).reshape(-1), np.arange(k.size))
    rest = [d for d, k in enumerate(key) if not positions(d, k)]
    return rest[0] if len(rest) == 1 else None


@translates(ix.AdvancedIndex)
def _advanced_index(e):
    x, key = e.args
    axis = _gather_axis(key, x.ndim)
    if axis is not None:
        return e.add("GatherElements", [e.input(0), e.name(key[axis], np.int64)], axis=axis)
    arrays = [(i, k) for i, k in enumerate(key) if not isinstance(k, slice) and k is not Ellipsis]
    if (len(arrays) != 1 or any(k is not Ellipsis and k != slice(None) for i, k in enumerate(key) if i != arrays[0][0])
            or getattr(arrays[0][1], "dtype", np.dtype(bool)).kind not in "iu"):
        e.unsupported("only indexing with one integer tensor along one dim (x[idx], x[:, idx], index_select) is "
                      "translated (boolean masks give sizes that depend on the data)")
    axis = arrays[0][0] if Ellipsis not in key[:arrays[0][0]] else x.ndim - (len(key) - arrays[0][0])
    return e.add("Gather", [e.input(0), e.name(arrays[0][1])], axis=axis)


@translates(ix.MaskedFill)
def _masked_fill(e):
    x, mask, value = e.args
    dtype = e.out_dtype()
    fill = e.name(value, dtype) if isinstance(value, Tensor) else e.scalar(value, dtype)
    return e.add("Where", [e.name(mask, np.bool_), fill, e.input(0)])


# --- padding, copies that move data ------------------------------------------------------------------
@translates(sh.ConstantPad)
def _constant_pad(e):
    x, widths, value = e.args
    name = e.input(0)
    crops = [(d, max(-b, 0), max(-a, 0)) for d, (b, a) in enumerate(widths) if b < 0 or a < 0]
    if crops:
        name = e.add("Slice", [name, e.ints([c[1] for c in crops]), e.ints([-c[2] if c[2] else INT_MAX for c in crops]),
                               e.ints([c[0] for c in crops])])
    pads = [max(b, 0) for b, _ in widths] + [max(a, 0) for _, a in widths]
    if not any(pads):
        return name if crops else e.add("Identity", [name])
    return e.add("Pad", [name, e.ints(pads), e.scalar(value, e.out_dtype())], mode="constant")


@translates(sh.Flip)
def _flip(e):
    dims = list(e.args[1])
    if not dims:
        return e.add("Identity", [e.input(0)])
    n = len(dims)
    return e.add("Slice", [e.input(0), e.ints([-1] * n), e.ints([-INT_MAX] * n), e.ints(dims), e.ints([-1] * n)])


@translates(sh.Roll)
def _roll(e):
    x, shifts, dims = e.args
    name = e.input(0)
    for shift, dim in zip(shifts, dims):
        size = x.shape[dim]
        if not isinstance(e.dims(x)[dim], int):
            e.unsupported("roll along a dynamic axis")
        shift %= max(size, 1)
        if shift:
            tail = e.add("Slice", [name, e.ints([size - shift]), e.ints([INT_MAX]), e.ints([dim])])
            head = e.add("Slice", [name, e.ints([0]), e.ints([size - shift]), e.ints([dim])])
            name = e.add("Concat", [tail, head], axis=dim)
    return name if name != e.input(0) else e.add("Identity", [name])


@translates(sh.Repeat)
def _repeat(e):
    x, repeats = e.args
    name = e.input(0)
    lead = len(repeats) - x.ndim
    if lead:
        name = e.add("Unsqueeze", [name, e.ints(range(lead))])
    return e.add("Tile", [name, e.ints(repeats)])


@translates(Triangle)
def _triangle(e):
    _, diagonal, lower = e.args
    return e.add("Trilu", [e.input(0), e.scalar(diagonal, np.int64)], upper=0 if lower else 1)


# --- joining and splitting ------------------------------------------------------------------------
@translates(jn.Cat)
def _cat(e):
    dtype = e.out_dtype()
    return e.add("Concat", [e.name(t, dtype) for t in e.args], axis=e.kwargs["dim"])


@translates(jn.Stack)
def _stack(e):
    dtype, dim = e.out_dtype(), e.kwargs["dim"]
    axes = e.ints([dim])
    return e.add("Concat", [e.add("Unsqueeze", [e.name(t, dtype), axes]) for t in e.args], axis=dim)


@translates(jn.Split)
def _split(e):
    x, dim, sizes = e.args
    if len(sizes) == 1:
        return (e.add("Identity", [e.input(0)]),)
    return tuple(e.add("Split", [e.input(0), e.ints(sizes)], outputs=len(sizes), axis=dim))


@translates(jn.Unbind)
def _unbind(e):
    x, dim = e.args
    count = x.shape[dim]
    axes = e.ints([dim])
    if count == 1:
        return (e.add("Squeeze", [e.input(0), axes]),)
    pieces = e.add("Split", [e.input(0), e.ints([1] * count)], outputs=count, axis=dim)
    return tuple(e.add("Squeeze", [p, axes]) for p in pieces)
