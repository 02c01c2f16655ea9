"""Shape ops: views (``reshape view transpose permute squeeze narrow select ...``) and copies that
move data around (``flip roll repeat tile``), with PyTorch's names and errors. Joining, splitting and
padding (``cat stack split chunk unbind pad``) live in ``joining.py``.

Views share memory and the version counter with their input (``is_view = True``); their backward
is the inverse rearrangement, written with these same ops so that it can be differentiated again.
"""
from __future__ import annotations

import math

from distgrad.autograd.function import Function
from distgrad.ops.dims import wrap_dim
from distgrad.ops.memory_format import contiguous_format, copy_in_format, is_in_format, preserve_format
from distgrad.tensor import Tensor, bind_methods

__all__ = ["reshape", "flatten", "unflatten", "transpose", "swapaxes", "swapdims", "t", "permute", "squeeze",
           "unsqueeze", "movedim", "moveaxis", "narrow", "select", "clone", "flip", "roll", "tile"]


# --- sizes ---------------------------------------------------------------------------------------
def _sizes(sizes) -> tuple:
    """``f(2, 3)`` and ``f((2, 3))`` both give ``(2, 3)``."""
    if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
        return tuple(sizes[0])
    return tuple(sizes)


def _infer_shape(shape: tuple, numel: int) -> tuple:
    """``shape`` with its one ``-1`` replaced so that it holds ``numel`` elements."""
    shape = tuple(int(s) for s in shape)
    inferred = [i for i, s in enumerate(shape) if s == -1]
    if len(inferred) > 1:
        raise RuntimeError("only one dimension can be inferred")
    for i, s in enumerate(shape):
        if s < -1:
            raise RuntimeError(f"invalid shape dimension {s} at index {i} of shape {list(shape)}")
    known = math.prod(s for s in shape if s != -1)
    if inferred and known != 0 and numel % known == 0:
        shape = shape[:inferred[0]] + (numel // known,) + shape[inferred[0] + 1:]
    if inferred and -1 in shape or math.prod(shape) != numel:
        raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {numel}")
    return shape


def _can_view(shape: tuple, strides: tuple, new_shape: tuple) -> bool:
    """True when ``new_shape`` can read the same memory (PyTorch's ``computeStride``): each run of
    dims that is contiguous in memory may be re-split freely, but no new dim may span two runs."""
    if math.prod(shape) == 0 or not shape:
        return True
    view_d = len(new_shape) - 1
    chunk_stride = strides[-1]
    tensor_numel = view_numel = 1
    for d in reversed(range(len(shape))):
        tensor_numel *= shape[d]
        if d == 0 or shape[d - 1] != 1 and strides[d - 1] != tensor_numel * chunk_stride:
            while view_d >= 0 and (view_numel < tensor_numel or new_shape[view_d] == 1):
                view_numel *= new_shape[view_d]
                view_d -= 1
            if view_numel != tensor_numel:
                return False
            if d > 0:
                chunk_stride = strides[d - 1]
                tensor_numel = view_numel = 1
    return view_d == -1


# --- reshaping -----------------------------------------------------------------------------------
class View(Function):
    """The same memory read with another shape."""

    is_view = True

    @staticmethod
    def forward(ctx, a, shape):
        ctx.in_shape = a.shape
        return a.array.reshape(shape)

    @staticmethod
    def backward(ctx, grad):
        return reshape(grad, ctx.in_shape), None


class ReshapeCopy(View):
    """``reshape`` of a tensor whose strides allow no view: a copy that shares nothing."""

    is_view = False


def reshape(input: Tensor, *shape) -> Tensor:
    """``input`` with a new shape (one size may be -1): a view when the strides allow, else a copy."""
    shape = _infer_shape(_sizes(shape), input.numel())
    return (View if _can_view(input.shape, input.array.strides, shape) else ReshapeCopy).apply(input, shape)


def view(input: Tensor, *shape) -> Tensor:
    """Like ``reshape`` but never copies: raises when the strides do not allow a view."""
    shape = _infer_shape(_sizes(shape), input.numel())
    if not _can_view(input.shape, input.array.strides, shape):
        raise RuntimeError("view size is not compatible with input tensor's size and stride (at least one "
                           "dimension spans across two contiguous subspaces). Use .reshape(...) instead.")
    return View.apply(input, shape)


def flatten(input: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Dims ``start_dim..end_dim`` merged into one (a 0-d tensor becomes 1-d)."""
    start, end = wrap_dim(start_dim, input.ndim), wrap_dim(end_dim, input.ndim)
    if start > end:
        raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
    shape = input.shape
    return reshape(input, shape[:start] + (math.prod(shape[start:end + 1]),) + shape[end + 1:] if shape else (1,))


def unflatten(input: Tensor, dim: int, sizes) -> Tensor:
    """Dim ``dim`` split into ``sizes`` (one may be -1)."""
    dim = wrap_dim(dim, input.ndim)
    size = input.shape[dim]
    try:
        sizes = _infer_shape(tuple(sizes), size)
    except RuntimeError:
        raise RuntimeError(f"unflatten: Provided sizes {list(sizes)} don't multiply up to the size of dim "
                           f"{dim} ({size}) in the input tensor") from None
    return reshape(input, input.shape[:dim] + sizes + input.shape[dim + 1:])


def squeeze(input: Tensor, dim=None) -> Tensor:
    """Size-1 dims removed: all of them, or those among ``dim`` (an int or a tuple)."""
    if dim is None:
        dims = range(input.ndim)
    else:
        dims = {wrap_dim(d, input.ndim) for d in (dim if isinstance(dim, (tuple, list)) else (dim,))}
    shape = tuple(n for i, n in enumerate(input.shape) if not (i in dims and n == 1))
    return View.apply(input, shape)


def unsqueeze(input: Tensor, dim: int) -> Tensor:
    """A size-1 dim inserted at ``dim`` (in ``[-ndim - 1, ndim]``)."""
    dim = wrap_dim(dim, input.ndim + 1)
    return View.apply(input, input.shape[:dim] + (1,) + input.shape[dim:])


# --- reordering dims -----------------------------------------------------------------------------
class Permute(Function):
    is_view = True

    @staticmethod
    def forward(ctx, a, dims):
        ctx.dims = dims
        return a.array.transpose(dims)

    @staticmethod
    def backward(ctx, grad):
        inverse = tuple(sorted(range(len(ctx.dims)), key=ctx.dims.__getitem__))
        return Permute.apply(grad, inverse), None


def permute(input: Tensor, dims) -> Tensor:
    """A view with its dims in the order ``dims`` (``x.permute(1, 0)`` also takes them one by one)."""
    dims = tuple(dims)
    if len(dims) != input.ndim:
        raise RuntimeError(f"permute(sparse_coo): number of dimensions in the tensor input does not match the "
                           f"length of the desired ordering of dimensions i.e. input.dim() = {input.ndim} is "
                           f"not equal to len(dims) = {len(dims)}")
    dims = tuple(wrap_dim(d, input.ndim) for d in dims)
    if len(set(dims)) != len(dims):
        raise RuntimeError("permute(): duplicate dims are not allowed.")
    return Permute.apply(input, dims)


def transpose(input: Tensor, dim0: int, dim1: int) -> Tensor:
    """A view with dims ``dim0`` and ``dim1`` swapped."""
    dims = list(range(input.ndim))
    d0, d1 = wrap_dim(dim0, input.ndim), wrap_dim(dim1, input.ndim)
    if input.ndim:
        dims[d0], dims[d1] = dims[d1], dims[d0]
    return Permute.apply(input, tuple(dims))


swapaxes = swapdims = transpose


def t(input: Tensor) -> Tensor:
    """The transpose of a matrix; 0-d and 1-d tensors come back as they are (as views)."""
    if input.ndim > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {input.ndim}D")
    return Permute.apply(input, tuple(reversed(range(input.ndim))))


def _matrix_transpose(input: Tensor) -> Tensor:
    if input.ndim < 2:
        raise RuntimeError(f"tensor.mT is only supported on matrices or batches of matrices. "
                           f"Got {input.ndim}-D tensor.")
    return transpose(input, -2, -1)


def movedim(input: Tensor, source, destination) -> Tensor:
    """A view with dims ``source`` moved to positions ``destination`` (ints or tuples), the rest in order."""
    src = tuple(source) if isinstance(source, (tuple, list)) else (source,)
    dst = tuple(destination) if isinstance(destination, (tuple, list)) else (destination,)
    if len(src) != len(dst):
        raise RuntimeError(f"movedim: Invalid source or destination dims: source ({list(src)} dims) should "
                           f"contain the same number of dims as destination ({list(dst)} dims)")
    src = [wrap_dim(d, input.ndim) for d in src]
    dst = [wrap_dim(d, input.ndim) for d in dst]
    for name, ds in (("source", src), ("destination", dst)):
        if len(set(ds)) != len(ds):
            raise RuntimeError(f"movedim: repeated dim in `{name}` ({ds})")
    rest = iter(d for d in range(input.ndim) if d not in src)
    placed = dict(zip(dst, src))
    return Permute.apply(input, tuple(placed[i] if i in placed else next(rest) for i in range(input.ndim)))


moveaxis = movedim


# --- parts of a tensor ---------------------------------------------------------------------------
def index_along(dim: int, index) -> tuple:
    return (slice(None),) * dim + (index,)


class ConstantPad(Function):
    """``widths[d] = (before, after)`` entries of ``value`` added to dim d; negative widths crop.

    ``pad``'s constant mode (in ``joining.py``); it lives here because narrow and select's backward use it.
    """

    @staticmethod
    def forward(ctx, a, widths, value):
        ctx.widths = widths
        cropped = a.array[tuple(slice(max(-b, 0), n - max(-e, 0)) for n, (b, e) in zip(a.shape, widths))]
        grow = tuple((max(b, 0), max(e, 0)) for b, e in widths)
        return a._xp.pad(cropped, grow, constant_values=value)

    @staticmethod
    def backward(ctx, grad):
        # The adjoint crops what was added and zero-fills what was cropped: the same op, widths negated.
        return ConstantPad.apply(grad, tuple((-b, -e) for b, e in ctx.widths), 0), None, None


def _zero_fill(grad: Tensor, dim: int, before: int, after: int) -> Tensor:
    """``grad`` with ``before``/``after`` zeros around it along ``dim``: the adjoint of taking a slice."""
    widths = [(0, 0)] * grad.ndim
    widths[dim] = (before, after)
    return ConstantPad.apply(grad, tuple(widths), 0)


class Narrow(Function):
    is_view = True

    @staticmethod
    def forward(ctx, a, dim, start, length):
        ctx.dim, ctx.before, ctx.after = dim, start, a.shape[dim] - start - length
        return a.array[index_along(dim, slice(start, start + length))]

    @staticmethod
    def backward(ctx, grad):
        return _zero_fill(grad, ctx.dim, ctx.before, ctx.after), None, None, None


def narrow(input: Tensor, dim: int, start: int, length: int) -> Tensor:
    """A view of ``length`` entries of dim ``dim`` from ``start`` on."""
    dim = wrap_dim(dim, input.ndim)
    size = input.shape[dim]
    if not -size <= start <= size:
        raise IndexError(f"start out of range (expected to be in range of [{-size}, {size}], but got {start})")
    start %= max(size, 1)
    if length < 0 or start + length > size:
        raise RuntimeError(f"start ({start}) + length ({length}) exceeds dimension size ({size}).")
    return Narrow.apply(input, dim, start, length)


class Select(Function):
    is_view = True

    @staticmethod
    def forward(ctx, a, dim, index):
        ctx.dim, ctx.index, ctx.size = dim, index, a.shape[dim]
        return a.array[index_along(dim, index)]

    @staticmethod
    def backward(ctx, grad):
        return _zero_fill(unsqueeze(grad, ctx.dim), ctx.dim, ctx.index, ctx.size - ctx.index - 1), None, None


def select(input: Tensor, dim: int, index: int) -> Tensor:
    """A view of entry ``index`` of dim ``dim``, that dim removed."""
    dim = wrap_dim(dim, input.ndim)
    size = input.shape[dim]
    if not -size <= index < size:
        raise IndexError(f"select(): index {index} out of range for tensor of size {list(input.shape)} at "
                         f"dimension {dim}")
    return Select.apply(input, dim, index % size)


# --- copies --------------------------------------------------------------------------------------
class Clone(Function):
    @staticmethod
    def forward(ctx, a, fmt):
        return copy_in_format(a.array, fmt)

    @staticmethod
    def backward(ctx, grad):
        return grad, None


def clone(input: Tensor, *, memory_format=preserve_format) -> Tensor:
    """A copy in fresh memory, still in the graph, laid out as ``memory_format`` (``memory_format.py``):
    by default a dense tensor keeps its strides, any other becomes row-major."""
    return Clone.apply(input, memory_format)


def contiguous(input: Tensor, memory_format=contiguous_format) -> Tensor:
    """``input`` itself when it is laid out as ``memory_format`` (row-major by default), else a copy that is."""
    if is_in_format(input.array, memory_format):
        return input
    if memory_format is preserve_format:
        raise RuntimeError("preserve memory format is unsupported by the contiguous operator")
    return Clone.apply(input, memory_format)


class Flip(Function):
    @staticmethod
    def forward(ctx, a, dims):
        ctx.dims = dims
        return a._xp.flip(a.array, dims).copy()  # a copy, as in torch: writes to it leave the input alone

    @staticmethod
    def backward(ctx, grad):
        return Flip.apply(grad, ctx.dims), None


def flip(input: Tensor, dims) -> Tensor:
    """A copy with the order of entries reversed along ``dims`` (an int or a sequence of ints)."""
    dims = tuple(dims) if isinstance(dims, (tuple, list)) else (dims,)
    wrapped = tuple(wrap_dim(d, input.ndim) for d in dims)
    if len(set(wrapped)) != len(wrapped):
        raise RuntimeError(f"dims has duplicates, original flip dims size={len(dims)}, but unique flip dims "
                           f"size={len(set(wrapped))}")
    return Flip.apply(input, wrapped if input.ndim else ())


class Roll(Function):
    @staticmethod
    def forward(ctx, a, shifts, dims):
        ctx.shifts, ctx.dims = shifts, dims
        return a._xp.roll(a.array, shifts, dims)

    @staticmethod
    def backward(ctx, grad):
        return Roll.apply(grad, tuple(-s for s in ctx.shifts), ctx.dims), None, None


def roll(input: Tensor, shifts, dims=None) -> Tensor:
    """Entries shifted circularly by ``shifts`` along ``dims`` (over the flattened tensor when None)."""
    shifts = tuple(shifts) if isinstance(shifts, (tuple, list)) else (shifts,)
    if dims is None:
        if len(shifts) != 1:
            raise RuntimeError(f"shifts and dimensions must align. shifts: {len(shifts)}, dims:0")
        return reshape(Roll.apply(flatten(input), shifts, (0,)), input.shape)
    dims = tuple(dims) if isinstance(dims, (tuple, list)) else (dims,)
    if len(shifts) != len(dims):
        raise RuntimeError(f"shifts and dimensions must align. shifts: {len(shifts)}, dims:{len(dims)}")
    return Roll.apply(input, shifts, tuple(wrap_dim(d, input.ndim) for d in dims))


class Repeat(Function):
    @staticmethod
    def forward(ctx, a, repeats):
        ctx.in_shape, ctx.repeats = a.shape, repeats
        return a._xp.tile(a.array, repeats)

    @staticmethod
    def backward(ctx, grad):
        # Each output dim is (repeat, size) flattened: split it so, and sum over the repeats.
        padded = (1,) * (grad.ndim - len(ctx.in_shape)) + ctx.in_shape
        split_shape = tuple(n for r, s in zip(ctx.repeats, padded) for n in (r, s))
        summed = reshape(grad, split_shape).sum(tuple(range(0, len(split_shape), 2)))
        return reshape(summed, ctx.in_shape), None


def repeat(input: Tensor, *sizes) -> Tensor:
    """``input`` repeated ``sizes[i]`` times along dim i (``sizes`` may add leading dims)."""
    sizes = _sizes(sizes)
    if len(sizes) < input.ndim:
        raise RuntimeError("Number of dimensions of repeat dims can not be smaller than number of dimensions "
                           "of tensor")
    return Repeat.apply(input, tuple(sizes))


def tile(input: Tensor, dims) -> Tensor:
    """Like ``repeat``, with missing leading repeats taken as 1."""
    dims = tuple(dims)
    return repeat(input, (1,) * (input.ndim - len(dims)) + dims)


bind_methods(
    reshape=reshape, view=view, view_as=lambda x, other: view(x, other.shape),
    reshape_as=lambda x, other: reshape(x, other.shape), flatten=flatten, unflatten=unflatten,
    transpose=transpose, swapaxes=swapaxes, swapdims=swapdims, t=t, squeeze=squeeze,
    unsqueeze=unsqueeze, movedim=movedim, moveaxis=moveaxis, narrow=narrow, select=select, clone=clone,
    contiguous=contiguous, roll=roll, repeat=repeat,
    permute=lambda x, *dims: permute(x, _sizes(dims)), flip=lambda x, *dims: flip(x, _sizes(dims)),
    tile=tile, is_contiguous=lambda x, memory_format=contiguous_format: is_in_format(x.array, memory_format),
    T=property(lambda x: Permute.apply(x, tuple(reversed(range(x.ndim))))), mT=property(_matrix_transpose),
)
