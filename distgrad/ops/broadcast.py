"""Broadcasting and its adjoint: every binary op's backward sums its gradient back with ``sum_to``."""
from __future__ import annotations

from distgrad.autograd.function import Function
from distgrad.tensor import Tensor, bind_methods

__all__ = ["broadcast_to", "expand", "expand_as", "sum_to"]


def _reduced_axes(from_shape: tuple, to_shape: tuple) -> tuple:
    lead = len(from_shape) - len(to_shape)
    if lead < 0:
        raise RuntimeError(f"cannot sum shape {list(from_shape)} to the larger shape {list(to_shape)}")
    axes = list(range(lead))
    for i, n in enumerate(to_shape):
        if n == 1 and from_shape[lead + i] != 1:
            axes.append(lead + i)
        elif n != from_shape[lead + i] and n != 1:
            raise RuntimeError(f"cannot sum shape {list(from_shape)} to shape {list(to_shape)}")
    return tuple(axes)


class SumTo(Function):
    @staticmethod
    def forward(ctx, a, shape):
        ctx.in_shape = a.shape
        axes = _reduced_axes(a.shape, shape)
        return a.array.sum(axis=axes, keepdims=True).reshape(shape)

    @staticmethod
    def backward(ctx, grad):
        return broadcast_to(grad, ctx.in_shape), None


class BroadcastTo(Function):
    is_view = True

    @staticmethod
    def forward(ctx, a, shape):
        ctx.in_shape = a.shape
        try:
            return a._xp.broadcast_to(a.array, shape)
        except ValueError:
            raise RuntimeError(f"The expanded size of the tensor must match the existing size: cannot "
                               f"broadcast shape {list(a.shape)} to {list(shape)}") from None

    @staticmethod
    def backward(ctx, grad):
        return sum_to(grad, ctx.in_shape), None


def sum_to(x: Tensor, shape: tuple) -> Tensor:
    """Sums ``x`` over broadcast dimensions so that it has ``shape`` (the adjoint of broadcasting)."""
    shape = tuple(shape)
    if x.shape == shape:
        return x
    return SumTo.apply(x, shape)


def broadcast_to(x: Tensor, shape) -> Tensor:
    """A read-only view of ``x`` broadcast to ``shape``."""
    shape = tuple(shape)
    if x.shape == shape:
        return x
    return BroadcastTo.apply(x, shape)


def expand(x: Tensor, *sizes) -> Tensor:
    """Like ``broadcast_to``; ``-1`` keeps a dimension's size."""
    if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
        sizes = tuple(sizes[0])
    lead = len(sizes) - x.ndim
    if lead < 0:
        raise RuntimeError(f"expand: the number of sizes provided ({len(sizes)}) must be greater or equal "
                           f"to the number of dimensions in the tensor ({x.ndim})")
    shape = tuple(x.shape[i - lead] if s == -1 else s for i, s in enumerate(sizes))
    return broadcast_to(x, shape)


def expand_as(x: Tensor, other: Tensor) -> Tensor:
    return broadcast_to(x, other.shape)


bind_methods(broadcast_to=broadcast_to, expand=expand, expand_as=expand_as, sum_to_size=lambda x, *s: sum_to(
    x, s[0] if len(s) == 1 and isinstance(s[0], (tuple, list)) else s))
