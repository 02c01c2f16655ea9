"""The layers' ops: products (``linear matmul bmm dot addmm einsum``), convolutions, pooling, the
normalisations, ``embedding``, dropout and scaled dot-product attention.

Pooling pads explicitly (with the lowest value for max, zeros for average) to the padded size distgrad
computes, ``ceil_mode`` windows included, and then pools without padding; average pooling divides the
window sums by distgrad's own divisors, so every ``count_include_pad``/``divisor_override`` case matches.
"""
from __future__ import annotations

import math
import string

import numpy as np

from distgrad.dtypes import LOW_PRECISION, float32
from distgrad.ops.attention import ScaledDotProductAttention
from distgrad.ops.blas import AddScaled
from distgrad.ops.conv import Conv2d, ConvTranspose2d
from distgrad.ops.dropout import Dropout
from distgrad.ops.einsum import Einsum
from distgrad.ops.embedding import Embedding
from distgrad.ops.linalg import Dot, Linear, MatMul
from distgrad.ops.normalization import Normalize
from distgrad.ops.pooling import AvgPool2d, MaxPool2d
from distgrad.onnx.registry import translates
from distgrad.onnx.translations.reduction import reduce


# --- products ---------------------------------------------------------------------------------------
@translates(Linear)
def _linear(e):
    x, weight, bias = e.args
    if x.ndim == 2:
        inputs = [e.input(0), e.input(1)] + ([e.input(2)] if bias is not None else [])
        return e.add("Gemm", inputs, transB=1)
    out = e.add("MatMul", [e.input(0), e.add("Transpose", [e.input(1)], perm=[1, 0])])
    return e.add("Add", [out, e.input(2)]) if bias is not None else out


@translates(MatMul, Dot)
def _matmul(e):
    return e.add("MatMul", [e.input(0), e.input(1)])


@translates(AddScaled)
def _add_scaled(e):
    _, _, beta, alpha = e.args
    dtype = e.out_dtype()
    product = e.input(1, dtype)
    if alpha != 1:
        product = e.add("Mul", [product, e.scalar(alpha, dtype)])
    if beta == 0:
        return e.add("Identity", [product]) if alpha == 1 else product
    added = e.input(0, dtype) if beta == 1 else e.add("Mul", [e.input(0, dtype), e.scalar(beta, dtype)])
    return e.add("Add", [product, added])


@translates(Einsum)
def _einsum(e):
    terms, output, *operands = e.args
    letters = dict(zip(dict.fromkeys(c for term in [*terms, output] for c in term), string.ascii_lowercase))
    equation = ",".join("".join(letters[c] for c in t) for t in terms) + "->" + "".join(letters[c] for c in output)
    return e.add("Einsum", [e.name(t) for t in operands], equation=equation)


# --- convolutions and pooling -----------------------------------------------------------------------
@translates(Conv2d)
def _conv(e):
    x, w, b, geo, _ = e.args
    top, bottom, left, right = geo.padding
    inputs = [e.input(0), e.input(1)] + ([e.input(2)] if b is not None else [])
    return e.add("Conv", inputs, kernel_shape=list(geo.kernel), strides=list(geo.stride),
                 pads=[top, left, bottom, right], dilations=list(geo.dilation), group=geo.groups)


@translates(ConvTranspose2d, varying=(4,))
def _conv_transpose(e):
    y, w, b, geo, x_shape = e.args
    top, bottom, left, right = geo.padding
    extra = []
    for size, out, k, s, d, pads in zip(y.shape[2:], x_shape[2:], geo.kernel, geo.stride, geo.dilation,
                                         ((top, bottom), (left, right))):
        extra.append(out - ((size - 1) * s - sum(pads) + d * (k - 1) + 1))
    inputs = [e.input(0), e.input(1)] + ([e.input(2)] if b is not None else [])
    return e.add("ConvTranspose", inputs, kernel_shape=list(geo.kernel), strides=list(geo.stride),
                 pads=[top, left, bottom, right], dilations=list(geo.dilation), group=geo.groups,
                 output_padding=extra)


def _padded(e, name: str, geo, fill) -> str:
    """``name`` (N, C, H, W) padded on all sides as distgrad pads before pooling."""
    (ph, pw), (h, w) = geo.padding, geo.in_hw
    ph_total, pw_total = geo.padded_hw()
    pads = [0, 0, ph, pw, 0, 0, ph_total - h - ph, pw_total - w - pw]
    if not any(pads):
        return name
    return e.add("Pad", [name, e.ints(pads), e.scalar(fill, e.out_dtype())], mode="constant")


@translates(MaxPool2d)
def _max_pool(e):
    x, geo, return_indices = e.args
    if return_indices:
        e.unsupported("max pooling with return_indices=True")
    dtype = np.dtype(e.out_dtype())
    lowest = -np.inf if dtype.kind == "f" else np.iinfo(dtype).min
    padded = _padded(e, e.input(0), geo, lowest)
    return e.add("MaxPool", [padded], kernel_shape=list(geo.kernel), strides=list(geo.stride),
                 dilations=list(geo.dilation))


@translates(AvgPool2d)
def _avg_pool(e):
    x, geo, divisor = e.args
    dtype = e.out_dtype()
    padded = _padded(e, e.input(0), geo, 0)
    mean = e.add("AveragePool", [padded], kernel_shape=list(geo.kernel), strides=list(geo.stride))
    window = math.prod(geo.kernel)
    divisor = np.asarray(divisor)
    if divisor.ndim == 3:  # (Ho, Wo, 1): per output position
        divisor = divisor[..., 0]
    if np.all(divisor == window):
        return mean
    total = e.add("Mul", [mean, e.scalar(window, dtype)])
    return e.add("Div", [total, e.const(divisor.astype(dtype), "pool_divisor")])


# --- normalisation, embedding, dropout ---------------------------------------------------------------
def _normalized_axes(e, x, stats_shape) -> list:
    """The axes the statistics are taken over: size 1 in the statistics in both traces, and not size 1
    in the input in both (a size-1 axis needs no reducing; a batch of 1 is no normalised axis)."""
    stats2, x2 = e.second.args[3], e.second.args[0].shape
    return [d for d in range(x.ndim)
            if stats_shape[d] == 1 and stats2[d] == 1 and (x.shape[d], x2[d]) != (1, 1)]


@translates(Normalize, varying=(3,))
def _normalize(e):
    x, weight, bias, stats_shape, eps, _, *rest = e.args + (None,) * (7 - len(e.args))
    center = e.kwargs.get("center", rest[0] if rest and rest[0] is not None else True)
    compute = float32 if x.dtype in LOW_PRECISION else x.dtype
    name = e.input(0, compute)
    axes = _normalized_axes(e, x, stats_shape)
    trailing = axes == list(range(x.ndim - len(axes), x.ndim)) and axes
    affine_shape = tuple(x.shape[x.ndim - len(axes):]) if trailing else None
    if (center and trailing and all(t is None or tuple(t.shape) == affine_shape for t in (weight, bias))
            and all(isinstance(d, int) for d in e.dims(x)[x.ndim - len(axes):])):
        scale = e.input(1, compute) if weight is not None else e.const(np.ones(affine_shape, compute), "ones")
        inputs = [name, scale] + ([e.input(2, compute)] if bias is not None else [])
        out = e.add("LayerNormalization", inputs, axis=-len(axes), epsilon=float(eps))
    else:
        if center:
            name = e.add("Sub", [name, reduce(e, "ReduceMean", name, axes, True)])
        var = reduce(e, "ReduceMean", e.add("Mul", [name, name]), axes, True)
        rstd = e.add("Reciprocal", [e.add("Sqrt", [e.add("Add", [var, e.scalar(eps, compute)])])])
        out = e.add("Mul", [name, rstd])
        if weight is not None:
            out = e.add("Mul", [out, e.input(1, compute)])
        if bias is not None:
            out = e.add("Add", [out, e.input(2, compute)])
    return out if compute == e.out_dtype() else e.cast(out, e.out_dtype())


@translates(Embedding)
def _embedding(e):
    return e.add("Gather", [e.input(0), e.input(1)], axis=0)


@translates(Dropout, varying=(1,))
def _dropout(e):
    # Export is for inference: dropout that ran in evaluation mode (an explicit training=True) is dropped
    return e.add("Identity", [e.input(0)])


# --- attention ------------------------------------------------------------------------------------------
@translates(ScaledDotProductAttention)
def _attention(e):
    q, k, v, mask, causal, scale, _, need_weights = e.args
    dtype = e.out_dtype()
    perm = list(range(k.ndim - 2)) + [k.ndim - 1, k.ndim - 2]
    scores = e.add("MatMul", [e.input(0), e.add("Transpose", [e.input(1)], perm=perm)])
    scores = e.add("Mul", [scores, e.scalar(scale, dtype)])
    guard = False
    if causal:
        length, source = q.shape[-2], k.shape[-2]
        if not (isinstance(e.dims(q)[-2], int) and isinstance(e.dims(k)[-2], int)):
            e.unsupported("is_causal=True with a dynamic sequence length")
        allowed = np.tril(np.ones((length, source), bool))
        scores = e.add("Where", [e.const(allowed, "causal_mask"), scores, e.scalar(-np.inf, dtype)])
        guard = length > source
    elif mask is not None and mask.dtype == np.bool_:
        scores = e.add("Where", [e.input(3), scores, e.scalar(-np.inf, dtype)])
        guard = True
    elif mask is not None:
        scores = e.add("Add", [scores, e.input(3, dtype)])
    probs = e.add("Softmax", [scores], axis=-1)
    if guard:  # a query that may attend nothing: distgrad gives zeros where Softmax gives NaN
        probs = e.add("Where", [e.add("IsNaN", [probs]), e.scalar(0, dtype), probs])
    out = e.add("MatMul", [probs, e.input(2)])
    return (out, probs) if need_weights else out
