"""Triangles of matrices: ``tril triu`` (and ``tril_ triu_``) on the last two dims, and the index
lists ``tril_indices triu_indices``.

``tril(x, k)`` keeps entry ``[i, j]`` where ``j - i <= k`` (``triu``: ``j - i >= k``) and zeroes the
rest; its gradient is the same triangle of the output gradient.
"""
from __future__ import annotations

import numpy as np

from distgrad import creation, dtypes
from distgrad.autograd.function import Function
from distgrad.ops.inplace import needs_recording, record_inplace, update_in_place
from distgrad.tensor import Tensor, bind_methods

__all__ = ["tril", "triu", "tril_indices", "triu_indices"]


def _kept(xp, rows: int, cols: int, diagonal: int, lower: bool):
    """The (rows, cols) boolean mask of the lower (``j - i <= diagonal``) or upper triangle."""
    offset = xp.arange(cols)[None, :] - xp.arange(rows)[:, None]
    return offset <= diagonal if lower else offset >= diagonal


class Triangle(Function):
    @staticmethod
    def forward(ctx, a, diagonal, lower):
        ctx.diagonal, ctx.lower = diagonal, lower
        xp = a._xp
        return xp.where(_kept(xp, *a.shape[-2:], diagonal, lower), a.array, xp.zeros((), a.dtype))

    @staticmethod
    def backward(ctx, grad):
        return Triangle.apply(grad, ctx.diagonal, ctx.lower), None, None


def _check(op: str, input: Tensor) -> None:
    if input.ndim < 2:
        raise RuntimeError(f"{op}: input tensor must have at least 2 dimensions (got shape {list(input.shape)})")


def tril(input: Tensor, diagonal: int = 0) -> Tensor:
    """The lower triangle of the last two dims: entries with ``col - row <= diagonal``, zeros elsewhere."""
    _check("tril", input)
    return Triangle.apply(input, int(diagonal), True)


def triu(input: Tensor, diagonal: int = 0) -> Tensor:
    """The upper triangle of the last two dims: entries with ``col - row >= diagonal``, zeros elsewhere."""
    _check("triu", input)
    return Triangle.apply(input, int(diagonal), False)


def _triangle_(op: str, lower: bool):
    def method(self: Tensor, diagonal: int = 0) -> Tensor:
        _check(op, self)
        if needs_recording(self):
            return record_inplace(self, op, lambda alias: Triangle.apply(alias, int(diagonal), lower))
        return update_in_place(self, op, lambda xp, a: xp.copyto(a, 0, where=~_kept(xp, *a.shape[-2:],
                                                                                      int(diagonal), lower)))
    method.__name__ = op
    method.__doc__ = f"In-place ``{op[:-1]}``."
    return method


def _indices(op: str, row: int, col: int, offset: int, dtype, device, lower: bool) -> Tensor:
    if row < 0 or col < 0:
        raise RuntimeError(f"{op}: row and col must be non-negative, got row={row}, col={col}")
    dtype = dtypes.to_dtype(dtype) or dtypes.int64
    if dtype.kind not in "iu":
        raise RuntimeError(f"{op}: dtype must be an integer type, got {dtype.name}")
    rows, cols = np.nonzero(_kept(np, row, col, offset, lower))  # row-major order, as in torch
    return creation.tensor(np.stack([rows, cols]).astype(dtype), device=device)


def tril_indices(row: int, col: int, offset: int = 0, *, dtype=None, device=None) -> Tensor:
    """A (2, N) tensor of the (row, col) coordinates of the lower triangle of a ``row x col`` matrix."""
    return _indices("tril_indices", row, col, offset, dtype, device, True)


def triu_indices(row: int, col: int, offset: int = 0, *, dtype=None, device=None) -> Tensor:
    """A (2, N) tensor of the (row, col) coordinates of the upper triangle of a ``row x col`` matrix."""
    return _indices("triu_indices", row, col, offset, dtype, device, False)


bind_methods(tril=tril, triu=triu, tril_=_triangle_("tril_", True), triu_=_triangle_("triu_", False))
