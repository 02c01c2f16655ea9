"""Running products and extremes along a dim: ``cumprod`` (and ``cumprod_``), ``cummax``, ``cummin``.
``cumsum`` lives in ``reduction.py``.

``cumprod``'s gradient for input ``x_i`` is ``sum_{j >= i} g_j * prod_{k <= j, k != i} x_k``:

* without zeros in ``x`` it is ``reverse_cumsum(g * out) / x``;
* with zeros (first-order backward): before the first zero ``z`` of a slice the same formula holds; at
  ``z`` it is ``reverse_cumsum(g * cumprod(x with x_z set to 1))``; after ``z`` it is 0 (PyTorch's rule);
* with zeros under ``create_graph=True`` the gradient must stay exact as a function of ``x`` (its value
  after ``z`` is 0 but its derivative in ``x_z`` is not), so it is computed without any division, as
  ``sum_j g_j * C[i, j] * (j >= i)`` with ``C[i] = cumprod(x with x_i set to 1)``: O(n^2) per slice, as
  PyTorch does for double backward.

``cummax``/``cummin`` find, for each position, the index of the running extreme (the latest one among
ties, and the latest NaN once a NaN was seen, as in PyTorch), then gather the values there: the
gradient goes to that index. The running extreme is a scan in log2(n) vectorised steps, because CuPy
has no ``maximum.accumulate``.
"""
from __future__ import annotations

import collections

import numpy as np

from distgrad.autograd.function import Function
from distgrad.dtypes import LOW_PRECISION, is_floating_point
from distgrad.autograd.grad_mode import is_grad_enabled
from distgrad.ops.autocasting import autocast_op
from distgrad.ops.dims import wrap_dim
from distgrad.ops.indexing import gather
from distgrad.ops.inplace import needs_recording, record_inplace, update_in_place
from distgrad.ops.reduction import constant_like, cumsum
from distgrad.ops.shape import flip, movedim, reshape
from distgrad.tensor import Tensor, bind_methods

__all__ = ["cumprod", "cummax", "cummin"]

return_types = {name: collections.namedtuple(name, ["values", "indices"]) for name in ("cummax", "cummin")}


def _reverse_cumsum(t: Tensor, axis: int) -> Tensor:
    return flip(cumsum(flip(t, axis), axis), axis)


class Cumprod(Function):
    @staticmethod
    def forward(ctx, a, axis):
        ctx.axis = axis
        data = a.array
        if data.dtype.kind in "biu":  # integer products accumulate and come back in int64, as in torch
            out = data.cumprod(axis=axis, dtype=np.int64)
        elif data.dtype in LOW_PRECISION:  # float16/bfloat16 accumulate in float32, as in torch
            out = data.cumprod(axis=axis, dtype=np.float32).astype(data.dtype)
        else:
            out = data.cumprod(axis=axis)
        out = Tensor(out)
        ctx.save_for_backward(a, out)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, out = ctx.saved_tensors
        axis = ctx.axis
        zeros = x.array == 0
        if not zeros.any():
            return _reverse_cumsum(grad * out, axis) / x, None
        if is_grad_enabled():
            return _exact_grad(grad, x, axis), None
        seen = zeros.cumsum(axis=axis)
        before = constant_like(x, seen == 0)  # the entries before the slice's first zero
        first = constant_like(x, zeros & (seen == 1))  # the first zero itself
        safe_x = x * before + (1 - before)
        at_first = _reverse_cumsum(grad * cumprod(x * (1 - first) + first, axis), axis)
        return before * _reverse_cumsum(grad * out, axis) / safe_x + first * at_first, None


def _exact_grad(grad: Tensor, x: Tensor, axis: int) -> Tensor:
    """The gradient without division (differentiable again where ``x`` has zeros): see the docstring."""
    n = x.shape[axis]
    xl, gl = movedim(x, axis, -1), movedim(grad, axis, -1)
    xp = x._xp
    eye = constant_like(x, xp.eye(n))
    others = reshape(xl, xl.shape[:-1] + (1, n)) * (1 - eye) + eye  # row i: x with x_i set to 1
    upper = constant_like(x, xp.triu(xp.ones((n, n))))  # [i, j]: j >= i
    g = (cumprod(others, -1) * upper * reshape(gl, gl.shape[:-1] + (1, n))).sum(-1)
    return movedim(g, -1, axis)


@autocast_op()
def cumprod(input: Tensor, dim: int, *, dtype=None) -> Tensor:
    """Running products along ``dim`` (bools and integers give int64); ``dtype`` casts the input first.
    The gradient is exact where the input has zeros."""
    if dtype is not None:
        input = input.to(dtype)
    if input.ndim == 0:
        return Cumprod.apply(reshape(input, (1,)), 0).reshape(())
    return Cumprod.apply(input, wrap_dim(dim, input.ndim))


def cumprod_(self: Tensor, dim: int, *, dtype=None) -> Tensor:
    """In-place ``cumprod``."""
    axis = wrap_dim(dim, self.ndim)
    if needs_recording(self):
        return record_inplace(self, "cumprod_", lambda alias: cumprod(alias, dim, dtype=dtype))
    def update(xp, a):
        if a.ndim:
            a[...] = xp.cumprod(a, axis=axis)  # through a temporary: the scan may not run in place on a GPU
    return update_in_place(self, "cumprod_", update)


# --- cummax, cummin ------------------------------------------------------------------------------------
def running(pick, data, axis: int):
    """The running ``pick`` (``xp.maximum``/``xp.minimum``) of ``data`` along ``axis``: a Hillis-Steele
    scan, whose step s combines each entry with the one s before it, for s = 1, 2, 4, ..."""
    out = data.copy()
    n, step = data.shape[axis], 1
    while step < n:
        later = (slice(None),) * axis + (slice(step, None),)
        earlier = (slice(None),) * axis + (slice(None, n - step),)
        out[later] = pick(out[later], out[earlier])  # the right side is a new array: no overlap
        step *= 2
    return out


def _running_extreme(op: str, input: Tensor, dim: int):
    if input.ndim == 0:
        values, indices = _running_extreme(op, reshape(input, (1,)), 0)
        return return_types[op](reshape(values, ()), reshape(indices, ()))
    axis = wrap_dim(dim, input.ndim)
    xp, data = input._xp, input.array
    extreme = running(xp.maximum if op == "cummax" else xp.minimum, data, axis)
    reached = data == extreme  # positions where the running extreme is (re)attained
    if is_floating_point(data.dtype):
        reached |= xp.isnan(data) & xp.isnan(extreme)
    positions = xp.arange(data.shape[axis], dtype=np.int64).reshape((-1,) + (1,) * (data.ndim - axis - 1))
    indices = running(xp.maximum, xp.where(reached, positions, 0), axis)
    return return_types[op](gather(input, axis, indices), Tensor(indices))


def cummax(input: Tensor, dim: int):
    """``(values, indices)``: the running maximum along ``dim`` and where it was (the latest among ties)."""
    return _running_extreme("cummax", input, dim)


def cummin(input: Tensor, dim: int):
    """``(values, indices)``: the running minimum along ``dim`` and where it was (the latest among ties)."""
    return _running_extreme("cummin", input, dim)


bind_methods(cumprod=cumprod, cumprod_=cumprod_, cummax=cummax, cummin=cummin)
