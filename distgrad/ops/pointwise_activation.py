"""The activation functions beyond ``elementwise.py``'s: ``elu celu selu hardtanh relu6 hardsigmoid hardswish
mish logsigmoid threshold hardshrink softshrink`` (one table row each: the array function beside the chain
rule, written with Tensor ops so double backward works), the compositions ``softsign`` and ``tanhshrink``,
and the two that take a second operand, ``prelu`` (a learned slope) and ``glu`` (one half gates the other).

Derivatives at the kinks follow PyTorch's backward formulas (e.g. ``hardtanh``'s gradient is zero at
``min_val`` and ``max_val``, where ``clamp``'s passes).
"""
from __future__ import annotations

from distgrad.ops.autocasting import autocast_op
from distgrad.ops.dims import wrap_dim
from distgrad.ops.elementwise import _pointwise, _softplus_array, softplus, where
from distgrad.tensor import Tensor

__all__ = ["elu", "celu", "selu", "hardtanh", "relu6", "hardsigmoid", "hardswish", "mish", "softsign",
           "logsigmoid", "threshold", "hardshrink", "softshrink", "tanhshrink", "prelu", "glu"]

# SELU's constants (Klambauer et al., 2017), as PyTorch writes them
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def _elu_array(xp, x, alpha, scale, input_scale):
    # expm1 sees only non-positive numbers: no overflow where the positive branch is taken
    return xp.where(x > 0, scale * x, (alpha * scale) * xp.expm1(xp.minimum(x, 0) * input_scale))


def _elu_chain(g, x, alpha, scale, input_scale):
    return where(x > 0, g * scale, g * (alpha * scale * input_scale) * (x.clamp(max=0) * input_scale).exp())


Elu = _pointwise("Elu", _elu_array, _elu_chain)
Hardtanh = _pointwise("Hardtanh", lambda xp, x, low, high: xp.clip(x, low, high),
                      lambda g, x, low, high: where((x > low) & (x < high), g, 0), promotes_integers=False)
Hardsigmoid = _pointwise("Hardsigmoid", lambda xp, x: xp.clip(x + 3, 0, 6) / 6,
                         lambda g, x: where((x > -3) & (x < 3), g / 6, 0))
Hardswish = _pointwise("Hardswish", lambda xp, x: x * xp.clip(x + 3, 0, 6) / 6,
                       lambda g, x: where(x <= -3, 0, where(x < 3, g * (x / 3 + 0.5), g)))


def _mish_array(xp, x):
    return x * xp.tanh(_softplus_array(xp, x, 1.0, 20.0))


def _mish_chain(g, x):
    tanh_softplus = softplus(x).tanh()
    return g * (tanh_softplus + x * x.sigmoid() * (1 - tanh_softplus * tanh_softplus))


Mish = _pointwise("Mish", _mish_array, _mish_chain)
# log(sigmoid(x)) = -softplus(-x), computed without overflow; its derivative is sigmoid(-x)
Logsigmoid = _pointwise("Logsigmoid", lambda xp, x: xp.minimum(x, 0) - xp.log1p(xp.exp(-xp.abs(x))),
                        lambda g, x: g * (-x).sigmoid())
Threshold = _pointwise("Threshold", lambda xp, x, threshold, value: xp.where(x > threshold, x, value),
                       lambda g, x, threshold, value: where(x > threshold, g, 0), promotes_integers=False)
Hardshrink = _pointwise("Hardshrink", lambda xp, x, lambd: xp.where((x > lambd) | (x < -lambd), x, 0),
                        lambda g, x, lambd: where((x > lambd) | (x < -lambd), g, 0))
Softshrink = _pointwise("Softshrink",
                        lambda xp, x, lambd: xp.where(x > lambd, x - lambd, xp.where(x < -lambd, x + lambd, 0)),
                        lambda g, x, lambd: where((x > lambd) | (x < -lambd), g, 0))


def elu(input: Tensor, alpha: float = 1.0) -> Tensor:
    """``x`` where positive, else ``alpha * (exp(x) - 1)``."""
    return Elu.apply(input, alpha, 1.0, 1.0)


def celu(input: Tensor, alpha: float = 1.0) -> Tensor:
    """``max(0, x) + min(0, alpha * (exp(x / alpha) - 1))``."""
    if alpha == 0:
        raise RuntimeError("ZeroDivisionError")  # torch's message: celu divides by alpha
    return Elu.apply(input, alpha, 1.0, 1.0 / alpha)


def selu(input: Tensor) -> Tensor:
    """``scale * elu(x, alpha)`` with the self-normalising constants."""
    return Elu.apply(input, SELU_ALPHA, SELU_SCALE, 1.0)


def hardtanh(input: Tensor, min_val: float = -1.0, max_val: float = 1.0) -> Tensor:
    """``x`` clipped to ``[min_val, max_val]``."""
    if min_val > max_val:
        raise ValueError("min_val cannot be greater than max_val")
    return Hardtanh.apply(input, min_val, max_val)


def relu6(input: Tensor) -> Tensor:
    """``min(max(0, x), 6)``."""
    return Hardtanh.apply(input, 0.0, 6.0)


def hardsigmoid(input: Tensor) -> Tensor:
    """``relu6(x + 3) / 6``."""
    return Hardsigmoid.apply(input)


def hardswish(input: Tensor) -> Tensor:
    """``x * relu6(x + 3) / 6``."""
    return Hardswish.apply(input)


def mish(input: Tensor) -> Tensor:
    """``x * tanh(softplus(x))``."""
    return Mish.apply(input)


def logsigmoid(input: Tensor) -> Tensor:
    """``log(sigmoid(x))``, accurate for large ``|x|``."""
    return Logsigmoid.apply(input)


def threshold(input: Tensor, threshold: float, value: float) -> Tensor:
    """``x`` where ``x > threshold``, else ``value``."""
    return Threshold.apply(input, threshold, value)


def hardshrink(input: Tensor, lambd: float = 0.5) -> Tensor:
    """``x`` where ``|x| > lambd``, else 0."""
    return Hardshrink.apply(input, lambd)


def softshrink(input: Tensor, lambd: float = 0.5) -> Tensor:
    """``x - lambd * sign(x)`` where ``|x| > lambd``, else 0."""
    if lambd < 0:
        raise RuntimeError(f"lambda must be greater or equal to 0, but found to be {lambd}.")
    return Softshrink.apply(input, lambd)


def softsign(input: Tensor) -> Tensor:
    """``x / (1 + |x|)``."""
    return input / (1 + input.abs())


def tanhshrink(input: Tensor) -> Tensor:
    """``x - tanh(x)``."""
    return input - input.tanh()


@autocast_op()
def prelu(input: Tensor, weight: Tensor) -> Tensor:
    """``x`` where positive, else ``weight * x``; ``weight`` has one slope, or one per channel (dim 1)."""
    channels = input.shape[1] if input.ndim >= 2 else 1
    if weight.numel() != 1 and weight.numel() != channels:
        raise RuntimeError(f"Mismatch of parameter numbers and input channel size. Found parameter numbers = "
                           f"{weight.numel()} and channel size = {channels}.")
    if weight.numel() != 1 and input.ndim > 2:
        weight = weight.reshape((-1,) + (1,) * (input.ndim - 2))
    elif weight.ndim > 1 or weight.numel() == 1:
        weight = weight.reshape(-1) if weight.numel() != 1 else weight.reshape(())
    return where(input > 0, input, weight * input)


def glu(input: Tensor, dim: int = -1) -> Tensor:
    """``a * sigmoid(b)`` where ``a`` and ``b`` are the two halves of ``input`` along ``dim``."""
    if input.ndim == 0:
        raise RuntimeError("glu does not support scalars because halving size must be even")
    axis = wrap_dim(dim, input.ndim)
    if input.shape[axis] % 2:
        raise RuntimeError(f"Halving dimension must be even, but dimension {axis} is size {input.shape[axis]}")
    a, b = input.chunk(2, axis)
    return a * b.sigmoid()
