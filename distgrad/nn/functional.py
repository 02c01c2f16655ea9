"""The functional form of the nn ops, with PyTorch's names and signatures: ``import distgrad.nn.functional as F``.

Everything here is an op of ``distgrad.ops``; the wrappers below add PyTorch's ``inplace=`` argument to
activations, and a few compositions (``bilinear``, ``adaptive_avg_pool1d``, the deprecated ``upsample*``). Differences from PyTorch: the deprecated ``size_average``/``reduce`` loss
arguments do not exist (the options after them are keyword-only), and ``embedding`` has no
``max_norm``/``scale_grad_by_freq``/``sparse``.
"""
from __future__ import annotations

import warnings

from distgrad import ops
from distgrad.autograd.grad_mode import no_grad
from distgrad.autograd.node import increment_version
from distgrad.ops import (  # noqa: F401
    batch_norm,
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cosine_embedding_loss,
    cosine_similarity,
    cross_entropy,
    dropout,
    dropout1d,
    dropout2d,
    dropout3d,
    embedding,
    gaussian_nll_loss,
    gelu,
    glu,
    group_norm,
    hardshrink,
    hinge_embedding_loss,
    huber_loss,
    instance_norm,
    interpolate,
    kl_div,
    l1_loss,
    layer_norm,
    linear,
    log_softmax,
    logsigmoid,
    margin_ranking_loss,
    mse_loss,
    multilabel_soft_margin_loss,
    nll_loss,
    normalize,
    one_hot,
    pad,
    pairwise_distance,
    pixel_shuffle,
    pixel_unshuffle,
    poisson_nll_loss,
    prelu,
    rms_norm,
    scaled_dot_product_attention,
    sigmoid,
    smooth_l1_loss,
    soft_margin_loss,
    softmax,
    softmin,
    softplus,
    softshrink,
    softsign,
    tanh,
    tanhshrink,
    triplet_margin_loss,
)
from distgrad.nn.multi_head_attention import multi_head_attention_forward  # noqa: F401
from distgrad.ops.adaptive_pooling import adaptive_max_pool1d, adaptive_max_pool2d  # noqa: F401
from distgrad.ops.autocasting import autocast_op
from distgrad.ops.conv import conv1d, conv2d, conv_transpose1d, conv_transpose2d  # noqa: F401
from distgrad.ops.inplace import check_writable, needs_recording, record_inplace
from distgrad.ops.pooling import adaptive_avg_pool2d, avg_pool1d, avg_pool2d, max_pool1d, max_pool2d  # noqa: F401
from distgrad.tensor import Tensor

__all__ = [
    "relu", "leaky_relu", "gelu", "silu", "sigmoid", "tanh", "softplus", "softmax", "log_softmax", "softmin",
    "elu", "celu", "selu", "hardtanh", "relu6", "hardsigmoid", "hardswish", "mish", "threshold", "logsigmoid",
    "hardshrink", "softshrink", "softsign", "tanhshrink", "prelu", "glu",
    "linear", "bilinear", "cross_entropy", "nll_loss", "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss",
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "kl_div", "poisson_nll_loss", "gaussian_nll_loss",
    "cosine_embedding_loss", "margin_ranking_loss", "hinge_embedding_loss", "soft_margin_loss",
    "multilabel_soft_margin_loss", "triplet_margin_loss",
    "layer_norm", "batch_norm", "group_norm", "instance_norm", "rms_norm",
    "normalize", "cosine_similarity", "pairwise_distance",
    "dropout", "dropout1d", "dropout2d", "dropout3d", "embedding", "pad", "one_hot",
    "conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d", "max_pool1d", "max_pool2d", "avg_pool1d",
    "avg_pool2d", "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_max_pool1d", "adaptive_max_pool2d",
    "interpolate", "upsample", "upsample_nearest", "upsample_bilinear", "pixel_shuffle", "pixel_unshuffle",
    "scaled_dot_product_attention", "multi_head_attention_forward",
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


def _maybe_in_place(input: Tensor, inplace: bool, op: str, compute) -> Tensor:
    return _in_place(input, op, compute) if inplace else compute(input)


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    return _maybe_in_place(input, inplace, "elu_", lambda t: ops.elu(t, alpha))


def celu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    return _maybe_in_place(input, inplace, "celu_", lambda t: ops.celu(t, alpha))


def selu(input: Tensor, inplace: bool = False) -> Tensor:
    return _maybe_in_place(input, inplace, "selu_", ops.selu)


def hardtanh(input: Tensor, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> Tensor:
    return _maybe_in_place(input, inplace, "hardtanh_", lambda t: ops.hardtanh(t, min_val, max_val))


def relu6(input: Tensor, inplace: bool = False) -> Tensor:
    return _maybe_in_place(input, inplace, "relu6_", ops.relu6)


def hardsigmoid(input: Tensor, inplace: bool = False) -> Tensor:
    return _maybe_in_place(input, inplace, "hardsigmoid_", ops.hardsigmoid)


def hardswish(input: Tensor, inplace: bool = False) -> Tensor:
    return _maybe_in_place(input, inplace, "hardswish_", ops.hardswish)


def mish(input: Tensor, inplace: bool = False) -> Tensor:
    return _maybe_in_place(input, inplace, "mish_", ops.mish)


def threshold(input: Tensor, threshold: float, value: float, inplace: bool = False) -> Tensor:
    return _maybe_in_place(input, inplace, "threshold_", lambda t: ops.threshold(t, threshold, value))


@autocast_op()
def bilinear(input1: Tensor, input2: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``y_k = x1 @ weight[k] @ x2 + bias_k`` for ``weight`` (out, in1, in2), over any leading dims."""
    if weight.ndim != 3 or input1.shape[-1] != weight.shape[1] or input2.shape[-1] != weight.shape[2]:
        raise RuntimeError(f"bilinear: expected weight (out, {input1.shape[-1]}, {input2.shape[-1]}), got weight of "
                           f"size {list(weight.shape)} for inputs {list(input1.shape)} and {list(input2.shape)}")
    out_features, in1, in2 = weight.shape
    # x1 @ W as one GEMM (in1 -> out*in2), then the dot product with x2 over in2
    mixed = input1.matmul(weight.permute(1, 0, 2).reshape(in1, out_features * in2))
    out = (mixed.reshape(*mixed.shape[:-1], out_features, in2) * input2.unsqueeze(-2)).sum(-1)
    return out + bias if bias is not None else out


def adaptive_avg_pool1d(input: Tensor, output_size) -> Tensor:
    """``adaptive_avg_pool2d`` over the last dimension of (N, C, L) or (C, L) input."""
    size = output_size[0] if isinstance(output_size, (tuple, list)) else output_size
    return adaptive_avg_pool2d(input.unsqueeze(-2), (1, size)).squeeze(-2)


def upsample(input: Tensor, size=None, scale_factor=None, mode: str = "nearest", align_corners=None) -> Tensor:
    """Deprecated in PyTorch: ``interpolate``."""
    warnings.warn("`nn.functional.upsample` is deprecated. Use `nn.functional.interpolate` instead.", stacklevel=2)
    return interpolate(input, size, scale_factor, mode, align_corners)


def upsample_nearest(input: Tensor, size=None, scale_factor=None) -> Tensor:
    """Deprecated in PyTorch: ``interpolate(..., mode='nearest')``."""
    warnings.warn("`nn.functional.upsample_nearest` is deprecated. Use `nn.functional.interpolate` instead.",
                  stacklevel=2)
    return interpolate(input, size, scale_factor, mode="nearest")


def upsample_bilinear(input: Tensor, size=None, scale_factor=None) -> Tensor:
    """Deprecated in PyTorch: ``interpolate(..., mode='bilinear', align_corners=True)``."""
    warnings.warn("`nn.functional.upsample_bilinear` is deprecated. Use `nn.functional.interpolate` instead.",
                  stacklevel=2)
    return interpolate(input, size, scale_factor, mode="bilinear", align_corners=True)
