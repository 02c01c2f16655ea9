"""Activation layers: thin Modules over ``distgrad.nn.functional``.

Most are a ``FunctionalLayer``: PyTorch's constructor, whose options go to the functional of that name;
those that share a constructor (no options, ``inplace`` alone, ``dim`` alone) are rows of a table.
"""
from __future__ import annotations

from distgrad import creation
from distgrad.nn import functional as F
from distgrad.nn import init as nn_init
from distgrad.nn.module import Module
from distgrad.nn.modules.functional_layer import FunctionalLayer, functional_variants
from distgrad.nn.parameter import Parameter


class _PlainActivation(FunctionalLayer):
    """An activation without options."""

    def __init__(self):
        super().__init__()


class _InplaceActivation(FunctionalLayer):
    """An activation whose only option is ``inplace``."""

    def __init__(self, inplace: bool = False):
        super().__init__(inplace=inplace)


class _DimActivation(FunctionalLayer):
    """An activation along one ``dim`` (each slice along it is one distribution)."""

    def __init__(self, dim: int | None = None):
        super().__init__(dim=dim)


Sigmoid, Tanh, Softsign, LogSigmoid, Tanhshrink = functional_variants(_PlainActivation, __name__, [
    ("Sigmoid", "sigmoid", "``1 / (1 + exp(-x))``."),
    ("Tanh", "tanh", "``tanh(x)``."),
    ("Softsign", "softsign", "``x / (1 + |x|)``."),
    ("LogSigmoid", "logsigmoid", "``log(sigmoid(x))``, accurate for large ``|x|``."),
    ("Tanhshrink", "tanhshrink", "``x - tanh(x)``."),
])
ReLU, SiLU, SELU, Hardsigmoid, Hardswish, Mish = functional_variants(_InplaceActivation, __name__, [
    ("ReLU", "relu", "``max(0, x)``."),
    ("SiLU", "silu", "``x * sigmoid(x)``."),
    ("SELU", "selu", "``scale * elu(x, alpha)`` with the self-normalising constants."),
    ("Hardsigmoid", "hardsigmoid", "``relu6(x + 3) / 6``."),
    ("Hardswish", "hardswish", "``x * relu6(x + 3) / 6``."),
    ("Mish", "mish", "``x * tanh(softplus(x))``."),
])
Softmax, LogSoftmax, Softmin = functional_variants(_DimActivation, __name__, [
    ("Softmax", "softmax", "Softmax along ``dim``: each slice along it sums to one."),
    ("LogSoftmax", "log_softmax", "``log(softmax(x))`` along ``dim``, computed stably."),
    ("Softmin", "softmin", "``softmax(-x)`` along ``dim``."),
])


class LeakyReLU(FunctionalLayer):
    """``max(0, x) + negative_slope * min(0, x)``."""

    function = "leaky_relu"

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False):
        super().__init__(negative_slope=negative_slope, inplace=inplace)


class GELU(FunctionalLayer):
    """``x * Φ(x)``; ``approximate='tanh'`` uses the tanh formula."""

    function = "gelu"

    def __init__(self, approximate: str = "none"):
        super().__init__(approximate=approximate)


class Softmax2d(Module):
    """Softmax over the channels of (N, C, H, W) or (C, H, W) input, at every pixel."""

    def forward(self, input):
        if input.ndim not in (3, 4):
            raise ValueError(f"Softmax2d: expected input to be 3D or 4D, got {input.ndim}D instead")
        return F.softmax(input, -3)


class ELU(FunctionalLayer):
    """``x`` where positive, else ``alpha * (exp(x) - 1)``."""

    function = "elu"

    def __init__(self, alpha: float = 1.0, inplace: bool = False):
        super().__init__(alpha=alpha, inplace=inplace)


class CELU(ELU):
    """``max(0, x) + min(0, alpha * (exp(x / alpha) - 1))``."""

    function = "celu"


class Hardtanh(FunctionalLayer):
    """``x`` clipped to ``[min_val, max_val]``."""

    function = "hardtanh"

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False):
        if min_val > max_val:
            raise ValueError("min_val cannot be greater than max_val")
        super().__init__(min_val=min_val, max_val=max_val, inplace=inplace)


class ReLU6(Hardtanh):
    """``min(max(0, x), 6)``."""

    shown = ("inplace",)

    def __init__(self, inplace: bool = False):
        super().__init__(0.0, 6.0, inplace)


class Softplus(FunctionalLayer):
    """``log(1 + exp(beta * x)) / beta``, and ``x`` where ``beta * x > threshold``."""

    function = "softplus"

    def __init__(self, beta: float = 1.0, threshold: float = 20.0):
        super().__init__(beta=beta, threshold=threshold)


class Threshold(FunctionalLayer):
    """``x`` where ``x > threshold``, else ``value``."""

    function = "threshold"

    def __init__(self, threshold: float, value: float, inplace: bool = False):
        super().__init__(threshold=threshold, value=value, inplace=inplace)


class Hardshrink(FunctionalLayer):
    """``x`` where ``|x| > lambd``, else 0."""

    function = "hardshrink"

    def __init__(self, lambd: float = 0.5):
        super().__init__(lambd=lambd)

    def extra_repr(self) -> str:
        return f"{self.lambd}"  # PyTorch prints the value alone


class Softshrink(Hardshrink):
    """``x - lambd * sign(x)`` where ``|x| > lambd``, else 0."""

    function = "softshrink"


class GLU(FunctionalLayer):
    """``a * sigmoid(b)`` for the halves ``a``, ``b`` of the input along ``dim``."""

    function = "glu"

    def __init__(self, dim: int = -1):
        super().__init__(dim=dim)


class PReLU(Module):
    """``x`` where positive, else ``weight * x``: a learned slope, one (``num_parameters=1``) or one per channel."""

    def __init__(self, num_parameters: int = 1, init: float = 0.25, device=None, dtype=None):
        super().__init__()
        self.num_parameters = num_parameters
        self.init = init
        self.weight = Parameter(creation.full((num_parameters,), float(init), device=device, dtype=dtype))

    def reset_parameters(self) -> None:
        nn_init.constant_(self.weight, self.init)

    def forward(self, input):
        return F.prelu(input, self.weight)

    def extra_repr(self) -> str:
        return f"num_parameters={self.num_parameters}"
