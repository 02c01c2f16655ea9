"""The functional form of the nn ops, with PyTorch's names and signatures: ``import distgrad.nn.functional as F``.

Everything here is an op of ``distgrad.ops``; the few wrappers below only add PyTorch's ``inplace=``
argument to activations. Differences from PyTorch: the deprecated ``size_average``/``reduce`` loss
arguments do not exist (the options after them are keyword-only), and ``embedding`` has no
``max_norm``/``scale_grad_by_freq``/``sparse``.
"""
from __future__ import annotations

from distgrad import ops
from distgrad.autograd.grad_mode import no_grad
from distgrad.autograd.node import increment_version
from distgrad.ops import (  # noqa: F401
    batch_norm,
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    dropout,
    embedding,
    gelu,
    group_norm,
    l1_loss,
    layer_norm,
    linear,
    log_softmax,
    mse_loss,
    nll_loss,
    one_hot,
    pad,
    rms_norm,
    scaled_dot_product_attention,
    sigmoid,
    smooth_l1_loss,
    softmax,
    softmin,
    softplus,
    tanh,
)
from distgrad.ops.conv import conv2d, conv_transpose2d  # noqa: F401
from distgrad.nn.multi_head_attention import multi_head_attention_forward  # noqa: F401
from distgrad.ops.inplace import check_writable, needs_recording, record_inplace
from distgrad.ops.pooling import adaptive_avg_pool2d, avg_pool1d, avg_pool2d, max_pool1d, max_pool2d  # noqa: F401
from distgrad.tensor import Tensor

__all__ = [
    "relu", "leaky_relu", "gelu", "silu", "sigmoid", "tanh", "softplus", "softmax", "log_softmax", "softmin",
    "linear", "cross_entropy", "nll_loss", "mse_loss", "l1_loss", "smooth_l1_loss", "binary_cross_entropy",
    "binary_cross_entropy_with_logits", "layer_norm", "batch_norm", "group_norm", "dropout", "embedding", "pad",
    "one_hot", "conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "max_pool1d",
    "avg_pool1d", "rms_norm", "scaled_dot_product_attention", "multi_head_attention_forward",
]


def _in_place(input: Tensor, op: str, compute) -> Tensor:
    """Writes ``compute(input)`` into ``input`` and returns it (recorded for autograd when needed)."""
    if needs_recording(input):
        return record_inplace(input, op, compute)
    check_writable(input, op)
    with no_grad():
        input._xp.copyto(input.array, compute(input).array)
    increment_version(input)
    return input


def relu(input: Tensor, inplace: bool = False) -> Tensor:
    return input.relu_() if inplace else ops.relu(input)


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    if inplace:
        return _in_place(input, "leaky_relu_", lambda t: ops.leaky_relu(t, negative_slope))
    return ops.leaky_relu(input, negative_slope)


def silu(input: Tensor, inplace: bool = False) -> Tensor:
    return _in_place(input, "silu_", ops.silu) if inplace else ops.silu(input)
