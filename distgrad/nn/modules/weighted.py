"""``WeightedLayer``: the weight and optional bias that ``Linear``, ``Bilinear`` and the convolutions share, and
their initialisation."""
from __future__ import annotations

from distgrad import creation
from distgrad.nn import init
from distgrad.nn.module import Module
from distgrad.nn.parameter import Parameter


class WeightedLayer(Module):
    """A layer computing with ``weight`` and an optional ``bias`` of one value per output feature or channel,
    initialised as PyTorch initialises its Linear and Conv layers."""

    def _add_weight_and_bias(self, weight_shape: tuple, bias: bool, device=None, dtype=None,
                             bias_size: int | None = None) -> None:
        """Registers ``weight`` of ``weight_shape`` and ``bias`` of ``bias_size`` values (``weight_shape[0]``
        unless given: a transposed convolution's weight starts with its input channels), then ``reset_parameters``."""
        self.weight = Parameter(creation.empty(*weight_shape, device=device, dtype=dtype))
        if bias:
            size = weight_shape[0] if bias_size is None else bias_size
            self.bias = Parameter(creation.empty(size, device=device, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default: kaiming_uniform_(a=sqrt(5)) weights, biases uniform on ±1/sqrt(fan_in)."""
        init.default_layer_init_(self.weight, self.bias)
