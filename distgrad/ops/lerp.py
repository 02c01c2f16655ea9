"""``lerp(input, end, weight)``: ``input + weight * (end - input)``, for a number or a tensor ``weight``.

The forward uses PyTorch's two-sided formula (``end - (end - input) * (1 - weight)`` once ``|weight|
>= 0.5``), so that ``weight=1`` gives ``end`` exactly. The gradients are ``1 - weight`` for ``input``,
``weight`` for ``end`` and ``end - input`` for ``weight``, summed back over broadcast dims. The in-place
``lerp_`` lives with the other in-place ops in ``inplace.py``.
"""
from __future__ import annotations

from distgrad.autograd.function import Function
from distgrad.dtypes import is_floating_point
from distgrad.ops.broadcast import sum_to
from distgrad.tensor import Tensor, bind_methods

__all__ = ["lerp"]


class Lerp(Function):
    @staticmethod
    def forward(ctx, start, end, weight):
        xp = start._xp
        w = weight.array if isinstance(weight, Tensor) else weight
        ctx.save_for_backward(start, end, weight if isinstance(weight, Tensor) else None)
        ctx.weight = None if isinstance(weight, Tensor) else weight
        diff = end.array - start.array
        out = xp.where(xp.abs(w) < 0.5, start.array + w * diff, end.array - diff * (1 - w))
        return out.astype(start.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        start, end, weight = ctx.saved_tensors
        w = weight if weight is not None else ctx.weight
        needs = ctx.needs_input_grad
        g_start = sum_to(grad * (1 - w), start.shape) if needs[0] else None
        g_end = sum_to(grad * w, end.shape) if needs[1] else None
        g_weight = sum_to(grad * (end - start), weight.shape) if needs[2] else None
        return g_start, g_end, g_weight


def lerp(input: Tensor, end: Tensor, weight) -> Tensor:
    """``input + weight * (end - input)``; the three broadcast together (``weight`` may be a number)."""
    if not is_floating_point(input.dtype):
        raise RuntimeError(f"lerp: only floating-point tensors are supported, got {input.dtype.name}")
    if end.dtype != input.dtype:
        raise RuntimeError(f"expected dtype {input.dtype.name} for `end` but got dtype {end.dtype.name}")
    if isinstance(weight, Tensor) and weight.dtype != input.dtype:
        if weight.ndim:
            raise RuntimeError(f"expected dtype {input.dtype.name} for `weight` but got dtype {weight.dtype.name}")
        weight = weight.to(input.dtype)  # a 0-d weight of another dtype is accepted, as in torch
    return Lerp.apply(input, end, weight)


bind_methods(lerp=lerp)
