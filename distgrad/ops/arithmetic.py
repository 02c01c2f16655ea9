"""``+ - * / ** neg`` with tensors and Python scalars, reversed operands included."""
from __future__ import annotations

from distgrad.autograd.function import Function
from distgrad.ops.broadcast import sum_to
from distgrad.tensor import Tensor, bind_methods

__all__ = ["add", "sub", "mul", "div", "neg", "pow"]


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


def div(a, b):
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
)
