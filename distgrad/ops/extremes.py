"""Extremes: ``amax amin max min argmax argmin``, with PyTorch's ``dim``/``keepdim`` arguments and errors.

``amax``/``amin`` (and ``max``/``min`` without ``dim``) share the gradient evenly among tied entries;
``max``/``min`` along a dim return ``(values, indices)`` and send the gradient to the index.
``argmax``/``argmin`` return int64 indices outside the graph.
"""
from __future__ import annotations

import collections

import numpy as np

from distgrad.autograd.function import Function
from distgrad.autograd.tracing import state as _tracing
from distgrad.ops import elementwise
from distgrad.ops.broadcast import broadcast_to
from distgrad.ops.dims import wrap_dim
from distgrad.ops.reduction import constant_like, expand_back, reduced_axes
from distgrad.ops.shape import reshape
from distgrad.tensor import Tensor, bind_methods

__all__ = ["amax", "amin", "max", "min", "argmax", "argmin"]

# What ``max``/``min`` with a ``dim`` return, like ``torch.return_types.max``.
return_types = {name: collections.namedtuple(name, ["values", "indices"]) for name in ("max", "min")}


class _Extreme(Function):
    """``amax``/``amin``: the gradient is shared evenly among the entries equal to the extreme."""

    pick = None  # "max" or "min"

    @classmethod
    def forward(cls, ctx, a, axes, keepdim):
        ctx.axes = axes
        out = Tensor(getattr(a.array, cls.pick)(axis=axes, keepdims=keepdim))
        ctx.save_for_backward(a, out)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, out = ctx.saved_tensors
        ties = x.array == expand_back(out, x.shape, ctx.axes).array
        with np.errstate(invalid="ignore"):
            share = ties / ties.sum(axis=ctx.axes, keepdims=True)
        return expand_back(grad, x.shape, ctx.axes) * constant_like(x, share), None, None


class AMax(_Extreme):
    pick = "max"


class AMin(_Extreme):
    pick = "min"


def _check_nonempty(op: str, input: Tensor, axes: tuple | None) -> None:
    """Extremes of nothing do not exist: ``axes`` None stands for a call without ``dim``."""
    if input.numel():
        return
    if axes is None:
        if op in ("max", "min"):
            raise RuntimeError(f"{op}(): Expected reduction dim to be specified for input.numel() == 0. Specify "
                               "the reduction dim with the 'dim' argument.")
        raise IndexError(f"{op}(): Expected reduction dim to be specified for input.numel() == 0.")
    for a in axes:
        if input.shape[a] == 0:
            raise IndexError(f"{op}(): Expected reduction dim {a} to have non-zero size.")


def amax(input: Tensor, dim=(), keepdim: bool = False) -> Tensor:
    """The largest entry over ``dim`` (every dim by default); ties share the gradient evenly."""
    axes = reduced_axes(dim, input.ndim)
    _check_nonempty("amax", input, axes)
    return AMax.apply(input, axes, keepdim)


def amin(input: Tensor, dim=(), keepdim: bool = False) -> Tensor:
    """The smallest entry over ``dim`` (every dim by default); ties share the gradient evenly."""
    axes = reduced_axes(dim, input.ndim)
    _check_nonempty("amin", input, axes)
    return AMin.apply(input, axes, keepdim)


class _ExtremeAlongDim(Function):
    """``max``/``min`` along one dim: values and int64 indices; the gradient goes to the index."""

    pick = None  # "argmax" or "argmin"

    @classmethod
    def forward(cls, ctx, a, axis, keepdim):
        xp = a._xp
        ctx.indices = None
        if a.ndim == 0:
            return a.array.copy(), xp.zeros((), np.int64)
        indices = xp.expand_dims(getattr(a.array, cls.pick)(axis=axis), axis).astype(np.int64, copy=False)
        ctx.axis, ctx.size, ctx.indices = axis, a.shape[axis], indices
        values = xp.take_along_axis(a.array, indices, axis)
        if not keepdim:
            values, indices = values.squeeze(axis), indices.squeeze(axis)
        return values, indices.copy()  # a copy: writes to the output leave backward's indices alone

    @staticmethod
    def backward(ctx, grad_values, grad_indices):
        if ctx.indices is None:  # a 0-d tensor is its own extreme
            return grad_values, None, None
        positions = grad_values._xp.arange(ctx.size).reshape([-1 if i == ctx.axis else 1
                                                               for i in range(ctx.indices.ndim)])
        chosen = positions == ctx.indices
        grad = broadcast_to(reshape(grad_values, ctx.indices.shape), chosen.shape)
        return grad * constant_like(grad_values, chosen), None, None


class MaxAlongDim(_ExtremeAlongDim):
    pick = "argmax"


class MinAlongDim(_ExtremeAlongDim):
    pick = "argmin"


def _max_or_min(op: str, input: Tensor, dim, keepdim: bool):
    if isinstance(dim, Tensor):
        if keepdim:
            raise TypeError(f"{op}(input, other) takes no keepdim")
        return (elementwise.maximum if op == "max" else elementwise.minimum)(input, dim)
    if dim is None:
        _check_nonempty(op, input, None)
        return (AMax if op == "max" else AMin).apply(input, tuple(range(input.ndim)), False)
    axis = wrap_dim(dim, input.ndim)
    if input.ndim:
        _check_nonempty(op, input, (axis,))
    values, indices = (MaxAlongDim if op == "max" else MinAlongDim).apply(input, axis, keepdim)
    return return_types[op](values, indices)


def max(input: Tensor, dim=None, keepdim: bool = False):
    """Without ``dim``: the largest entry (ties share the gradient). With an int ``dim``: the named
    tuple ``(values, indices)`` along it. With a tensor: ``maximum(input, other)``."""
    return _max_or_min("max", input, dim, keepdim)


def min(input: Tensor, dim=None, keepdim: bool = False):
    """Like ``max``, for the smallest entries."""
    return _max_or_min("min", input, dim, keepdim)


def _arg_extreme(op: str, input: Tensor, dim, keepdim: bool) -> Tensor:
    if _tracing.hook is not None:  # dg.onnx.export records the ops that have no Function too
        return _tracing.hook(argmax if op == "argmax" else argmin, (input, dim, keepdim), {})
    xp = input._xp
    pick = getattr(xp, op)
    if dim is None:
        _check_nonempty(op, input, None)
        index = pick(input.array.reshape(-1)).astype(np.int64)
        return Tensor(index.reshape((1,) * input.ndim) if keepdim else xp.asarray(index))
    axis = wrap_dim(dim, input.ndim)
    if input.ndim == 0:
        return Tensor(xp.zeros((), np.int64))
    _check_nonempty(op, input, (axis,))
    return Tensor(pick(input.array, axis=axis, keepdims=keepdim).astype(np.int64, copy=False))


def argmax(input: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
    """The int64 index of the largest entry along ``dim`` (of the flattened tensor when None)."""
    return _arg_extreme("argmax", input, dim, keepdim)


def argmin(input: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
    """The int64 index of the smallest entry along ``dim`` (of the flattened tensor when None)."""
    return _arg_extreme("argmin", input, dim, keepdim)


bind_methods(amax=amax, amin=amin, max=max, min=min, argmax=argmax, argmin=argmin)
