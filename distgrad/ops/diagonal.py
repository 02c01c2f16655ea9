"""Diagonals: ``diagonal`` (a view), ``diagonal_scatter``, ``diag_embed``, ``diag`` and ``fill_diagonal_``.

``diagonal(x, offset, dim1, dim2)`` removes ``dim1`` and ``dim2`` and appends the diagonal
``x[..., i, i + offset, ...]`` as the last dim. It is a view sharing ``x``'s memory and version
counter, as in PyTorch: writes through it change ``x``. NumPy's own ``diagonal`` is read-only, so
the view is built from strides: a slice starting at the diagonal's first entry, read with the
stride ``stride(dim1) + stride(dim2)``.

``diagonal_scatter(x, src, ...)`` is a copy of ``x`` with ``src`` written on that diagonal. It is
the adjoint of ``diagonal`` (``diagonal``'s gradient is the gradient scattered onto zeros) and
``diag_embed`` is it applied to zeros; its own gradient is ``diagonal`` again.
"""
from __future__ import annotations

from distgrad import backend
from distgrad.autograd.function import Function
from distgrad.ops.dims import wrap_dim
from distgrad.ops.indexing import masked_fill
from distgrad.ops.inplace import needs_recording, record_inplace, update_in_place
from distgrad.tensor import Tensor, bind_methods

__all__ = ["diagonal", "diagonal_scatter", "diag_embed", "diag"]


def diagonal_view(a, offset: int, dim1: int, dim2: int):
    """The writable view of the array ``a``'s diagonal (dims wrapped and distinct)."""
    start = [slice(None)] * a.ndim
    start[dim2 if offset >= 0 else dim1] = slice(abs(offset), None)
    corner = a[tuple(start)]
    n = min(corner.shape[dim1], corner.shape[dim2])
    rest = [d for d in range(a.ndim) if d not in (dim1, dim2)]
    shape = tuple(corner.shape[d] for d in rest) + (n,)
    strides = tuple(corner.strides[d] for d in rest) + (corner.strides[dim1] + corner.strides[dim2],)
    return backend.array_module(a).lib.stride_tricks.as_strided(corner, shape, strides)


class Diagonal(Function):
    is_view = True

    @staticmethod
    def forward(ctx, a, offset, dim1, dim2):
        ctx.args, ctx.in_shape = (offset, dim1, dim2), a.shape
        return diagonal_view(a.array, offset, dim1, dim2)

    @staticmethod
    def backward(ctx, grad):
        zeros = Tensor(grad._xp.zeros(ctx.in_shape, grad.dtype))
        return DiagonalScatter.apply(zeros, grad, *ctx.args), None, None, None


class DiagonalScatter(Function):
    """A copy of ``x`` with ``src`` written on its diagonal."""

    @staticmethod
    def forward(ctx, x, src, offset, dim1, dim2):
        ctx.args = (offset, dim1, dim2)
        out = x.array.copy()
        diagonal_view(out, offset, dim1, dim2)[...] = src.array
        return out

    @staticmethod
    def backward(ctx, grad):
        gx = gsrc = None
        if ctx.needs_input_grad[0]:
            gx = DiagonalScatter.apply(grad, Tensor(grad._xp.zeros((), grad.dtype)), *ctx.args)
        if ctx.needs_input_grad[1]:
            gsrc = Diagonal.apply(grad, *ctx.args)
        return gx, gsrc, None, None, None


def _dims(op: str, ndim: int, dim1: int, dim2: int) -> tuple:
    d1, d2 = wrap_dim(dim1, ndim), wrap_dim(dim2, ndim)
    if d1 == d2:
        raise RuntimeError(f"{op}: diagonal dimensions cannot be identical {dim1}, {dim2}")
    return d1, d2


def diagonal(input: Tensor, offset: int = 0, dim1: int = 0, dim2: int = 1) -> Tensor:
    """A view of the diagonal of dims ``dim1``/``dim2`` (above it for ``offset > 0``), as the last dim."""
    d1, d2 = _dims("diagonal", input.ndim, dim1, dim2)
    return Diagonal.apply(input, int(offset), d1, d2)


def diagonal_scatter(input: Tensor, src: Tensor, offset: int = 0, dim1: int = 0, dim2: int = 1) -> Tensor:
    """A copy of ``input`` with ``src`` on the diagonal that ``diagonal(input, offset, dim1, dim2)`` reads."""
    d1, d2 = _dims("diagonal_scatter", input.ndim, dim1, dim2)
    expected = diagonal_view(input.array, int(offset), d1, d2).shape
    if src.shape != expected:
        raise RuntimeError(f"diagonal_scatter: expected src to have a size equal to the slice of self. src size = "
                           f"{list(src.shape)}, slice size = {list(expected)}")
    if src.dtype != input.dtype:
        raise RuntimeError(f"diagonal_scatter: expected src to have the dtype of self ({input.dtype.name}), got "
                           f"{src.dtype.name}")
    return DiagonalScatter.apply(input, src, int(offset), d1, d2)


def diag_embed(input: Tensor, offset: int = 0, dim1: int = -2, dim2: int = -1) -> Tensor:
    """Zeros with one more dim than ``input``, holding ``input``'s last dim on the diagonal of ``dim1``/``dim2``."""
    if input.ndim == 0:
        raise IndexError("diag_embed: Dimension out of range (expected to be in range of [-1, 0], but got -2): "
                         "the input must have at least 1 dimension")
    ndim = input.ndim + 1
    d1, d2 = _dims("diag_embed", ndim, dim1, dim2)
    n = input.shape[-1] + abs(int(offset))
    batch = iter(input.shape[:-1])
    shape = tuple(n if d in (d1, d2) else next(batch) for d in range(ndim))
    return DiagonalScatter.apply(Tensor(input._xp.zeros(shape, input.dtype)), input, int(offset), d1, d2)


def diag(input: Tensor, diagonal: int = 0) -> Tensor:
    """For a vector, the square matrix with it on diagonal ``diagonal``; for a matrix, a copy of that
    diagonal (a new tensor, not a view)."""
    if input.ndim == 1:
        return diag_embed(input, diagonal, 0, 1)
    if input.ndim == 2:
        return Diagonal.apply(input, int(diagonal), 0, 1).clone()
    raise RuntimeError(f"diag(): Supports 1D or 2D tensors. Got {input.ndim}D")


def fill_diagonal_(self: Tensor, fill_value, wrap: bool = False) -> Tensor:
    """Writes ``fill_value`` on the main diagonal (all dims equal, or a matrix); ``wrap`` restarts it every
    ``cols + 1`` rows of a tall matrix, as NumPy's ``fill_diagonal``."""
    if self.ndim < 2 or self.ndim > 2 and len(set(self.shape)) != 1:
        raise RuntimeError(f"fill_diagonal_: dimensions must be larger than 1 and all of equal length when more "
                           f"than 2 (got shape {list(self.shape)})")
    if needs_recording(self, fill_value):
        mask = self._xp.zeros(self.shape, bool)
        self._xp.fill_diagonal(mask, True, wrap=wrap)
        return record_inplace(self, "fill_diagonal_", lambda alias: masked_fill(alias, mask, fill_value))
    return update_in_place(self, "fill_diagonal_", lambda xp, a: xp.fill_diagonal(a, fill_value, wrap=wrap))


bind_methods(diagonal=diagonal, diagonal_scatter=diagonal_scatter, diag_embed=diag_embed, diag=diag,
             fill_diagonal_=fill_diagonal_)
