"""Indexing: ``x[key]``, ``x[key] = value``, ``index_select``, ``gather``, ``scatter_add``, ``masked_fill``,
``take``, ``nonzero``, ``one_hot``.

Every differentiable selection is one of two Functions: ``BasicIndex`` (ints, slices, None, Ellipsis; the
result is a view) and ``AdvancedIndex`` (integer arrays, boolean masks, mixes; a copy). Both send the
gradient back with ``IndexBackward``, which adds it into zeros of the input's shape at the same key
(repeated indices sum) and whose own backward is the indexing again, so second derivatives work.

``x[key] = value`` writes in place. When it must be recorded (grad mode on and ``x`` is a non-leaf that
requires grad, or ``value`` requires grad) it becomes ``IndexPut``; see ``inplace.py`` for the rules.
"""
from __future__ import annotations

import numpy as np

from distgrad import backend
from distgrad.autograd.function import Function
from distgrad.autograd.node import increment_version
from distgrad.ops.autocasting import autocast_op
from distgrad.ops.broadcast import broadcast_to, sum_to
from distgrad.ops.dims import wrap_dim
from distgrad.ops.inplace import check_writable, needs_recording, record_inplace, update_in_place
from distgrad.tensor import Tensor, bind_methods

__all__ = ["index_select", "gather", "scatter_add", "masked_fill", "take", "nonzero", "one_hot"]


# --- keys ----------------------------------------------------------------------------------------
def _index_array(x: Tensor, k, op: str = "index"):
    """An index (Tensor, list, NumPy/CuPy array) as an integer or boolean array on ``x``'s device."""
    arr = k.array if isinstance(k, Tensor) else k
    if isinstance(arr, list):
        arr = np.asarray([e.item() if isinstance(e, Tensor) else e for e in arr])
        if arr.size == 0:
            arr = arr.astype(np.int64)
    elif not hasattr(arr, "dtype"):
        arr = np.asarray(arr)
    if arr.dtype.kind not in "iub":
        raise IndexError(f"{op}: tensors used as indices must be long, int, byte or bool tensors, "
                         f"got {arr.dtype.name}")
    if arr.dtype.kind == "b":
        backend.check_host_sync(f"{op} with a boolean mask (its result's shape depends on the data)", arr)
    if backend.is_device_array(arr) and not x.is_cuda:
        raise IndexError(f"{op}: indices should be either on cpu or on the same device as the indexed tensor "
                         f"({x.device}), got indices on {backend.device_of(arr)}")
    return backend.to_device(arr, x.device) if x.is_cuda else arr


def _normalize_key(x: Tensor, key) -> tuple[tuple, bool]:
    """``key`` as a tuple the array module understands, and whether it is basic (the result is a view)."""
    if not isinstance(key, tuple):
        key = (key,)
    items, basic = [], True
    for k in key:
        if isinstance(k, (bool, np.bool_)):
            items.append(bool(k))
            basic = False
        elif isinstance(k, (int, np.integer)):
            items.append(int(k))
        elif k is None or k is Ellipsis or isinstance(k, slice):
            items.append(k)
        else:
            items.append(_index_array(x, k))
            basic = False
    if basic and not any(k is Ellipsis for k in items):
        items.append(Ellipsis)  # makes x[i, j] of a 2-d tensor a 0-d view rather than a NumPy scalar
    elif not basic and x.is_cuda and not backend.capturing():  # the check reads the indices on the host
        _check_device_bounds(x.shape, items)
    return tuple(items), basic


def _check_device_bounds(shape: tuple, key: tuple) -> None:
    """CuPy wraps out-of-range integer indices silently; raise like NumPy instead."""
    consumed = sum(k.ndim if hasattr(k, "dtype") and k.dtype.kind == "b" else
                   0 if k is None or k is Ellipsis or isinstance(k, bool) else 1 for k in key)
    axis = 0
    for k in key:
        if k is Ellipsis:
            axis += len(shape) - consumed
        elif hasattr(k, "dtype"):
            if k.dtype.kind == "b":
                axis += k.ndim
                continue
            if axis < len(shape) and k.size:
                _check_range(k, -shape[axis], shape[axis], axis)
            axis += 1
        elif k is not None and not isinstance(k, bool):
            axis += 1


def _check_range(idx, low: int, high: int, dim: int) -> None:
    lo, hi = int(idx.min()), int(idx.max())
    if lo < low or hi >= high:
        raise IndexError(f"index {lo if lo < low else hi} is out of bounds for dimension {dim} with size {high}")


def _index_error(exc: IndexError) -> IndexError:
    """NumPy's or CuPy's message in PyTorch's words: tensors have dimensions."""
    message = str(exc).replace("axis", "dimension").replace("array", "tensor")
    return IndexError(message[:1].lower() + message[1:])


def _select(data, key):
    try:
        return data[key]
    except IndexError as exc:
        raise _index_error(exc) from None


# --- selecting -------------------------------------------------------------------------------------
class BasicIndex(Function):
    """``x[key]`` with ints, slices, None and Ellipsis: a view of ``x``."""

    is_view = True

    @staticmethod
    def forward(ctx, x, key):
        ctx.in_shape, ctx.key = x.shape, key
        return _select(x.array, key)

    @classmethod
    def backward(cls, ctx, grad):
        return IndexBackward.apply(grad, ctx.in_shape, ctx.key, cls.is_view), None


class AdvancedIndex(BasicIndex):
    """``x[key]`` with integer arrays or boolean masks in ``key``: a copy."""

    is_view = False


class IndexBackward(Function):
    """Zeros of ``shape`` with ``grad`` added at ``key``: the adjoint of ``x[key]``."""

    @staticmethod
    def forward(ctx, grad, shape, key, basic):
        ctx.key, ctx.basic = key, basic
        out = grad._xp.zeros(shape, grad.dtype)
        if basic:  # a basic key never repeats an element
            out[key] = grad.array
        else:
            backend.scatter_add(out, key, grad.array)
        return out

    @staticmethod
    def backward(ctx, grad):
        return _index(grad, ctx.key, ctx.basic), None, None, None


def _index(x: Tensor, key: tuple, basic: bool) -> Tensor:
    return (BasicIndex if basic else AdvancedIndex).apply(x, key)


def getitem(x: Tensor, key) -> Tensor:
    """``x[key]`` with NumPy's rules; a view when ``key`` holds only ints, slices, None and Ellipsis."""
    return _index(x, *_normalize_key(x, key))


def index_select(input: Tensor, dim: int, index) -> Tensor:
    """The entries at ``index`` (a vector) along ``dim``."""
    dim = wrap_dim(dim, input.ndim)
    idx = _index_array(input, index, "index_select()")
    if idx.dtype.kind not in "iu":
        raise IndexError(f"index_select(): Expected dtype int32/int64 for index, got {idx.dtype.name}")
    if idx.ndim > 1:
        raise IndexError(f"index_select(): Index is supposed to be a vector, got shape {list(idx.shape)}")
    if idx.size:
        _check_range(idx, 0, input.shape[dim] if input.ndim else 1, dim)
    if input.ndim == 0:
        return broadcast_to(input, idx.shape)
    return AdvancedIndex.apply(input, (slice(None),) * dim + (idx.reshape(-1),))


def _gather_key(op: str, input: Tensor, dim: int, idx, other: Tensor | None = None) -> tuple:
    """The advanced key picking ``input[..., idx[i, j, ...], ...]`` along ``dim`` (gather/scatter's rule)."""
    if idx.dtype.kind not in "iu":
        raise RuntimeError(f"{op}(): Expected dtype int64 for index, got {idx.dtype.name}")
    if idx.ndim != input.ndim:
        raise RuntimeError(f"{op}(): Index tensor must have the same number of dimensions as input tensor "
                           f"(index {list(idx.shape)}, input {list(input.shape)})")
    too_big = any(n > input.shape[d] for d, n in enumerate(idx.shape) if d != dim)
    if too_big or other is not None and any(n > m for n, m in zip(idx.shape, other.shape)):
        src = "" if other is None else f" and to be smaller size than src {list(other.shape)}"
        raise RuntimeError(f"{op}(): Size does not match at dimension {dim}: expected index {list(idx.shape)} to be "
                           f"smaller than self {list(input.shape)} apart from dimension {dim}{src}")
    if idx.size:
        _check_range(idx, 0, input.shape[dim], dim)
    xp = input._xp
    return tuple(idx if d == dim else xp.arange(n).reshape((-1,) + (1,) * (idx.ndim - d - 1))
                 for d, n in enumerate(idx.shape))


def gather(input: Tensor, dim: int, index) -> Tensor:
    """``out[i][j][k] = input[index[i][j][k]][j][k]`` for ``dim=0`` (and likewise for other dims)."""
    dim = wrap_dim(dim, input.ndim)
    idx = _index_array(input, index, "gather()")
    if input.ndim == 0:
        return index_select(input, 0, idx)
    return AdvancedIndex.apply(input, _gather_key("gather", input, dim, idx))


class ScatterAdd(Function):
    """A copy of ``x`` with ``src``'s leading block added at ``key`` (repeated indices sum)."""

    @staticmethod
    def forward(ctx, x, src, key, block):
        ctx.key, ctx.block, ctx.src_shape = key, block, src.shape
        out = x.array.copy()
        backend.scatter_add(out, key, src.array[block])
        return out

    @staticmethod
    def backward(ctx, grad):
        gsrc = None
        if ctx.needs_input_grad[1]:
            gsrc = AdvancedIndex.apply(grad, ctx.key)
            if gsrc.shape != ctx.src_shape:
                gsrc = IndexBackward.apply(gsrc, ctx.src_shape, ctx.block, True)
        return grad, gsrc, None, None


def _scatter_args(input: Tensor, dim: int, index, src: Tensor):
    dim = wrap_dim(dim, input.ndim)
    if not isinstance(src, Tensor):
        raise TypeError(f"scatter_add(): argument 'src' must be Tensor, not {type(src).__name__}")
    if src.dtype != input.dtype:
        raise RuntimeError(f"scatter_add(): Expected self.dtype to be equal to src.dtype, got {input.dtype.name} "
                           f"and {src.dtype.name}")
    idx = _index_array(input, index, "scatter_add()")
    key = _gather_key("scatter_add", input, dim, idx, src)
    return key, tuple(slice(0, n) for n in idx.shape)


@autocast_op()
def scatter_add(input: Tensor, dim: int, index, src: Tensor) -> Tensor:
    """A copy of ``input`` with ``src[i][j][k]`` added at ``[index[i][j][k]][j][k]`` (``dim=0``); repeats sum."""
    return ScatterAdd.apply(input, src, *_scatter_args(input, dim, index, src))


def scatter_add_(self: Tensor, dim: int, index, src: Tensor) -> Tensor:
    """In-place ``scatter_add``."""
    key, block = _scatter_args(self, dim, index, src)
    if needs_recording(self, src):
        return record_inplace(self, "scatter_add_", lambda alias: ScatterAdd.apply(alias, src, key, block))
    return update_in_place(self, "scatter_add_", lambda xp, a: backend.scatter_add(a, key, src.array[block]), src)


def take(input: Tensor, index) -> Tensor:
    """``input`` read as 1-d at ``index`` (negative indices count from the end); the result has ``index``'s shape."""
    idx = _index_array(input, index, "take()")
    n = input.numel()
    if idx.size:
        lo, hi = int(idx.min()), int(idx.max())
        if lo < -n or hi >= n:
            raise IndexError(f"out of range: tried to access index {lo if lo < -n else hi} on a tensor of {n} "
                             "elements.")
    if input.ndim == 0:
        return broadcast_to(input, idx.shape)
    flat = input._xp.where(idx < 0, idx + n, idx)
    return AdvancedIndex.apply(input, tuple(input._xp.unravel_index(flat, input.shape)))


# --- masks ---------------------------------------------------------------------------------------
class MaskedFill(Function):
    """``x`` with ``value`` where ``mask`` is true; ``value`` is a number or a 0-d Tensor."""

    @staticmethod
    def forward(ctx, x, mask, value):
        ctx.mask = mask
        v = value.array if isinstance(value, Tensor) else value
        return x._xp.where(mask, v, x.array).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        kept = MaskedFill.apply(grad, ctx.mask, 0)
        gvalue = sum_to(grad - kept, ()) if ctx.needs_input_grad[2] else None
        return kept if ctx.needs_input_grad[0] else None, None, gvalue


def _mask_and_value(op: str, x: Tensor, mask, value):
    m = _index_array(x, mask, op)
    if m.dtype.kind != "b":
        raise RuntimeError(f"{op} only supports boolean masks, but got mask with dtype {m.dtype.name}")
    try:
        shape = np.broadcast_shapes(m.shape, x.shape)
    except ValueError:
        shape = None
    if shape != x.shape:
        raise RuntimeError(f"{op}: the mask of shape {list(m.shape)} cannot be broadcast to the tensor's shape "
                           f"{list(x.shape)}")
    if isinstance(value, Tensor) and value.ndim != 0:
        raise RuntimeError(f"{op} only supports a 0-dimensional value tensor, but got tensor with {value.ndim} "
                           "dimension(s).")
    return m, value


def masked_fill(input: Tensor, mask, value) -> Tensor:
    """A copy of ``input`` with ``value`` where the boolean ``mask`` (broadcast to ``input``) is true."""
    return MaskedFill.apply(input, *_mask_and_value("masked_fill", input, mask, value))


def masked_fill_(self: Tensor, mask, value) -> Tensor:
    """In-place ``masked_fill``."""
    m, value = _mask_and_value("masked_fill_", self, mask, value)
    if needs_recording(self, value):
        return record_inplace(self, "masked_fill_", lambda alias: MaskedFill.apply(alias, m, value))
    v = backend.to_device(value.array, self.device) if isinstance(value, Tensor) else value
    return update_in_place(self, "masked_fill_", lambda xp, a: xp.copyto(a, v, casting="unsafe", where=m))


def nonzero(input: Tensor, *, as_tuple: bool = False):
    """The indices of non-zero entries: an ``(n, ndim)`` int64 tensor, or one 1-d tensor per dimension."""
    backend.check_host_sync("nonzero (its result's shape depends on the data)", input.array)
    xp = input._xp
    if as_tuple:
        return tuple(Tensor(i.astype(np.int64, copy=False)) for i in xp.nonzero(xp.atleast_1d(input.array)))
    return Tensor(xp.argwhere(input.array).astype(np.int64, copy=False))


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    """int64 ``(*tensor.shape, num_classes)`` with a 1 at each class index; ``-1`` means ``tensor.max() + 1``."""
    idx = tensor.array
    if idx.dtype.kind not in "iu":
        raise RuntimeError(f"one_hot is only applicable to index tensor of integer dtype, got {idx.dtype.name}")
    if idx.size == 0 and num_classes == -1:
        raise RuntimeError("Can not infer total number of classes from empty tensor.")
    if idx.size:
        lo, hi = int(idx.min()), int(idx.max())
        if lo < 0:
            raise RuntimeError("Class values must be non-negative.")
        if num_classes == -1:
            num_classes = hi + 1
        elif hi >= num_classes:
            raise RuntimeError(f"Class values must be smaller than num_classes ({num_classes}), got {hi}.")
    xp = tensor._xp
    return Tensor((idx[..., None] == xp.arange(num_classes)).astype(np.int64))


# --- writing -------------------------------------------------------------------------------------
class IndexPut(Function):
    """A copy of ``x`` with ``value`` (broadcast) written at ``key``: the recorded form of ``x[key] = value``."""

    @staticmethod
    def forward(ctx, x, value, key, basic):
        ctx.key, ctx.basic = key, basic
        ctx.value_shape = value.shape if isinstance(value, Tensor) else None
        out = x.array.copy()
        out[key] = value.array if isinstance(value, Tensor) else value
        return out

    @staticmethod
    def backward(ctx, grad):
        gx = IndexPut.apply(grad, 0, ctx.key, ctx.basic) if ctx.needs_input_grad[0] else None
        gvalue = sum_to(_index(grad, ctx.key, ctx.basic), ctx.value_shape) if ctx.needs_input_grad[1] else None
        return gx, gvalue, None, None


def setitem(x: Tensor, key, value) -> None:
    """``x[key] = value`` (a Tensor, an array or a number), in place; bumps the version counter."""
    key, basic = _normalize_key(x, key)
    if needs_recording(x, value):
        if not isinstance(value, Tensor):
            value = Tensor(x._xp.asarray(value))
        record_inplace(x, "index_put_", lambda alias: IndexPut.apply(alias, value, key, basic))
        return
    check_writable(x, "index_put_")
    if isinstance(value, Tensor):
        value = value.array
    if backend.is_device_array(value) or x.is_cuda:
        value = backend.to_device(value, x.device)
    try:
        x.array[key] = value
    except IndexError as exc:
        raise _index_error(exc) from None
    increment_version(x)


bind_methods(
    __getitem__=getitem, __setitem__=setitem, index_select=index_select, gather=gather,
    scatter_add=scatter_add, scatter_add_=scatter_add_, masked_fill=masked_fill, masked_fill_=masked_fill_,
    take=take, nonzero=nonzero,
)
