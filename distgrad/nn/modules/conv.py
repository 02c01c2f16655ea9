"""Convolution layers with PyTorch's arguments: ``Conv1d``, ``Conv2d``, ``ConvTranspose1d``, ``ConvTranspose2d``.

One base, ``_ConvNd``, holds what they share: the arguments as tuples of ``dims`` entries (its constructor is
the convolutions'; the transposed ones add ``output_padding``), the weight (out, in / groups, *kernel) of a
convolution or (in, out / groups, *kernel) of a transposed one, and PyTorch's default initialisation
(``WeightedLayer``'s).
"""
from __future__ import annotations

from distgrad.nn import functional as F
from distgrad.nn.modules.weighted import WeightedLayer

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _tuple(x, dims: int) -> tuple:
    return tuple(x) if isinstance(x, (tuple, list)) else (x,) * dims


class _ConvNd(WeightedLayer):
    dims = 2
    transposed = False

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", device=None, dtype=None):
        super().__init__()
        name = type(self).__name__
        if groups <= 0:
            raise ValueError("groups must be a positive integer")
        if in_channels % groups != 0:
            raise ValueError("in_channels must be divisible by groups")
        if out_channels % groups != 0:
            raise ValueError("out_channels must be divisible by groups")
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"Invalid padding string {padding!r}, should be one of {{'valid', 'same'}}")
            if padding == "same" and any(s != 1 for s in _tuple(stride, self.dims)):
                raise ValueError("padding='same' is not supported for strided convolutions")
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {list(_PADDING_MODES)}, but got padding_mode='{padding_mode}'")
        if self.transposed and padding_mode != "zeros":
            raise ValueError(f'Only "zeros" padding mode is supported for {name}')
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = _tuple(kernel_size, self.dims)
        self.stride = _tuple(stride, self.dims)
        self.padding = padding if isinstance(padding, str) else _tuple(padding, self.dims)
        self.dilation = _tuple(dilation, self.dims)
        self.output_padding = (0,) * self.dims  # a transposed convolution sets its own
        self.groups = groups
        self.padding_mode = padding_mode
        shape = (in_channels, out_channels // groups) if self.transposed else (out_channels, in_channels // groups)
        self._add_weight_and_bias((*shape, *self.kernel_size), bias, device, dtype, bias_size=out_channels)

    def _edge_padding(self) -> tuple:
        """``F.pad``'s widths (last dim first) for a ``padding_mode`` other than zeros."""
        widths = []
        for d, k, p in reversed(list(zip(self.dilation, self.kernel_size, _tuple(self.padding, self.dims)))):
            if p == "same":
                total = d * (k - 1)
                widths += [total // 2, total - total // 2]
            else:
                widths += [0, 0] if p == "valid" else [p, p]
        return tuple(widths)

    def extra_repr(self) -> str:
        zeros = (0,) * self.dims
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != zeros:
            s += f", padding={self.padding}"
        if self.dilation != (1,) * self.dims:
            s += f", dilation={self.dilation}"
        if self.output_padding != zeros:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class _Conv(_ConvNd):
    """A convolution: ``padding`` is an int, a tuple, ``'valid'`` or ``'same'`` (stride 1); any padding mode."""

    function = ""

    def forward(self, input):
        conv = getattr(F, self.function)
        if self.padding_mode != "zeros":
            input = F.pad(input, self._edge_padding(), mode=self.padding_mode)
            return conv(input, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)
        return conv(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class Conv1d(_Conv):
    """1-D cross-correlation over (N, C, L) inputs; ``weight`` is (out_channels, in_channels // groups, k)."""

    dims = 1
    function = "conv1d"


class Conv2d(_Conv):
    """2-D cross-correlation over (N, C, H, W) inputs; ``weight`` is (out_channels, in_channels // groups, kH, kW)."""

    dims = 2
    function = "conv2d"


class _ConvTranspose(_ConvNd):
    """A transposed convolution; ``forward(input, output_size)`` may ask for one of the output sizes the
    stride allows, as in PyTorch (it sets the ``output_padding`` of that call)."""

    transposed = True
    function = ""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, output_padding=0,
                 groups: int = 1, bias: bool = True, dilation=1, padding_mode: str = "zeros", device=None,
                 dtype=None):
        if isinstance(padding, str):
            raise ValueError(f"Invalid padding string {padding!r}: {type(self).__name__} takes integer padding")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, device, dtype)
        self.output_padding = _tuple(output_padding, self.dims)

    def _output_padding(self, input, output_size) -> tuple:
        if output_size is None:
            return self.output_padding
        output_size = tuple(output_size)[-self.dims:]
        if len(output_size) != self.dims:
            raise ValueError(f"ConvTranspose{self.dims}D: for {input.ndim}D input, output_size must have "
                             f"{self.dims} or {self.dims + 2} elements (got {len(tuple(output_size))})")
        padding = []
        for d in range(self.dims):
            size = input.shape[input.ndim - self.dims + d]
            smallest = ((size - 1) * self.stride[d] - 2 * self.padding[d]
                        + self.dilation[d] * (self.kernel_size[d] - 1) + 1)
            largest = smallest + self.stride[d] - 1
            if not smallest <= output_size[d] <= largest:
                raise ValueError(f"requested an output size of {list(output_size)}, but valid sizes range from "
                                 f"{smallest} to {largest} (for an input of {list(input.shape[2:])})")
            padding.append(output_size[d] - smallest)
        return tuple(padding)

    def forward(self, input, output_size=None):
        return getattr(F, self.function)(input, self.weight, self.bias, self.stride, self.padding,
                                         self._output_padding(input, output_size), self.groups, self.dilation)


class ConvTranspose1d(_ConvTranspose):
    """Transposed 1-D convolution over (N, C, L); ``weight`` is (in_channels, out_channels // groups, k)."""

    dims = 1
    function = "conv_transpose1d"


class ConvTranspose2d(_ConvTranspose):
    """Transposed 2-D convolution over (N, C, H, W); ``weight`` is (in_channels, out_channels // groups, kH, kW)."""

    dims = 2
    function = "conv_transpose2d"
