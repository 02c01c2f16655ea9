"""Reductions: ``sum mean var std prod logsumexp norm all any`` and ``cumsum``, with PyTorch's
``dim``/``keepdim`` arguments, dtypes and errors. The extremes (``amax max argmax`` ...) live in
``extremes.py``.

``dim`` is an int, a tuple of ints, or None (every dim). Backward broadcasts the gradient back over
the reduced dims with ``expand_back`` and is written with Tensor ops, so it can be differentiated
again. float16 and bfloat16 inputs accumulate in float32 and round on output; bool and integer sums
and products give int64.
"""
from __future__ import annotations

import math

import numpy as np

from distgrad import dtypes
from distgrad.autograd.function import Function
from distgrad.ops.autocasting import autocast_op
from distgrad.ops import elementwise
from distgrad.ops.broadcast import broadcast_to
from distgrad.ops.dims import wrap_dim
from distgrad.ops.shape import flip, reshape
from distgrad.tensor import Tensor, bind_methods

__all__ = ["sum", "mean", "var", "std", "prod", "logsumexp", "norm", "all", "any", "cumsum"]


# --- helpers ---------------------------------------------------------------------------------------
def reduced_axes(dim, ndim: int) -> tuple:
    """The reduced axes, sorted: every one for None or ``()``; a 0-d tensor has none."""
    if dim is None or dim == ():
        return tuple(range(ndim))
    dims = tuple(dim) if isinstance(dim, (tuple, list)) else (dim,)
    axes = [wrap_dim(d, ndim) for d in dims]
    for d in axes:
        if axes.count(d) > 1:
            raise RuntimeError(f"dim {d} appears multiple times in the list of dims")
    return tuple(sorted(axes)) if ndim else ()


def _kept_shape(shape: tuple, axes: tuple) -> tuple:
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def expand_back(t: Tensor, in_shape: tuple, axes: tuple) -> Tensor:
    """A reduced tensor (with or without ``keepdim``) broadcast back to the input's shape."""
    return broadcast_to(reshape(t, _kept_shape(in_shape, axes)), in_shape)


def _count(shape: tuple, axes: tuple) -> int:
    return math.prod(shape[a] for a in axes)


def _accumulator(dtype) -> np.dtype | None:
    """The dtype to accumulate in: float32 for float16 and bfloat16, int64 for bools and integers."""
    if dtype in dtypes.LOW_PRECISION:
        return dtypes.float32
    if dtype not in dtypes.FLOATING:
        return dtypes.int64
    return None


def _summed_type(dtype) -> np.dtype:
    """The dtype of a sum or product: int64 for bools and integers, the input's for floats."""
    return dtype if dtype in dtypes.FLOATING else dtypes.int64


def _require_float(t: Tensor, message: str) -> None:
    if t.dtype not in dtypes.FLOATING:
        raise RuntimeError(message)


def constant_like(like: Tensor, array) -> Tensor:
    """An array as a Tensor of ``like``'s dtype, outside the graph (masks and weights in backward)."""
    return Tensor(array.astype(like.dtype, copy=False))


# --- sum, mean, var, std -----------------------------------------------------------------------------
class Sum(Function):
    @staticmethod
    def forward(ctx, a, axes, keepdim):
        ctx.in_shape, ctx.axes = a.shape, axes
        out = a.array.sum(axis=axes, keepdims=keepdim, dtype=_accumulator(a.dtype))
        return out.astype(_summed_type(a.dtype), copy=False)

    @staticmethod
    def backward(ctx, grad):
        return expand_back(grad, ctx.in_shape, ctx.axes), None, None


@autocast_op()
def sum(input: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    """The sum over ``dim``; bools and integers sum to int64."""
    return Sum.apply(input, reduced_axes(dim, input.ndim), keepdim)


class Mean(Function):
    @staticmethod
    def forward(ctx, a, axes, keepdim):
        ctx.in_shape, ctx.axes = a.shape, axes
        total = a.array.sum(axis=axes, keepdims=keepdim, dtype=_accumulator(a.dtype))
        with np.errstate(invalid="ignore"):  # the mean of nothing is nan, as in torch
            return (total / _count(a.shape, axes)).astype(a.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        return expand_back(grad, ctx.in_shape, ctx.axes) / _count(ctx.in_shape, ctx.axes), None, None


def mean(input: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    """The mean over ``dim`` (floating point tensors only)."""
    _require_float(input, "mean(): could not infer output dtype. Input dtype must be either a floating "
                   f"point or complex dtype. Got: {input.dtype.name}")
    return Mean.apply(input, reduced_axes(dim, input.ndim), keepdim)


def _degrees_of_freedom(shape: tuple, axes: tuple, correction) -> float:
    return max(_count(shape, axes) - correction, 0)


def _var_array(a: Tensor, axes: tuple, keepdim: bool, correction):
    data = a.array.astype(_accumulator(a.dtype) or a.dtype, copy=False)
    with np.errstate(invalid="ignore", divide="ignore"):  # no degrees of freedom: inf or nan, as in torch
        centered = data - data.sum(axis=axes, keepdims=True) / _count(a.shape, axes)
        return (centered * centered).sum(axis=axes, keepdims=keepdim) / _degrees_of_freedom(a.shape, axes, correction)


def _var_grad(grad: Tensor, x: Tensor, axes: tuple, correction) -> Tensor:
    """d var / d x = 2 (x - mean) / dof, times the incoming (already broadcast) gradient."""
    dof = _degrees_of_freedom(x.shape, axes, correction)
    scale = 2.0 / dof if dof else math.inf
    return grad * (x - mean(x, axes, keepdim=True)) * scale


class Var(Function):
    @staticmethod
    def forward(ctx, a, axes, keepdim, correction):
        ctx.axes, ctx.correction = axes, correction
        ctx.save_for_backward(a)
        return _var_array(a, axes, keepdim, correction).astype(a.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return _var_grad(expand_back(grad, x.shape, ctx.axes), x, ctx.axes, ctx.correction), None, None, None


class Std(Function):
    @staticmethod
    def forward(ctx, a, axes, keepdim, correction):
        ctx.axes, ctx.correction = axes, correction
        out = Tensor(a._xp.sqrt(_var_array(a, axes, keepdim, correction)).astype(a.dtype, copy=False))
        ctx.save_for_backward(a, out)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, out = ctx.saved_tensors
        # d sqrt(v) = dv / (2 sqrt(v)); a zero std has a zero gradient, as in torch: divide by 1 there
        safe_std = out + constant_like(out, out.array == 0)
        grad = expand_back(grad / (safe_std * 2), x.shape, ctx.axes)
        return _var_grad(grad, x, ctx.axes, ctx.correction), None, None, None


def _var_args(op: str, input: Tensor, dim, unbiased, correction):
    _require_float(input, "std and var only support floating point and complex dtypes")
    if isinstance(dim, bool):  # var(x, False): the legacy positional ``unbiased``
        dim, unbiased = None, dim
    if unbiased is not None and correction is not None:
        raise RuntimeError(f"{op}(): cannot specify both unbiased and correction")
    if correction is None:
        correction = 1 if unbiased is None or unbiased else 0
    return reduced_axes(dim, input.ndim), correction


def var(input: Tensor, dim=None, unbiased: bool | None = None, keepdim: bool = False, *, correction=None) -> Tensor:
    """The variance over ``dim``: squared deviations summed, divided by ``N - correction``
    (``correction=1``, Bessel's, by default; ``unbiased=False`` means 0)."""
    axes, correction = _var_args("var", input, dim, unbiased, correction)
    return Var.apply(input, axes, keepdim, correction)


def std(input: Tensor, dim=None, unbiased: bool | None = None, keepdim: bool = False, *, correction=None) -> Tensor:
    """The square root of ``var`` (same arguments)."""
    axes, correction = _var_args("std", input, dim, unbiased, correction)
    return Std.apply(input, axes, keepdim, correction)


# --- prod, logsumexp ---------------------------------------------------------------------------------
class Prod(Function):
    @staticmethod
    def forward(ctx, a, axes, keepdim):
        ctx.axes = axes
        out = Tensor(a.array.prod(axis=axes, keepdims=keepdim, dtype=_accumulator(a.dtype)).astype(
            _summed_type(a.dtype), copy=False))
        ctx.save_for_backward(a, out)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, out = ctx.saved_tensors
        grad = expand_back(grad, x.shape, ctx.axes)
        zeros = x.array == 0
        if not zeros.any():
            return grad * expand_back(out, x.shape, ctx.axes) / x, None, None
        return grad * _product_of_others(x, zeros, ctx.axes), None, None


def _product_of_others(x: Tensor, zeros, axes: tuple) -> Tensor:
    """For each entry, the product of the other entries of its slice, for slices holding zeros.

    It is (product of the nonzero others) * (product of the zero others). The first factor divides
    out no zero; the second is 1 or 0, written so that its derivative is also exact: with one zero
    in the slice it is that zero's value for the other entries (1 for the zero itself); with two,
    it is the other zero's value for each zero (0 elsewhere); with more, every derivative is 0.
    """
    zero_count = zeros.sum(axis=axes, keepdims=True)
    is_zero = constant_like(x, zeros)
    no_zero, one_zero, two_zeros = (constant_like(x, zero_count == k) for k in (0, 1, 2))
    nonzero = x * (1 - is_zero) + is_zero  # zeros replaced by ones that pass no gradient
    nonzero_product = prod(nonzero, axes, keepdim=True)
    zero_sum = sum(x * is_zero, axes, keepdim=True)
    zero_others = (no_zero + is_zero * (one_zero + two_zeros * (zero_sum - x))
                   + (1 - is_zero) * one_zero * zero_sum)
    return nonzero_product / nonzero * zero_others


@autocast_op()
def prod(input: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    """The product over ``dim``; its gradient is exact where entries are zero."""
    return Prod.apply(input, reduced_axes(dim, input.ndim), keepdim)


class LogSumExp(Function):
    @staticmethod
    def forward(ctx, a, axes, keepdim):
        xp = a._xp
        ctx.axes = axes
        floating = a.dtype in dtypes.FLOATING  # integers give the default float dtype, as in torch
        compute = dtypes.compute_dtype(a.dtype if floating else dtypes.get_default_dtype())
        data = a.array.astype(compute, copy=False)
        if data.size:  # subtract the max so that exp cannot overflow; infinite maxima subtract nothing
            peak = data.max(axis=axes, keepdims=True)
            peak = xp.where(xp.isfinite(peak), peak, 0)
        else:
            peak = xp.zeros(_kept_shape(a.shape, axes), data.dtype)
        with np.errstate(divide="ignore"):  # log(0) = -inf for empty slices
            out = xp.log(xp.exp(data - peak).sum(axis=axes, keepdims=True)) + peak
        out_dtype = a.dtype if floating else dtypes.get_default_dtype()
        out = Tensor((out if keepdim else out.squeeze(axis=axes)).astype(out_dtype, copy=False))
        ctx.save_for_backward(a, out)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, out = ctx.saved_tensors
        softmax = elementwise.exp(x - expand_back(out, x.shape, ctx.axes))
        return expand_back(grad, x.shape, ctx.axes) * softmax, None, None


@autocast_op()
def logsumexp(input: Tensor, dim, keepdim: bool = False) -> Tensor:
    """``log(sum(exp(input), dim))``, computed without overflow."""
    return LogSumExp.apply(input, reduced_axes(dim, input.ndim), keepdim)


# --- norm ----------------------------------------------------------------------------------------------
class Norm(Function):
    @staticmethod
    def forward(ctx, a, p, axes, keepdim):
        xp = a._xp
        ctx.p, ctx.axes = p, axes
        data = a.array.astype(_accumulator(a.dtype) or a.dtype, copy=False)
        size = xp.abs(data)
        if p == math.inf or p == -math.inf:
            out = (size.max if p > 0 else size.min)(axis=axes, keepdims=keepdim)
        elif p == 0:
            out = (size != 0).sum(axis=axes, keepdims=keepdim).astype(data.dtype)
        elif p == 1:
            out = size.sum(axis=axes, keepdims=keepdim)
        elif p == 2:
            out = xp.sqrt((data * data).sum(axis=axes, keepdims=keepdim))
        else:
            out = (size ** p).sum(axis=axes, keepdims=keepdim) ** (1.0 / p)
        out = Tensor(out.astype(a.dtype, copy=False))
        ctx.save_for_backward(a, out)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, out = ctx.saved_tensors
        p, axes = ctx.p, ctx.axes
        grad = expand_back(grad, x.shape, axes)
        norm = expand_back(out, x.shape, axes)
        sign = constant_like(x, x._xp.sign(x.array))
        if p == 0:
            return grad * 0, None, None, None
        if p == 1:
            return grad * sign, None, None, None
        if p == math.inf or p == -math.inf:
            ties = x._xp.abs(x.array) == norm.array
            with np.errstate(invalid="ignore"):
                share = ties / ties.sum(axis=axes, keepdims=True)
            return grad * sign * constant_like(x, share), None, None, None
        # A zero norm has a zero gradient, as in torch: divide by 1 there instead of by 0.
        safe_norm = norm + constant_like(x, norm.array == 0)
        if p == 2:
            return grad * x / safe_norm, None, None, None
        return grad * sign * (x * sign) ** (p - 1) / safe_norm ** (p - 1), None, None, None


@autocast_op()
def norm(input: Tensor, p=2, dim=None, keepdim: bool = False) -> Tensor:
    """The vector p-norm over ``dim`` (every dim by default): ``sum(|x|**p) ** (1/p)``.

    ``p`` is a number, ``inf``, ``-inf`` or ``'fro'`` (= 2 over the given dims); the nuclear norm
    is not supported.
    """
    if p == "fro":
        p = 2
    if isinstance(p, str):
        raise ValueError(f"norm: p={p!r} is not supported; use a number, inf, -inf or 'fro'")
    _require_float(input, "linalg.vector_norm: Expected a floating point or complex tensor as input. "
                   f"Got {input.dtype.name}")
    return Norm.apply(input, float(p), reduced_axes(dim, input.ndim), keepdim)


# --- all, any, cumsum ------------------------------------------------------------------------------------
def all(input: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    """True where every entry over ``dim`` is nonzero (a bool tensor, outside the graph)."""
    return Tensor(input._xp.asarray(input.array.all(axis=reduced_axes(dim, input.ndim), keepdims=keepdim)))


def any(input: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    """True where some entry over ``dim`` is nonzero (a bool tensor, outside the graph)."""
    return Tensor(input._xp.asarray(input.array.any(axis=reduced_axes(dim, input.ndim), keepdims=keepdim)))


class Cumsum(Function):
    @staticmethod
    def forward(ctx, a, axis):
        ctx.axis = axis
        if a.ndim == 0:
            return a.array.astype(_summed_type(a.dtype))
        out = a.array.cumsum(axis=axis, dtype=_accumulator(a.dtype))
        return out.astype(_summed_type(a.dtype), copy=False)

    @staticmethod
    def backward(ctx, grad):
        if grad.ndim == 0:
            return grad, None
        # Entry i feeds every output from i on: the gradient is a cumulative sum taken from the end.
        return flip(cumsum(flip(grad, ctx.axis), ctx.axis), ctx.axis), None


@autocast_op()
def cumsum(input: Tensor, dim: int) -> Tensor:
    """Running sums along ``dim``; bools and integers sum to int64."""
    return Cumsum.apply(input, wrap_dim(dim, input.ndim))


bind_methods(
    sum=sum, mean=mean, var=var, std=std, prod=prod, logsumexp=logsumexp, norm=norm, all=all, any=any, cumsum=cumsum,
)
