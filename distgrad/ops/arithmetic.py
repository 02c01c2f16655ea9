"""``+ - * / ** neg`` with tensors and Python scalars, reversed operands included (the divisions that
round, ``//`` ``%`` ``fmod`` and ``div(rounding_mode=...)``, are in ``rounding.py``).

Operands meet in PyTorch's result dtype (``promotion.result_type``: ``int64 tensor + 2.5`` is
float32, ``float32 tensor * 0-d float64 tensor`` float32); true division of integers gives the
default float dtype. Gradients go back in each input's own dtype (the engine converts them).
"""
from __future__ import annotations

import math

from distgrad.autograd.function import Function
from distgrad.dtypes import bool_
from distgrad.ops.autocasting import autocast_op
from distgrad.ops.broadcast import sum_to
from distgrad.ops.conversion import to
from distgrad.ops.rounding import rounded_div
from distgrad.promotion import as_number, cast, promoted, result_type
from distgrad.tensor import Tensor, bind_methods

__all__ = ["add", "sub", "mul", "div", "neg", "pow", "subtract", "multiply", "divide", "true_divide", "negative"]


def _in_dtype(saved: tuple, dtype) -> tuple:
    """Saved operands in the result dtype, as PyTorch's formulas see them (float16 * float32: float32)."""
    for t in saved:
        if t.array.dtype != dtype:
            return tuple(t if t.dtype == dtype else to(t, dtype=dtype) for t in saved)
    return saved


class Add(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = a.shape, b.shape
        x, y = promoted(a, b)
        return x + y

    @staticmethod
    def backward(ctx, grad):
        sa, sb = ctx.shapes
        return sum_to(grad, sa), sum_to(grad, sb)


class AddScalar(Function):
    arithmetic_backward = True

    @staticmethod
    def forward(ctx, a, s):
        x, y = promoted(a, s)
        return x + y

    @staticmethod
    def backward(ctx, grad):
        return grad, None


class Sub(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = a.shape, b.shape
        x, y = promoted(a, b)
        return x - y

    @staticmethod
    def backward(ctx, grad):
        sa, sb = ctx.shapes
        return sum_to(grad, sa), sum_to(-grad, sb)


class RSubScalar(Function):
    """``s - a``."""

    arithmetic_backward = True

    @staticmethod
    def forward(ctx, a, s):
        x, y = promoted(a, s)
        return y - x

    @staticmethod
    def backward(ctx, grad):
        return -grad, None


class Mul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        x, y = promoted(a, b)
        return x * y

    @staticmethod
    def backward(ctx, grad):
        a, b = _in_dtype(ctx.saved_tensors, grad.dtype)
        ga = sum_to(grad * b, a.shape) if ctx.needs_input_grad[0] else None
        gb = sum_to(grad * a, b.shape) if ctx.needs_input_grad[1] else None
        return ga, gb


class MulScalar(Function):
    arithmetic_backward = True

    @staticmethod
    def forward(ctx, a, s):
        ctx.s = s
        x, y = promoted(a, s)
        return x * y

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.s, None


class Div(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        x, y = promoted(a, b, true_division=True)
        return x / y

    @staticmethod
    def backward(ctx, grad):
        a, b = _in_dtype(ctx.saved_tensors, grad.dtype)
        ga = sum_to(grad / b, a.shape) if ctx.needs_input_grad[0] else None
        gb = sum_to(-grad * a / (b * b), b.shape) if ctx.needs_input_grad[1] else None
        return ga, gb


class DivScalar(Function):
    arithmetic_backward = True

    @staticmethod
    def forward(ctx, a, s):
        ctx.s = s
        x, y = promoted(a, s, true_division=True)
        return x / y

    @staticmethod
    def backward(ctx, grad):
        return grad / ctx.s, None


class RDivScalar(Function):
    """``s / a``."""

    @staticmethod
    def forward(ctx, a, s):
        ctx.s = s
        ctx.save_for_backward(a)
        x, y = promoted(a, s, true_division=True)
        return y / x

    @staticmethod
    def backward(ctx, grad):
        (a,) = ctx.saved_tensors
        return -grad * ctx.s / (a * a), None


class Neg(Function):
    arithmetic_backward = True

    @staticmethod
    def forward(ctx, a):
        if a.dtype == bool_:
            raise RuntimeError("Negation, the `-` operator, on a bool tensor is not supported. If you are trying to "
                               "invert a mask, use the `~` or `logical_not()` operator instead.")
        return -a.array

    @staticmethod
    def backward(ctx, grad):
        return -grad


class Pow(Function):
    @staticmethod
    def forward(ctx, a, b):
        dtype = result_type(a, b)
        out = Tensor((cast(a, dtype) ** cast(b, dtype)).astype(dtype, copy=False))  # NumPy: bool ** bool is int8
        ctx.save_for_backward(a, b, out)
        return out

    @staticmethod
    def backward(ctx, grad):
        a, b, out = _in_dtype(ctx.saved_tensors, grad.dtype)
        ga = sum_to(grad * b * a ** (b - 1), a.shape) if ctx.needs_input_grad[0] else None
        gb = sum_to(grad * out * a.log(), b.shape) if ctx.needs_input_grad[1] else None
        return ga, gb


class PowScalar(Function):
    @staticmethod
    def forward(ctx, a, p):
        ctx.p = p
        ctx.save_for_backward(a)
        dtype = result_type(a, p)
        if dtype.kind in "iu" and p < 0:
            raise RuntimeError("Integers to negative integer powers are not allowed.")
        return (cast(a, dtype) ** cast(p, dtype)).astype(dtype, copy=False)

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
        dtype = result_type(a, s)
        out = Tensor((cast(s, dtype) ** cast(a, dtype)).astype(dtype, copy=False))
        ctx.s = s
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return grad * out * math.log(ctx.s), None


def add(a, b, alpha=1):
    if alpha != 1:
        b = b * alpha
    if isinstance(b, Tensor):
        if isinstance(a, Tensor):
            return Add.apply(a, b)
        a, b = b, a
    return AddScalar.apply(a, as_number(b))


def _is_bool(x) -> bool:
    return x.dtype == bool_ if isinstance(x, Tensor) else isinstance(x, bool)


def refuse_bool_subtraction(a, b) -> None:
    """PyTorch's errors for ``a - b`` where either is a bool (tensor or Python bool)."""
    a_bool, b_bool = _is_bool(a), _is_bool(b)
    if a_bool and b_bool:
        raise RuntimeError("Subtraction, the `-` operator, with two bool tensors is not supported. Use the `^` or "
                           "`logical_xor()` operator instead.")
    if a_bool or b_bool:
        raise RuntimeError("Subtraction, the `-` operator, with a bool tensor is not supported. If you are trying to "
                           "invert a mask, use the `~` or `logical_not()` operator instead.")


def sub(a, b, alpha=1):
    refuse_bool_subtraction(a, b)
    if alpha != 1:
        b = b * alpha
    if isinstance(b, Tensor):
        if isinstance(a, Tensor):
            return Sub.apply(a, b)
        return RSubScalar.apply(b, as_number(a))
    return AddScalar.apply(a, -as_number(b))


def mul(a, b):
    if isinstance(b, Tensor):
        if isinstance(a, Tensor):
            return Mul.apply(a, b)
        a, b = b, a
    return MulScalar.apply(a, as_number(b))


def div(a, b, *, rounding_mode: str | None = None):
    """``a / b``; ``rounding_mode='floor'`` or ``'trunc'`` rounds the quotient (keeping integer dtypes)."""
    if rounding_mode is not None:
        return rounded_div(a, b, rounding_mode)
    if isinstance(b, Tensor):
        if isinstance(a, Tensor):
            return Div.apply(a, b)
        return RDivScalar.apply(b, as_number(a))
    return DivScalar.apply(a, as_number(b))


def neg(a):
    return Neg.apply(a)


@autocast_op()
def pow(a, b):
    if isinstance(b, Tensor):
        if isinstance(a, Tensor):
            return Pow.apply(a, b)
        return RPowScalar.apply(b, as_number(a))
    return PowScalar.apply(a, as_number(b))


@autocast_op("__rtruediv__")
def _rtruediv(a, b):
    """``number / tensor`` (PyTorch's CUDA autocast computes it in float32, as ``reciprocal() * number``)."""
    return div(b, a)


bind_methods(
    add=add, sub=sub, mul=mul, div=div, neg=neg, pow=pow, subtract=sub, multiply=mul, divide=div,
    true_divide=div, negative=neg,
    __add__=add, __radd__=lambda a, b: add(a, b), __sub__=sub, __rsub__=lambda a, b: sub(b, a),
    __mul__=mul, __rmul__=lambda a, b: mul(a, b), __truediv__=div, __rtruediv__=_rtruediv,
    __neg__=neg, __pow__=pow, __rpow__=lambda a, b: pow(b, a), __pos__=lambda a: a,
)

subtract, multiply, divide, true_divide, negative = sub, mul, div, div, neg
