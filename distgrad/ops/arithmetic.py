"""``+ - * / ** neg`` with tensors and Python scalars, reversed operands included, and the divisions
that round: ``//`` (``floor_divide``), ``%`` (``remainder``), ``fmod`` and ``div(rounding_mode=...)``."""
from __future__ import annotations

import numpy as np

from distgrad.autograd.function import Function
from distgrad.ops.broadcast import sum_to
from distgrad.ops.elementwise import _arrays
from distgrad.tensor import Tensor, bind_methods

__all__ = ["add", "sub", "mul", "div", "neg", "pow", "subtract", "multiply", "divide", "true_divide", "negative",
           "floor_divide", "remainder", "fmod"]


class Add(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = a.shape, b.shape
        return a.array + b.array

    @staticmethod
    def backward(ctx, grad):
        sa, sb = ctx.shapes
        return sum_to(grad, sa), sum_to(grad, sb)


class AddScalar(Function):
    arithmetic_backward = True

    @staticmethod
    def forward(ctx, a, s):
        return a.array + s

    @staticmethod
    def backward(ctx, grad):
        return grad, None


class Sub(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = a.shape, b.shape
        return a.array - b.array

    @staticmethod
    def backward(ctx, grad):
        sa, sb = ctx.shapes
        return sum_to(grad, sa), sum_to(-grad, sb)


class RSubScalar(Function):
    """``s - a``."""

    arithmetic_backward = True

    @staticmethod
    def forward(ctx, a, s):
        return s - a.array

    @staticmethod
    def backward(ctx, grad):
        return -grad, None


class Mul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a.array * b.array

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        ga = sum_to(grad * b, a.shape) if ctx.needs_input_grad[0] else None
        gb = sum_to(grad * a, b.shape) if ctx.needs_input_grad[1] else None
        return ga, gb


class MulScalar(Function):
    arithmetic_backward = True

    @staticmethod
    def forward(ctx, a, s):
        ctx.s = s
        return a.array * s

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.s, None


class Div(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a.array / b.array

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        ga = sum_to(grad / b, a.shape) if ctx.needs_input_grad[0] else None
        gb = sum_to(-grad * a / (b * b), b.shape) if ctx.needs_input_grad[1] else None
        return ga, gb


class DivScalar(Function):
    arithmetic_backward = True

    @staticmethod
    def forward(ctx, a, s):
        ctx.s = s
        return a.array / s

    @staticmethod
    def backward(ctx, grad):
        return grad / ctx.s, None


class RDivScalar(Function):
    """``s / a``."""

    @staticmethod
    def forward(ctx, a, s):
        ctx.s = s
        ctx.save_for_backward(a)
        return s / a.array

    @staticmethod
    def backward(ctx, grad):
        (a,) = ctx.saved_tensors
        return -grad * ctx.s / (a * a), None


class Neg(Function):
    arithmetic_backward = True

    @staticmethod
    def forward(ctx, a):
        return -a.array

    @staticmethod
    def backward(ctx, grad):
        return -grad


class Pow(Function):
    @staticmethod
    def forward(ctx, a, b):
        out = Tensor(a.array ** b.array)
        ctx.save_for_backward(a, b, out)
        return out

    @staticmethod
    def backward(ctx, grad):
        a, b, out = ctx.saved_tensors
        ga = sum_to(grad * b * a ** (b - 1), a.shape) if ctx.needs_input_grad[0] else None
        gb = sum_to(grad * out * a.log(), b.shape) if ctx.needs_input_grad[1] else None
        return ga, gb


class PowScalar(Function):
    @staticmethod
    def forward(ctx, a, p):
        ctx.p = p
        ctx.save_for_backward(a)
        return a.array ** p

    @staticmethod
    def backward(ctx, grad):
        (a,) = ctx.saved_tensors
        p = ctx.p
        if p == 0:
            return grad * 0, None
        return grad * p * (a ** (p - 1) if p != 2 else a), None


class RPowScalar(Function):
    """``s ** a``."""

    @staticmethod
    def forward(ctx, a, s):
        out = Tensor(s ** a.array)
        ctx.s = s
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        import math
        return grad * out * math.log(ctx.s), None


class _RoundingDivision(Function):
    """``f(a, b)`` for two broadcasting tensors; ``chain(grad, a, b)`` gives the gradients of (a, b)."""

    @classmethod
    def forward(cls, ctx, a, b):
        x, y = a.array, b.array
        if x.dtype.kind in "iub" and y.dtype.kind in "iub" and not bool((y != 0).all()):
            raise RuntimeError("ZeroDivisionError")  # torch's message for an integer division by zero
        ctx.save_for_backward(a, b)
        with np.errstate(divide="ignore", invalid="ignore"):  # float x // 0 is inf or nan, quietly, as in torch
            return cls.f(a._xp, x, y)

    @classmethod
    def backward(cls, ctx, grad):
        a, b = ctx.saved_tensors
        ga, gb = cls.chain(grad, a, b)
        return (sum_to(ga, a.shape) if ctx.needs_input_grad[0] else None,
                sum_to(gb, b.shape) if ctx.needs_input_grad[1] else None)


def _zero_grads(grad, a, b):
    return grad * 0, grad * 0


def _floor_division(xp, x, y):
    return xp.floor_divide(x, y)


def _trunc_division(xp, x, y):
    if x.dtype.kind in "iub" and y.dtype.kind in "iub":
        q = xp.floor_divide(x, y)
        return q + ((xp.remainder(x, y) != 0) & ((x < 0) != (y < 0)))  # floor is one below trunc there
    return xp.trunc(x / y)


# The rounded quotients are piecewise constant: a zero gradient (torch's div with a rounding_mode).
FloorDivide = type("FloorDivide", (_RoundingDivision,), {"f": staticmethod(_floor_division),
                                                         "chain": staticmethod(_zero_grads)})
TruncDivide = type("TruncDivide", (_RoundingDivision,), {"f": staticmethod(_trunc_division),
                                                         "chain": staticmethod(_zero_grads)})
# a - b * floor(a / b) and a - b * trunc(a / b)
Remainder = type("Remainder", (_RoundingDivision,), {
    "f": staticmethod(lambda xp, x, y: xp.remainder(x, y)),
    "chain": staticmethod(lambda g, a, b: (g, -g * (a / b).floor()))})
Fmod = type("Fmod", (_RoundingDivision,), {
    "f": staticmethod(lambda xp, x, y: xp.fmod(x, y)),
    "chain": staticmethod(lambda g, a, b: (g, -g * (a / b).trunc()))})


def _as_operands(a, b) -> tuple:
    """Both operands as Tensors; a Python number takes the tensor's dtype (a float with an integer tensor: the
    default float dtype, which the integer tensor computes in too), as torch treats numbers."""
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        return a, b
    tensor, number = (a, b) if isinstance(a, Tensor) else (b, a)
    arrays = _arrays(tensor, _scalar(number))
    tensor = tensor if arrays[0] is tensor.array else Tensor(arrays[0])
    number = Tensor(arrays[1])
    return (tensor, number) if isinstance(a, Tensor) else (number, tensor)


def floor_divide(input, other):
    """``input / other`` rounded toward minus infinity (Python's ``//``); its gradient is zero."""
    return FloorDivide.apply(*_as_operands(input, other))


def remainder(input, other):
    """Python's ``%``: ``input - other * floor(input / other)``, with the sign of ``other``."""
    return Remainder.apply(*_as_operands(input, other))


def fmod(input, other):
    """C's ``fmod``: ``input - other * trunc(input / other)``, with the sign of ``input``."""
    return Fmod.apply(*_as_operands(input, other))


def _scalar(x):
    """A Python number from a number or a NumPy scalar (NumPy scalars would upcast float32)."""
    if x.__class__ is float or x.__class__ is int:
        return x
    return x.item() if hasattr(x, "item") else x


def add(a, b, alpha=1):
    if alpha != 1:
        b = b * alpha
    if isinstance(b, Tensor):
        if isinstance(a, Tensor):
            return Add.apply(a, b)
        a, b = b, a
    return AddScalar.apply(a, _scalar(b))


def sub(a, b, alpha=1):
    if alpha != 1:
        b = b * alpha
    if isinstance(b, Tensor):
        if isinstance(a, Tensor):
            return Sub.apply(a, b)
        return RSubScalar.apply(b, _scalar(a))
    return AddScalar.apply(a, -_scalar(b))


def mul(a, b):
    if isinstance(b, Tensor):
        if isinstance(a, Tensor):
            return Mul.apply(a, b)
        a, b = b, a
    return MulScalar.apply(a, _scalar(b))


def div(a, b, *, rounding_mode: str | None = None):
    """``a / b``; ``rounding_mode='floor'`` or ``'trunc'`` rounds the quotient (keeping integer dtypes)."""
    if rounding_mode is not None:
        if rounding_mode == "floor":
            return floor_divide(a, b)
        if rounding_mode == "trunc":
            return TruncDivide.apply(*_as_operands(a, b))
        raise ValueError(f"div expected rounding_mode to be one of None, 'trunc', or 'floor' but found "
                         f"'{rounding_mode}'")
    if isinstance(b, Tensor):
        if isinstance(a, Tensor):
            return Div.apply(a, b)
        return RDivScalar.apply(b, _scalar(a))
    return DivScalar.apply(a, _scalar(b))


def neg(a):
    return Neg.apply(a)


def pow(a, b):
    if isinstance(b, Tensor):
        if isinstance(a, Tensor):
            return Pow.apply(a, b)
        return RPowScalar.apply(b, _scalar(a))
    return PowScalar.apply(a, _scalar(b))


bind_methods(
    add=add, sub=sub, mul=mul, div=div, neg=neg, pow=pow, subtract=sub, multiply=mul, divide=div,
    true_divide=div, negative=neg,
    __add__=add, __radd__=lambda a, b: add(a, b), __sub__=sub, __rsub__=lambda a, b: sub(b, a),
    __mul__=mul, __rmul__=lambda a, b: mul(a, b), __truediv__=div, __rtruediv__=lambda a, b: div(b, a),
    __neg__=neg, __pow__=pow, __rpow__=lambda a, b: pow(b, a), __pos__=lambda a: a,
    floor_divide=floor_divide, remainder=remainder, fmod=fmod,
    __floordiv__=floor_divide, __rfloordiv__=lambda a, b: floor_divide(b, a),
    __mod__=remainder, __rmod__=lambda a, b: remainder(b, a),
)

subtract, multiply, divide, true_divide, negative = sub, mul, div, div, neg
