"""Pooling layers over (N, C, H, W): ``MaxPool2d``, ``AvgPool2d``, ``AdaptiveAvgPool2d``, ``AdaptiveMaxPool2d``;
and over (N, C, L): ``MaxPool1d``, ``AvgPool1d``, ``AdaptiveAvgPool1d``, ``AdaptiveMaxPool1d``.

Each is a ``FunctionalLayer``: its 1d form is its 2d form calling the 1d functional, except ``AvgPool1d``
(no ``divisor_override``, and its options kept as 1-tuples, as PyTorch keeps them).
"""
from __future__ import annotations

from distgrad.nn.modules.functional_layer import FunctionalLayer


class MaxPool2d(FunctionalLayer):
    """The maximum over each window; ``stride`` defaults to ``kernel_size``."""

    function = "max_pool2d"
    shown = ("kernel_size", "stride", "padding", "dilation", "ceil_mode")

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices: bool = False,
                 ceil_mode: bool = False):
        super().__init__(kernel_size=kernel_size, stride=stride if stride is not None else kernel_size,
                         padding=padding, dilation=dilation, return_indices=return_indices, ceil_mode=ceil_mode)


class AvgPool2d(FunctionalLayer):
    """The mean over each window; ``stride`` defaults to ``kernel_size``."""

    function = "avg_pool2d"
    shown = ("kernel_size", "stride", "padding")

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override: int | None = None):
        super().__init__(kernel_size=kernel_size, stride=stride if stride is not None else kernel_size,
                         padding=padding, ceil_mode=ceil_mode, count_include_pad=count_include_pad,
                         divisor_override=divisor_override)


class AdaptiveAvgPool2d(FunctionalLayer):
    """Averages into a fixed ``output_size`` (an int, or a pair whose entries may be None: keep that size)."""

    function = "adaptive_avg_pool2d"

    def __init__(self, output_size):
        super().__init__(output_size=output_size)


class AdaptiveMaxPool2d(FunctionalLayer):
    """The maximum over each of ``output_size`` adaptive windows; ``return_indices`` also gives their positions."""

    function = "adaptive_max_pool2d"
    shown = ("output_size",)

    def __init__(self, output_size, return_indices: bool = False):
        super().__init__(output_size=output_size, return_indices=return_indices)


class MaxPool1d(MaxPool2d):
    """The maximum over each window of (N, C, L) or (C, L) input; ``stride`` defaults to ``kernel_size``."""

    function = "max_pool1d"


class AvgPool1d(FunctionalLayer):
    """The mean over each window of (N, C, L) or (C, L) input; ``stride`` defaults to ``kernel_size``."""

    function = "avg_pool1d"
    shown = AvgPool2d.shown

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False, count_include_pad: bool = True):
        def single(x):  # PyTorch keeps AvgPool1d's arguments as 1-tuples
            return tuple(x) if isinstance(x, (tuple, list)) else (x,)
        super().__init__(kernel_size=single(kernel_size), stride=single(stride if stride is not None else kernel_size),
                         padding=single(padding), ceil_mode=ceil_mode, count_include_pad=count_include_pad)


class AdaptiveAvgPool1d(AdaptiveAvgPool2d):
    """Averages (N, C, L) or (C, L) input into ``output_size`` positions."""

    function = "adaptive_avg_pool1d"


class AdaptiveMaxPool1d(AdaptiveMaxPool2d):
    """The maximum over each of ``output_size`` adaptive windows of (N, C, L) or (C, L) input."""

    function = "adaptive_max_pool1d"
