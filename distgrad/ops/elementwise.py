"""Elementwise ops: math functions, activations, ``clamp``, ``maximum``/``minimum``, ``where`` and
rounding. Comparisons, logical and bitwise ops live in ``comparison.py``.

Most unary ops are one row of a table (``_pointwise``): the array function beside the chain rule,
written with Tensor ops so that double backward works.
"""
from __future__ import annotations

import math

from distgrad.autograd.function import Function
from distgrad import backend
from distgrad.dtypes import FLOATING, compute_dtype, get_default_dtype, int64
from distgrad.ops.autocasting import autocast_op
from distgrad.kernels import pointwise as pointwise_kernels
from distgrad.ops.broadcast import sum_to
from distgrad.parallel import blockwise
from distgrad.promotion import cast, promoted, result_type
from distgrad.tensor import Tensor, bind_methods

__all__ = [
    "exp", "log", "log1p", "expm1", "sqrt", "rsqrt", "square", "reciprocal", "abs", "absolute", "sign",
    "sin", "cos", "tan", "tanh", "sigmoid", "erf", "relu", "leaky_relu", "gelu", "silu", "softplus",
    "clamp", "clip", "clamp_min", "clamp_max", "maximum", "minimum", "where",
    "floor", "ceil", "round", "trunc",
]


# --- unary ops: one table row each --------------------------------------------------------------
class _Pointwise(Function):
    """``y = f(x, *options)``; ``chain(grad, saved, *options)`` is the chain rule in Tensor ops.

    ``saves`` names what backward reads: "input" (``x``), "output" (``y``) or "nothing". When
    ``chain`` is plain arithmetic (``arithmetic_backward``), a first-order backward runs it on the
    arrays directly: the same formula, without a Tensor per intermediate.
    """

    saves = "input"
    promotes_integers = True  # integer/bool inputs compute in the default float dtype, as in torch

    @classmethod
    def forward(cls, ctx, x, *options):
        data = x.array
        out_dtype = data.dtype
        if cls.promotes_integers and out_dtype not in FLOATING:
            out_dtype = get_default_dtype()
        # float16/bfloat16 compute in float32 and round once on output, as PyTorch's CPU kernels do
        compute = compute_dtype(out_dtype)
        if data.dtype != compute:
            data = data.astype(compute)
        y = cls.f(x._xp, data, *options)
        y = Tensor(y if y.dtype == out_dtype else y.astype(out_dtype))
        ctx.options = options
        if cls.saves != "nothing":
            ctx.save_for_backward(y if cls.saves == "output" else x)
        return y

    @classmethod
    def backward(cls, ctx, grad):
        if cls.saves == "nothing":
            saved = ()
        elif isinstance(grad, Tensor):
            saved = ctx.saved_tensors
        else:  # the arithmetic fast path: arrays in, arrays out
            saved = ctx.saved_arrays
        return (cls.chain(grad, *saved, *ctx.options),) + (None,) * len(ctx.options)


def _pointwise(name, f, chain, saves="input", promotes_integers=True, arithmetic_backward=False):
    return type(name, (_Pointwise,), {"f": staticmethod(f), "chain": staticmethod(chain), "saves": saves,
                                      "promotes_integers": promotes_integers,
                                      "arithmetic_backward": arithmetic_backward})


def _zero_grad(grad, *options):
    return Tensor(grad._xp.zeros_like(grad.array))


def _on_floats(fn):
    """``fn`` for floating arrays; integer arrays are returned as a copy (rounding them is a no-op)."""
    return lambda xp, x, *options: fn(xp, x, *options) if x.dtype in FLOATING else x.copy()


Exp = _pointwise("Exp", lambda xp, x: xp.exp(x), lambda g, y: g * y, saves="output", arithmetic_backward=True)
Log = _pointwise("Log", lambda xp, x: xp.log(x), lambda g, x: g / x)
Log1p = _pointwise("Log1p", lambda xp, x: xp.log1p(x), lambda g, x: g / (x + 1))
Expm1 = _pointwise("Expm1", lambda xp, x: xp.expm1(x), lambda g, y: g * (y + 1), saves="output", arithmetic_backward=True)
Sqrt = _pointwise("Sqrt", lambda xp, x: xp.sqrt(x), lambda g, y: g / (2 * y), saves="output", arithmetic_backward=True)
Rsqrt = _pointwise("Rsqrt", lambda xp, x: 1 / xp.sqrt(x), lambda g, y: -0.5 * g * y * y * y, saves="output",
                   arithmetic_backward=True)
Reciprocal = _pointwise("Reciprocal", lambda xp, x: 1 / x, lambda g, y: -g * y * y, saves="output",
                        arithmetic_backward=True)
Sin = _pointwise("Sin", lambda xp, x: xp.sin(x), lambda g, x: g * x.cos())
Cos = _pointwise("Cos", lambda xp, x: xp.cos(x), lambda g, x: g * -x.sin())
Tan = _pointwise("Tan", lambda xp, x: xp.tan(x), lambda g, y: g * (1 + y * y), saves="output", arithmetic_backward=True)
Tanh = _pointwise("Tanh", lambda xp, x: xp.tanh(x), lambda g, y: g * (1 - y * y), saves="output", arithmetic_backward=True)
Abs = _pointwise("Abs", lambda xp, x: xp.abs(x), lambda g, x: g * x.sign(), promotes_integers=False)
# torch's sign(nan) is 0, NumPy's is nan
Sign = _pointwise("Sign", lambda xp, x: xp.nan_to_num(xp.sign(x), nan=0.0), _zero_grad, saves="nothing",
                  promotes_integers=False)
Relu = _pointwise("Relu", lambda xp, x: xp.maximum(x, 0), lambda g, y: g * (y > 0), saves="output",
                  promotes_integers=False, arithmetic_backward=True)
LeakyRelu = _pointwise("LeakyRelu", lambda xp, x, slope: xp.where(x > 0, x, x * slope),
                       lambda g, x, slope: where(x > 0, g, g * slope))
Floor = _pointwise("Floor", _on_floats(lambda xp, x: xp.floor(x)), _zero_grad, "nothing", False)
Ceil = _pointwise("Ceil", _on_floats(lambda xp, x: xp.ceil(x)), _zero_grad, "nothing", False)
Trunc = _pointwise("Trunc", _on_floats(lambda xp, x: xp.trunc(x)), _zero_grad, "nothing", False)
Round = _pointwise("Round", _on_floats(lambda xp, x, decimals: xp.round(x, decimals)), _zero_grad, "nothing", False)


def _sigmoid_array(xp, x):
    """``1 / (1 + exp(-x))`` without overflow: ``exp`` only ever sees ``-|x|``."""
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))


Sigmoid = _pointwise("Sigmoid", _sigmoid_array, lambda g, y: g * (1 - y) * y, saves="output",
                     arithmetic_backward=True)


def _silu_chain(grad, x):
    s = x.sigmoid()
    return grad * s * (1 + x * (1 - s))


Silu = _pointwise("Silu", lambda xp, x: x * _sigmoid_array(xp, x), _silu_chain)


def _softplus_array(xp, x, beta, threshold):
    bx = x * beta
    # above the threshold softplus is x to working precision; the minimum keeps exp from overflowing
    return xp.where(bx > threshold, x, xp.log1p(xp.exp(xp.minimum(bx, threshold))) / beta)


Softplus = _pointwise("Softplus", _softplus_array,
                      lambda g, x, beta, threshold: where(x * beta > threshold, g, g * (x * beta).sigmoid()))


# --- erf and gelu --------------------------------------------------------------------------------
# W. J. Cody, "Rational Chebyshev approximations for the error function", Math. Comp. 23 (1969),
# as in his CALERF routine (netlib specfun); relative error below 1e-15 in float64. Coefficients are
# listed highest degree first, for Horner's rule.
_ERF_NUM = (1.85777706184603153e-1, 3.16112374387056560e00, 1.13864154151050156e02,
            3.77485237685302021e02, 3.20937758913846947e03)
_ERF_DEN = (1.0, 2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03,
            2.84423683343917062e03)
_ERFC_MID_NUM = (2.15311535474403846e-8, 5.64188496988670089e-1, 8.88314979438837594e00,
                 6.61191906371416295e01, 2.98635138197400131e02, 8.81952221241769090e02,
                 1.71204761263407058e03, 2.05107837782607147e03, 1.23033935479799725e03)
_ERFC_MID_DEN = (1.0, 1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02,
                 1.62138957456669019e03, 3.29079923573345963e03, 4.36261909014324716e03,
                 3.43936767414372164e03, 1.23033935480374942e03)
_ERFC_TAIL_NUM = (1.63153871373020978e-2, 3.05326634961232344e-1, 3.60344899949804439e-1,
                  1.25781726111229246e-1, 1.60837851487422766e-2, 6.58749161529837803e-4)
_ERFC_TAIL_DEN = (1.0, 2.56852019228982242e00, 1.87295284992346047e00, 5.27905102951428412e-1,
                  6.05183413124413191e-2, 2.33520497626869185e-3)
_INV_SQRT_PI = 0.5641895835477562869


def _horner(t, coefficients):
    acc = t * coefficients[0]  # one new array, then updated in place: these ops are memory-bound
    acc += coefficients[1]
    for c in coefficients[2:]:
        acc *= t
        acc += c
    return acc


# Single precision: one rational function on [-4, 4] (erf is +-1 in float32 beyond), odd numerator over
# even denominator, the fast float erf of Eigen and XLA: within 7 float32 ulps of erf (4.2e-7 absolute),
# and one pass per coefficient instead of Cody's three approximations with exp (about 4x less time).
_ERF32_NUM = (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
              -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02)
_ERF32_DEN = (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03,
              -1.42647390514189e-02)


def _erf_single(xp, x):
    x = xp.clip(x, -4.0, 4.0)
    x_sq = x * x
    numerator = _horner(x_sq, _ERF32_NUM)
    numerator *= x
    numerator /= _horner(x_sq, _ERF32_DEN)
    return numerator


def _erf_array(xp, x):
    """Cody's three rational approximations, each evaluated on the whole array and then selected
    (float64); a single rational function for float32 and float16."""
    if x.dtype.itemsize <= 4:
        return _erf_single(xp, x)
    y = xp.abs(x)
    near = xp.clip(x, -0.46875, 0.46875)
    near_sq = near * near
    erf_near = near * _horner(near_sq, _ERF_NUM) / _horner(near_sq, _ERF_DEN)
    mid = xp.clip(y, 0.46875, 4.0)
    tail = xp.clip(y, 4.0, 27.0)  # erfc(27) underflows to 0 in float64; clipping keeps inf finite
    inv_sq = 1 / (tail * tail)
    erfc_mid = _horner(mid, _ERFC_MID_NUM) / _horner(mid, _ERFC_MID_DEN)
    erfc_tail = (_INV_SQRT_PI - inv_sq * _horner(inv_sq, _ERFC_TAIL_NUM) / _horner(inv_sq, _ERFC_TAIL_DEN)) / tail
    far = xp.clip(y, 0.46875, 27.0)
    # exp(-far**2) split as exp(-r**2) * exp(-(far - r)(far + r)) with r = far rounded down to 1/16
    r = xp.trunc(far * 16) / 16
    erfc = xp.where(y <= 4.0, erfc_mid, erfc_tail) * xp.exp(-r * r) * xp.exp(-(far - r) * (far + r))
    return xp.where(y <= 0.46875, erf_near, xp.sign(x) * (1 - erfc))


Erf = _pointwise("Erf", _erf_array, lambda g, x: g * (2 * _INV_SQRT_PI) * (-x * x).exp())

_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)
_KAPPA = 0.044715


def _gelu_array(xp, x, approximate):
    return blockwise(lambda xp, x: _gelu_block(xp, x, approximate), x)


def _gelu_block(xp, x, approximate):
    if approximate == "tanh":
        return 0.5 * x * (1 + xp.tanh(_SQRT_2_OVER_PI * (x + _KAPPA * x * x * x)))
    out = _erf_array(xp, x * _SQRT_HALF)
    out += 1
    out *= x
    out *= 0.5
    return out


def _gelu_derivative_times(xp, grad, x, approximate):
    """``grad * gelu'(x)`` on arrays (a first-order backward), in few passes over memory."""
    if approximate == "tanh":
        x_sq = x * x
        t = xp.tanh(_SQRT_2_OVER_PI * (x + _KAPPA * x_sq * x))
        # 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 kappa x^2)
        x_sq *= 3 * _KAPPA * _SQRT_2_OVER_PI
        x_sq += _SQRT_2_OVER_PI
        x_sq *= x
        x_sq *= 1 - t * t
        x_sq += 1 + t
        x_sq *= 0.5
        x_sq *= grad
        return x_sq
    out = _erf_array(xp, x * _SQRT_HALF)
    out += 1
    out *= 0.5  # the cdf
    pdf = x * x
    pdf *= -0.5
    xp.exp(pdf, out=pdf)
    pdf *= x * _INV_SQRT_2PI
    out += pdf
    out *= grad
    return out


GELU_KERNELS = {"none": "gelu", "tanh": "gelu_tanh"}


def gelu_chain(grad, x, approximate):
    if not isinstance(grad, Tensor) and pointwise_kernels.applies(grad, x):  # the GPU kernel
        return pointwise_kernels.bias_act_backward(grad, x, None, GELU_KERNELS[approximate])
    if not isinstance(grad, Tensor):  # arrays: a first-order backward
        return blockwise(lambda xp, g, x: _gelu_derivative_times(xp, g, x, approximate), grad, x)
    if approximate == "tanh":
        x_sq = x * x
        t = (_SQRT_2_OVER_PI * (x + _KAPPA * x_sq * x)).tanh()
        return grad * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * _SQRT_2_OVER_PI * (1 + 3 * _KAPPA * x_sq))
    cdf = 0.5 * (1 + (x * _SQRT_HALF).erf())
    pdf = (-0.5 * x * x).exp() * _INV_SQRT_2PI
    return grad * (cdf + x * pdf)


class Gelu(_pointwise("GeluArrays", _gelu_array, gelu_chain, arithmetic_backward=True)):
    """On the GPU: one kernel forward and one backward (``kernels.pointwise``), in the input's dtype."""

    @classmethod
    def forward(cls, ctx, x, approximate):
        if not pointwise_kernels.applies(x.array):
            return super().forward(ctx, x, approximate)
        ctx.options = (approximate,)
        ctx.save_for_backward(x)
        return pointwise_kernels.bias_act(x.array, None, GELU_KERNELS[approximate])


def sqrt(input): return Sqrt.apply(input)
def sin(input): return Sin.apply(input)
def cos(input): return Cos.apply(input)
def tanh(input): return Tanh.apply(input)
def sigmoid(input): return Sigmoid.apply(input)
def erf(input): return Erf.apply(input)
def abs(input): return Abs.apply(input)
def sign(input): return Sign.apply(input)
def relu(input): return Relu.apply(input)
def silu(input): return Silu.apply(input)
def floor(input): return Floor.apply(input)
def ceil(input): return Ceil.apply(input)
def trunc(input): return Trunc.apply(input)


# PyTorch's CUDA autocast runs these in float32 (distgrad/amp/policy.py).
@autocast_op()
def exp(input): return Exp.apply(input)


@autocast_op()
def log(input): return Log.apply(input)


@autocast_op()
def log1p(input): return Log1p.apply(input)


@autocast_op()
def expm1(input): return Expm1.apply(input)


@autocast_op()
def rsqrt(input): return Rsqrt.apply(input)


@autocast_op()
def reciprocal(input): return Reciprocal.apply(input)


@autocast_op()
def tan(input): return Tan.apply(input)


absolute = abs


def square(input):
    """``input ** 2`` (torch records it as a pow, too)."""
    return input ** 2


def round(input, *, decimals: int = 0):
    """Rounds half to even, like torch; ``decimals`` rounds to that many decimal places."""
    return Round.apply(input, decimals)


def leaky_relu(input, negative_slope: float = 0.01):
    return LeakyRelu.apply(input, negative_slope)


@autocast_op()
def softplus(input, beta: float = 1.0, threshold: float = 20.0):
    """``log(1 + exp(beta * x)) / beta``, and ``x`` itself where ``beta * x > threshold``."""
    return Softplus.apply(input, beta, threshold)


def gelu(input, approximate: str = "none"):
    """``x * Phi(x)`` with the exact normal CDF, or its tanh approximation (``approximate='tanh'``)."""
    if approximate not in ("none", "tanh"):
        raise RuntimeError("approximate argument must be either none or tanh.")
    return Gelu.apply(input, approximate)


# --- clamp, maximum/minimum, where ---------------------------------------------------------------
def _promoted_arrays(xp, *values) -> list:
    """The arrays of ``values`` (Tensors, numbers or None) in their PyTorch result dtype."""
    dtype = result_type(*values)
    return [None if v is None else cast(v, dtype) if isinstance(v, Tensor) else xp.asarray(cast(v, dtype), dtype)
            for v in values]


class Clamp(Function):
    """``min(max(x, lo), hi)``; ``lo`` and ``hi`` are Tensors, numbers or None, and broadcast."""

    @staticmethod
    def forward(ctx, x, lo, hi):
        xp = x._xp
        ctx.save_for_backward(x, *(b if isinstance(b, Tensor) else None for b in (lo, hi)))
        ctx.numbers = lo, hi
        out, lo_array, hi_array = _promoted_arrays(xp, x, lo, hi)
        if lo is not None:
            out = xp.maximum(out, lo_array)
        if hi is not None:
            out = xp.minimum(out, hi_array)
        return out

    @staticmethod
    def backward(ctx, grad):
        # torch's clamp_backward_min_max: a bound gets the gradient where it is the output
        x, lo_t, hi_t = ctx.saved_tensors
        lo = ctx.numbers[0] if lo_t is None else lo_t
        hi = ctx.numbers[1] if hi_t is None else hi_t
        needs = ctx.needs_input_grad
        gx = g_lo = g_hi = None
        if needs[0]:
            inside = x >= lo if lo is not None else None
            if hi is not None:
                inside = x <= hi if inside is None else inside & (x <= hi)
            gx = sum_to(where(inside, grad, 0), x.shape)
        if needs[1]:
            lo_wins = (lo > x) & (lo < hi) if hi is not None else lo > x
            g_lo = sum_to(where(lo_wins, grad, 0), lo.shape)
        if needs[2]:
            hi_wins = (hi < x) | (hi < lo) if lo is not None else hi < x
            g_hi = sum_to(where(hi_wins, grad, 0), hi.shape)
        return gx, g_lo, g_hi


def clamp(input, min=None, max=None):
    """Limits ``input`` to ``[min, max]`` (either may be None, a number or a broadcastable Tensor).

    The gradient passes where ``min <= input <= max``; where ``min > max`` the output is ``max``.
    """
    if min is None and max is None:
        raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
    return Clamp.apply(input, min, max)


clip = clamp


def clamp_min(input, min):
    return clamp(input, min=min)


def clamp_max(input, max):
    return clamp(input, max=max)


class _Extremum(Function):
    """``maximum``/``minimum``: on ties each input gets half the gradient, as in torch."""

    @classmethod
    def forward(cls, ctx, a, b):
        ctx.save_for_backward(a, b)
        return cls.pick(a._xp, *promoted(a, b))

    @classmethod
    def backward(cls, ctx, grad):
        a, b = ctx.saved_tensors
        ties = a == b
        half = grad / 2
        ga = gb = None
        if ctx.needs_input_grad[0]:
            ga = sum_to(where(ties, half, where(cls.first_wins(b, a), 0, grad)), a.shape)
        if ctx.needs_input_grad[1]:
            gb = sum_to(where(ties, half, where(cls.first_wins(a, b), 0, grad)), b.shape)
        return ga, gb


class Maximum(_Extremum):
    pick = staticmethod(lambda xp, a, b: xp.maximum(a, b))
    first_wins = staticmethod(lambda a, b: a > b)


class Minimum(_Extremum):
    pick = staticmethod(lambda xp, a, b: xp.minimum(a, b))
    first_wins = staticmethod(lambda a, b: a < b)


def require_tensor(op: str, value, name: str, position: int) -> None:
    """torch's TypeError for an argument that must be a Tensor (shared with the linalg ops)."""
    if not isinstance(value, Tensor):
        raise TypeError(f"{op}(): argument '{name}' (position {position}) must be Tensor, not {type(value).__name__}")


def maximum(input, other):
    """The elementwise maximum of two broadcastable tensors (NaN propagates)."""
    require_tensor("maximum", other, "other", 2)
    return Maximum.apply(input, other)


def minimum(input, other):
    """The elementwise minimum of two broadcastable tensors (NaN propagates)."""
    require_tensor("minimum", other, "other", 2)
    return Minimum.apply(input, other)


class Where(Function):
    @staticmethod
    def forward(ctx, condition, a, b):
        ctx.save_for_backward(condition)
        ctx.shapes = tuple(t.shape if isinstance(t, Tensor) else () for t in (a, b))
        xp = condition._xp
        return xp.where(condition.array, *_promoted_arrays(xp, a, b))

    @staticmethod
    def backward(ctx, grad):
        (condition,) = ctx.saved_tensors
        sa, sb = ctx.shapes
        ga = sum_to(where(condition, grad, 0), sa) if ctx.needs_input_grad[1] else None
        gb = sum_to(where(condition, 0, grad), sb) if ctx.needs_input_grad[2] else None
        return None, ga, gb


def where(condition, input=None, other=None):
    """``input`` where ``condition`` holds, else ``other``; all three broadcast, numbers allowed.

    ``where(condition)`` alone is ``condition.nonzero(as_tuple=True)``: the indices of True elements.
    """
    if condition.dtype.kind != "b":
        raise RuntimeError(f"where expected condition to be a boolean tensor, but got a tensor with dtype "
                           f"{condition.dtype.name}")
    if input is None and other is None:
        backend.check_host_sync("where(condition) (its result's shape depends on the data)", condition.array)
        return tuple(Tensor(i) for i in condition._xp.nonzero(condition.array))
    return Where.apply(condition, input, other)


bind_methods(
    exp=exp, log=log, log1p=log1p, expm1=expm1, sqrt=sqrt, rsqrt=rsqrt, square=square, reciprocal=reciprocal,
    abs=abs, absolute=abs, __abs__=abs, sign=sign, sin=sin, cos=cos, tan=tan, tanh=tanh, sigmoid=sigmoid,
    erf=erf, relu=relu, floor=floor, ceil=ceil, trunc=trunc, round=round,
    clamp=clamp, clip=clamp, clamp_min=clamp_min, clamp_max=clamp_max, maximum=maximum, minimum=minimum,
    where=lambda input, condition, other: where(condition, input, other),
)
