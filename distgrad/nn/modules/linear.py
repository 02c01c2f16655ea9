"""``Linear`` (y = x Wᵀ + b) and ``Identity``."""
from __future__ import annotations

from distgrad.nn import functional as F
from distgrad.nn.module import Module
from distgrad.nn.modules.weighted import WeightedLayer


class Identity(Module):
    """Returns its input; accepts and ignores any constructor arguments (PyTorch does too)."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input):
        return input


class Linear(WeightedLayer):
    """``y = x @ weight.T + bias`` with ``weight`` of shape (out_features, in_features)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None, dtype=None):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self._add_weight_and_bias((out_features, in_features), bias, device, dtype)

    def forward(self, input):
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
