"""``softmax``, ``log_softmax``, ``softmin``: numerically stable, one Function each.

Both subtract the maximum along ``dim`` before exponentiating, so large logits never overflow.
Their backward passes are written with Tensor ops, so second derivatives work.
"""
from __future__ import annotations

import warnings

from distgrad.autograd.function import Function
from distgrad.autograd.grad_mode import is_grad_enabled
from distgrad.dtypes import FLOATING, compute_dtype
from distgrad.ops.autocasting import autocast_op
from distgrad.kernels import rows as row_kernels
from distgrad.ops.broadcast import sum_to
from distgrad.ops.dims import wrap_dim
from distgrad.tensor import Tensor, bind_methods

__all__ = ["softmax", "log_softmax", "softmin"]


def reduced_shape(shape: tuple, dim: int) -> tuple:
    """``shape`` with ``dim`` set to 1: the shape of a ``keepdim`` reduction along ``dim``."""
    return shape[:dim] + (1,) + shape[dim + 1:] if shape else ()


def _shifted(x, axis):
    """``x`` minus its maximum along ``axis`` (every entry <= 0, so ``exp`` cannot overflow)."""
    if x.size == 0:
        return x.copy()
    return x - x.max(axis=axis, keepdims=True)


class Softmax(Function):
    @staticmethod
    def forward(ctx, x, dim):
        ctx.dim = dim
        if row_kernels.softmax_applies(x.array, dim):  # the GPU kernel: one pass per row
            out = Tensor(row_kernels.softmax(x.array))
            ctx.save_for_backward(out)
            return out
        xp = x._xp
        axis = dim if x.ndim else None
        e = xp.exp(_shifted(x.array.astype(compute_dtype(x.dtype), copy=False), axis))  # 16-bit: in float32
        e /= e.sum(axis=axis, keepdims=True)
        out = Tensor(e.astype(x.dtype, copy=False))
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        if not is_grad_enabled() and grad.dtype == y.dtype and row_kernels.softmax_applies(y.array, ctx.dim):
            return Tensor(row_kernels.softmax_backward(grad.array, y.array)), None
        gy = grad * y
        return gy - y * sum_to(gy, reduced_shape(y.shape, ctx.dim)), None


class LogSoftmax(Function):
    """Saves the input (and, on the GPU kernel path, the output, from which the first-order backward is
    computed in one pass: ``grad - exp(out) * sum(grad)``)."""

    @staticmethod
    def forward(ctx, x, dim):
        ctx.dim = dim
        if row_kernels.softmax_applies(x.array, dim):
            out = Tensor(row_kernels.softmax(x.array, log=True))
            ctx.save_for_backward(x, out)
            return out
        xp = x._xp
        axis = dim if x.ndim else None
        shifted = _shifted(x.array.astype(compute_dtype(x.dtype), copy=False), axis)  # 16-bit: in float32
        shifted -= xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))
        ctx.save_for_backward(x, None)
        return shifted.astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        x, out = ctx.saved_tensors
        if out is not None and not is_grad_enabled() and grad.dtype == out.dtype:
            return Tensor(row_kernels.softmax_backward(grad.array, out.array, log=True)), None
        # d log_softmax(x)_i / dx_j = delta_ij - softmax(x)_j; the softmax is an op, so it differentiates again.
        return grad - softmax(x, ctx.dim) * sum_to(grad, reduced_shape(x.shape, ctx.dim)), None


def _softmax_dim(name: str, input: Tensor, dim) -> int:
    if dim is None:  # PyTorch's legacy choice, kept for old call sites
        dim = 0 if input.ndim in (0, 1, 3) else 1
        warnings.warn(f"Implicit dimension choice for {name} has been deprecated. "
                      f"Change the call to include dim=X as an argument.", stacklevel=3)
    if input.dtype not in FLOATING:
        raise NotImplementedError(f'"{name}" not implemented for \'{input.dtype.name}\'; '
                                  f"pass a floating point tensor or dtype=")
    return wrap_dim(dim, input.ndim)


def _cast(input: Tensor, dtype) -> Tensor:
    return input if dtype is None else input.to(dtype)


@autocast_op()
def softmax(input: Tensor, dim: int | None = None, dtype=None) -> Tensor:
    """``exp(x) / exp(x).sum(dim)``, computed without overflow; ``dtype`` casts the input first."""
    input = _cast(input, dtype)
    return Softmax.apply(input, _softmax_dim("softmax", input, dim))


@autocast_op()
def log_softmax(input: Tensor, dim: int | None = None, dtype=None) -> Tensor:
    """``x - logsumexp(x, dim)``: the log of ``softmax``, accurate even where ``softmax`` underflows to 0."""
    input = _cast(input, dtype)
    return LogSoftmax.apply(input, _softmax_dim("log_softmax", input, dim))


@autocast_op()
def softmin(input: Tensor, dim: int | None = None, dtype=None) -> Tensor:
    """``softmax(-x, dim)``."""
    input = _cast(input, dtype)
    return Softmax.apply(-input, _softmax_dim("softmin", input, dim))


bind_methods(softmax=softmax, log_softmax=log_softmax)
