"""Joining and splitting tensors along a dim (``cat stack split chunk unbind``) and ``pad``, with
PyTorch's names and errors.

Each pair undoes the other in backward: ``cat``'s gradient is a ``split``, ``split``'s a ``cat``,
``stack``'s an ``unbind`` and ``unbind``'s a ``stack``. The pieces from ``split``/``chunk``/``unbind``
are views of the input; ``cat`` and ``stack`` copy.
"""
from __future__ import annotations

import itertools

from distgrad.autograd.function import Function
from distgrad.ops.autocasting import autocast_op
from distgrad.ops.broadcast import broadcast_to
from distgrad.ops.dims import wrap_dim
from distgrad.ops.shape import ConstantPad, flip, index_along, narrow
from distgrad.promotion import cast, result_type
from distgrad.tensor import Tensor, bind_methods

__all__ = ["cat", "concat", "concatenate", "stack", "split", "chunk", "unbind", "pad"]


# --- joining -------------------------------------------------------------------------------------
class Cat(Function):
    @staticmethod
    def forward(ctx, *tensors, dim):
        ctx.dim, ctx.sizes = dim, tuple(t.shape[dim] for t in tensors)
        return tensors[0]._xp.concatenate(_promoted(tensors), axis=dim)

    @staticmethod
    def backward(ctx, grad):
        return split(grad, ctx.sizes, ctx.dim)


def _check_tensors(op: str, tensors) -> None:
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}(): argument 'tensors' must be a sequence of Tensors, but element {i} is "
                            f"{type(t).__name__}")


def _promoted(tensors) -> list:
    """The arrays in the tensors' PyTorch result dtype (``cat`` of float16 and int64 is float16)."""
    dtype = result_type(*tensors)
    return [cast(t, dtype) for t in tensors]


@autocast_op()
def cat(tensors, dim: int = 0) -> Tensor:
    """The tensors joined along the existing dim ``dim``; all other sizes must match, dtypes promote."""
    tensors = tuple(tensors)
    if not tensors:
        raise ValueError("cat(): expected a non-empty list of Tensors")
    _check_tensors("cat", tensors)
    first = tensors[0]
    for i, t in enumerate(tensors):
        if t.ndim == 0:
            raise RuntimeError(f"zero-dimensional tensor (at position {i}) cannot be concatenated")
        if t.ndim != first.ndim:
            raise RuntimeError(f"Tensors must have same number of dimensions: got {first.ndim} and {t.ndim}")
    dim = wrap_dim(dim, first.ndim)
    for i, t in enumerate(tensors):
        for d, (expected, got) in enumerate(zip(first.shape, t.shape)):
            if d != dim and expected != got:
                raise RuntimeError(f"Sizes of tensors must match except in dimension {dim}. Expected size "
                                   f"{expected} but got size {got} for tensor number {i} in the list.")
    return Cat.apply(*tensors, dim=dim)


concat = concatenate = cat


class Stack(Function):
    @staticmethod
    def forward(ctx, *tensors, dim):
        ctx.dim = dim
        return tensors[0]._xp.stack(_promoted(tensors), axis=dim)

    @staticmethod
    def backward(ctx, grad):
        return unbind(grad, ctx.dim)


@autocast_op()
def stack(tensors, dim: int = 0) -> Tensor:
    """The tensors, all of one shape, joined along a new dim ``dim``."""
    tensors = tuple(tensors)
    if not tensors:
        raise RuntimeError("stack expects a non-empty TensorList")
    _check_tensors("stack", tensors)
    for i, t in enumerate(tensors):
        if t.shape != tensors[0].shape:
            raise RuntimeError(f"stack expects each tensor to be equal size, but got {list(tensors[0].shape)} "
                               f"at entry 0 and {list(t.shape)} at entry {i}")
    return Stack.apply(*tensors, dim=wrap_dim(dim, tensors[0].ndim + 1))


# --- splitting -----------------------------------------------------------------------------------
class Split(Function):
    """Consecutive pieces of input 0, each a view sharing its version counter (``is_view`` would
    share it with output 0 alone), joined again by one ``cat`` in backward."""

    @staticmethod
    def forward(ctx, a, dim, sizes):
        ctx.dim = dim
        starts = (0,) + tuple(itertools.accumulate(sizes))
        return tuple(_view_of(a, a.array[index_along(dim, slice(s, s + n))]) for s, n in zip(starts, sizes))

    @staticmethod
    def backward(ctx, *grads):
        return cat(grads, ctx.dim), None, None


class Unbind(Function):
    """Every entry of dim ``dim``, each a view of input 0."""

    @staticmethod
    def forward(ctx, a, dim):
        ctx.dim = dim
        return tuple(_view_of(a, a.array[index_along(dim, i)]) for i in range(a.shape[dim]))

    @staticmethod
    def backward(ctx, *grads):
        return stack(grads, ctx.dim), None


def _view_of(a: Tensor, data) -> Tensor:
    out = Tensor(data)
    out._version = a._version
    return out


def split(tensor: Tensor, split_size_or_sections, dim: int = 0) -> tuple:
    """Views of consecutive pieces along ``dim``: each ``split_size`` long (the last may be shorter),
    or as long as the given list of ``sections``."""
    dim = wrap_dim(dim, tensor.ndim)
    size = tensor.shape[dim]
    if isinstance(split_size_or_sections, (tuple, list)):
        sizes = tuple(split_size_or_sections)
        if sum(sizes) != size or any(n < 0 for n in sizes):
            raise RuntimeError(f"split_with_sizes expects split_sizes to sum exactly to {size} (input tensor's "
                               f"size at dimension {dim}), but got split_sizes={list(sizes)}")
    else:
        step = split_size_or_sections
        if step < 0 or step == 0 and size != 0:
            raise RuntimeError(f"split_size can only be 0 if dimension size is 0, but got dimension size of {size}"
                               if step == 0 else f"split expects split_size be non-negative, but got "
                               f"split_size={step}")
        sizes = tuple(min(step, size - s) for s in range(0, size, step)) if size else (0,)
    return Split.apply(tensor, dim, sizes)


def chunk(input: Tensor, chunks: int, dim: int = 0) -> tuple:
    """At most ``chunks`` views along ``dim``, each ``ceil(size / chunks)`` long (the last may be shorter)."""
    if chunks <= 0:
        raise RuntimeError(f"chunk expects `chunks` to be greater than 0, got: {chunks}")
    size = input.shape[wrap_dim(dim, input.ndim)]
    return split(input, max(-(-size // chunks), 1), dim)


def unbind(input: Tensor, dim: int = 0) -> tuple:
    """The entries of dim ``dim``, each a view without that dim."""
    return Unbind.apply(input, wrap_dim(dim, input.ndim))


# --- padding -------------------------------------------------------------------------------------
def _edge_pad(x: Tensor, dim: int, before: int, after: int, mode: str) -> Tensor:
    """Reflect, replicate or circular padding of one dim, built from differentiable narrows and flips."""
    n = x.shape[dim]
    if mode == "reflect":
        if before >= n or after >= n:
            raise RuntimeError(f"Argument #4: Padding size should be less than the corresponding input "
                               f"dimension, but got: padding ({before}, {after}) at dimension {dim} of input "
                               f"{list(x.shape)}")
        parts = [flip(narrow(x, dim, 1, before), dim), x, flip(narrow(x, dim, n - 1 - after, after), dim)]
    elif mode == "replicate":
        if n == 0:
            raise RuntimeError(f"padding of a dim of size 0 (dim {dim} of input {list(x.shape)}) in mode "
                               "'replicate' has nothing to copy")

        def edge(start, count):
            shape = list(x.shape)
            shape[dim] = count
            return broadcast_to(narrow(x, dim, start, 1), tuple(shape))
        parts = [edge(0, before), x, edge(n - 1, after)]
    else:
        if before > n or after > n:
            raise RuntimeError("Padding value causes wrapping around more than once.")
        parts = [narrow(x, dim, n - before, before), x, narrow(x, dim, 0, after)]
    return cat(parts, dim)


_PAD_MODES = ("constant", "reflect", "replicate", "circular")


def pad(input: Tensor, pad, mode: str = "constant", value=None) -> Tensor:
    """``torch.nn.functional.pad``: ``pad = (left, right, top, bottom, ...)`` pads the last dim first.

    In ``'constant'`` mode (fill with ``value``, default 0) negative widths crop. ``'reflect'``
    (mirror without the edge), ``'replicate'`` (repeat the edge) and ``'circular'`` (wrap around)
    take non-negative widths, and, unlike torch, pad any number of trailing dims of any input.
    """
    pad = tuple(int(p) for p in pad)
    if len(pad) % 2:
        raise RuntimeError("Padding length must be divisible by 2")
    if len(pad) > 2 * input.ndim:
        raise RuntimeError(f"Padding length should be less than or equal to two times the input dimension but "
                           f"got padding length {len(pad)} and input of dimension {input.ndim}")
    if mode not in _PAD_MODES:
        raise NotImplementedError(f"Unrecognised padding mode {mode}")
    widths = [(0, 0)] * input.ndim
    for i in range(len(pad) // 2):
        widths[input.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    if mode == "constant":
        for d, (n, (b, e)) in enumerate(zip(input.shape, widths)):
            if n + b + e < 0:
                raise RuntimeError(f"The input size {n}, plus negative padding {b} and {e} resulted in a "
                                   f"negative output size, which is invalid. Check dimension {d} of your input.")
        return ConstantPad.apply(input, tuple(widths), 0 if value is None else value)
    if value is not None:
        raise RuntimeError(f"Padding mode \"{mode}\" doesn't take in value argument")
    if any(p < 0 for p in pad):
        raise RuntimeError(f"pad: negative padding {list(pad)} is only supported in 'constant' mode")
    out = input
    for d, (b, e) in enumerate(widths):
        if b or e:
            out = _edge_pad(out, d, b, e, mode)
    return out


bind_methods(split=split, chunk=chunk, unbind=unbind)
