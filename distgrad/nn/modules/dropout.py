"""Dropout layers: ``Dropout`` zeroes elements, ``Dropout1d``/``2d``/``3d`` whole channels, with probability ``p``
in training mode, scaling the rest by 1/(1-p)."""
from __future__ import annotations

from distgrad.nn import functional as F
from distgrad.nn.module import Module
from distgrad.nn.modules.functional_layer import functional_variants


class Dropout(Module):
    """Active only while ``training``; in eval mode it returns its input."""

    function = "dropout"

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        if p < 0 or p > 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = p
        self.inplace = inplace

    def forward(self, input):
        return getattr(F, self.function)(input, self.p, self.training, self.inplace)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


Dropout1d, Dropout2d, Dropout3d = functional_variants(Dropout, __name__, [
    ("Dropout1d", "dropout1d", "Zeroes whole channels of (N, C, L) or (C, L) inputs."),
    ("Dropout2d", "dropout2d", "Zeroes whole channels of (N, C, H, W) or (C, H, W) inputs."),
    ("Dropout3d", "dropout3d", "Zeroes whole channels of (N, C, D, H, W) or (C, D, H, W) inputs."),
])
