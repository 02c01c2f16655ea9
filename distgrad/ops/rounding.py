"""The divisions that round: ``floor_divide`` (``//``), ``remainder`` (``%``), ``fmod``, and
``div(rounding_mode='floor' | 'trunc')`` (``rounded_div``), as PyTorch computes them.

Operands meet in PyTorch's result dtype (``promotion.result_type``), 16-bit floats included: PyTorch
rounds their quotients to that dtype before flooring or truncating them, and its CPU kernel floors a
bfloat16 quotient step by step in bfloat16, which ``_floor_division`` repeats. As in PyTorch, an
integer division by zero raises ``ZeroDivisionError`` (a float one gives inf or nan), bool operands
are refused, ``floor_divide`` has no derivative while ``div(rounding_mode=...)`` has a zero one, and
``remainder``/``fmod`` pass the gradient to their dividend and ``-grad * q`` to their divisor, ``q``
the floored (resp. truncated) quotient.
"""
from __future__ import annotations

import numpy as np

from distgrad.autograd.function import Function
from distgrad.dtypes import FLOATING, bfloat16, bool_
from distgrad.ops.broadcast import sum_to
from distgrad.promotion import as_number, cast, result_type
from distgrad.tensor import Tensor, bind_methods

__all__ = ["floor_divide", "remainder", "fmod"]


class _RoundingDivision(Function):
    """``f(xp, x, y)`` of two operands (Tensors, or a Tensor and a number) in their result dtype;
    ``kernel`` names the op in PyTorch's refusal of bool operands. The gradients are zero (a rounded
    quotient is piecewise constant) unless ``divisor_rounding`` is set: then
    ``(grad, -grad * rounded_div(a, b, divisor_rounding))``."""

    kernel = ""
    divisor_rounding = None

    @staticmethod
    def f(xp, x, y):
        raise NotImplementedError

    @classmethod
    def forward(cls, ctx, a, b):
        dtype = result_type(a, b)
        if dtype == bool_:
            raise NotImplementedError(f"\"{cls.kernel}\" not implemented for 'Bool'")
        x, y = cast(a, dtype), cast(b, dtype)
        if dtype not in FLOATING and _has_zero(y):
            raise RuntimeError("ZeroDivisionError")  # PyTorch's error for an integer division by zero
        ctx.shapes = tuple(t.shape if isinstance(t, Tensor) else () for t in (a, b))
        if cls.divisor_rounding is not None:
            ctx.numbers = a, b
            ctx.save_for_backward(*(t if isinstance(t, Tensor) else None for t in (a, b)))
        xp = a._xp if isinstance(a, Tensor) else b._xp
        with np.errstate(divide="ignore", invalid="ignore"):  # float x // 0 is inf or nan, quietly, as in torch
            return cls.f(xp, x, y)

    @classmethod
    def backward(cls, ctx, grad):
        if cls.divisor_rounding is None:
            return tuple(Tensor(grad._xp.zeros(shape, grad.dtype)) if needed else None
                         for shape, needed in zip(ctx.shapes, ctx.needs_input_grad))
        a, b = (t if t is not None else n for t, n in zip(ctx.saved_tensors, ctx.numbers))
        ga = sum_to(grad, a.shape) if ctx.needs_input_grad[0] else None
        gb = sum_to(-grad * rounded_div(a, b, cls.divisor_rounding), b.shape) if ctx.needs_input_grad[1] else None
        return ga, gb


def _has_zero(y) -> bool:
    return bool((y == 0).any()) if hasattr(y, "any") else y == 0


def _floor_division(xp, x, y):
    if xp is not np or bfloat16 not in (getattr(x, "dtype", None), getattr(y, "dtype", None)):
        return xp.floor_divide(x, y)
    # PyTorch's CPU kernel rounds each step to bfloat16 (ml_dtypes' floor_divide works in float32 and
    # differs in the last place): (x - fmod(x, y)) / y, one less where the remainder's sign is not the
    # divisor's, floored, and one more where that dropped over a half.
    x, y = np.asarray(x, dtype=bfloat16), np.asarray(y, dtype=bfloat16)
    one, half = bfloat16.type(1), bfloat16.type(0.5)
    mod = np.fmod(x, y)
    quotient = (x - mod) / y
    quotient = np.where((mod != 0) & ((y < 0) != (mod < 0)), quotient - one, quotient)
    floor = np.floor(quotient)
    floor = np.where(quotient - floor > half, floor + one, floor)
    return np.where(y == 0, x / y, floor)


def _trunc_division(xp, x, y):
    array = x if hasattr(x, "dtype") else y  # an array in the result dtype (the other may be a number)
    if array.dtype.kind in "iu":
        return (x - xp.fmod(x, y)) // y  # exact: x - fmod(x, y) is a multiple of y
    return xp.trunc(x / y)


class FloorDivide(_RoundingDivision):
    """``floor(a / b)`` as ``floor_divide`` and ``//``; PyTorch gives it no derivative."""

    kernel = "div_floor"
    f = staticmethod(_floor_division)

    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError("derivative for aten::floor_divide is not implemented")


class DivFloor(_RoundingDivision):
    """``div(a, b, rounding_mode='floor')``: ``floor_divide``'s quotient, with a zero gradient."""

    kernel = "div_floor"
    f = staticmethod(_floor_division)


class DivTrunc(_RoundingDivision):
    """``div(a, b, rounding_mode='trunc')``: the quotient rounded toward zero, with a zero gradient."""

    kernel = "div_trunc"
    f = staticmethod(_trunc_division)


class Remainder(_RoundingDivision):
    """``a - b * floor(a / b)``: the sign of the divisor, as Python's ``%``."""

    kernel = "remainder"
    divisor_rounding = "floor"
    f = staticmethod(lambda xp, x, y: xp.remainder(x, y))


class Fmod(_RoundingDivision):
    """``a - b * trunc(a / b)``: the sign of the dividend, as C's ``fmod``."""

    kernel = "fmod"
    divisor_rounding = "trunc"
    f = staticmethod(lambda xp, x, y: xp.fmod(x, y))


def _operand(x):
    return x if isinstance(x, Tensor) else as_number(x)


def floor_divide(a, b):
    """``a // b`` elementwise, rounded toward minus infinity (PyTorch's ``floor_divide``; no derivative)."""
    return FloorDivide.apply(_operand(a), _operand(b))


def remainder(a, b):
    """``a % b`` elementwise, with the sign of ``b`` (Python's modulus)."""
    return Remainder.apply(_operand(a), _operand(b))


def fmod(a, b):
    """C's ``fmod``: ``a - b * trunc(a / b)``, with the sign of ``a``."""
    return Fmod.apply(_operand(a), _operand(b))


def rounded_div(a, b, rounding_mode: str) -> Tensor:
    """``div(a, b, rounding_mode=...)``: ``'floor'`` or ``'trunc'``, each with a zero gradient."""
    if rounding_mode == "floor":
        return DivFloor.apply(_operand(a), _operand(b))
    if rounding_mode == "trunc":
        return DivTrunc.apply(_operand(a), _operand(b))
    raise ValueError(f"div expected rounding_mode to be one of None, 'trunc', or 'floor' but found '{rounding_mode}'")


bind_methods(
    floor_divide=floor_divide, remainder=remainder, fmod=fmod,
    __floordiv__=floor_divide, __rfloordiv__=lambda a, b: floor_divide(as_number(b), a),
    __mod__=remainder, __rmod__=lambda a, b: remainder(as_number(b), a),
)
