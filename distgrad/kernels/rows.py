"""Launchers for ``cuda/rows.cu`` (one block per row of the last dim) and the NumPy references of what each
kernel computes: softmax/log-softmax (also scaled and causally masked, in place: the attention softmax),
their backward, LayerNorm/RMSNorm forward and backward, and softmax + cross-entropy forward and backward.

Arrays are C-contiguous and viewed as (rows, cols); statistics are float32 (what the kernels keep).
"""
from __future__ import annotations

import numpy as np

from distgrad import backend
from distgrad.kernels import policy
from distgrad.kernels.sources import KernelFile
from distgrad.kernels.runtime import launch, row_threads, type_name

_TYPES = ("float", "dg_half", "dg_bf16")
_FLAGS = ("false", "true")
FILE = KernelFile("rows.cu", [f"{kernel}<{t}, {flag}>" for kernel in ("softmax_forward", "softmax_backward",
                                                                       "layer_norm_forward", "layer_norm_backward",
                                                                       "layer_norm_param_backward")
                              for t in _TYPES for flag in _FLAGS]
                  + [f"{kernel}<{t}>" for kernel in ("cross_entropy_forward", "cross_entropy_backward") for t in _TYPES])
_INT_MAX = 2**31 - 1
PARAM_CHUNK_ROWS = 256  # rows per block of the weight/bias gradient sums


def _flag(on: bool) -> str:
    return _FLAGS[bool(on)]


def _fits(rows: int, cols: int) -> bool:
    return 0 < rows <= _INT_MAX and 0 < cols <= _INT_MAX


# --- softmax and log-softmax --------------------------------------------------------------------------
def softmax_applies(x, dim: int) -> bool:
    """Softmax along the last dim of a GPU array of a kernel dtype."""
    return (policy.on_kernel_path(x) and x.ndim >= 1 and dim in (-1, x.ndim - 1)
            and _fits(x.size // max(1, x.shape[-1]), x.shape[-1]))


def softmax(x, log: bool = False, scale: float = 1.0, causal_length: int = 0, out=None):
    """``softmax(x * scale, -1)`` (``log``: log_softmax) of a contiguous array; ``causal_length`` L > 0 masks
    column j of row r when j > r % L (the rows are stacked (L, cols) score matrices). ``out`` may be ``x``."""
    xp = backend.array_module(x)
    cols = x.shape[-1]
    rows = x.size // cols
    out = xp.empty_like(x) if out is None else out
    launch(FILE, f"softmax_forward<{type_name(x.dtype)}, {_flag(log)}>", rows, row_threads(cols),
           (x, out, np.int32(rows), np.int32(cols), np.float32(scale), np.int32(causal_length)))
    return out


def softmax_backward(grad, y, log: bool = False):
    """The gradient of softmax (``log``: log_softmax) along the last dim, from its output ``y``."""
    xp = backend.array_module(y)
    grad = xp.ascontiguousarray(grad)
    cols = y.shape[-1]
    rows = y.size // cols
    grad_x = xp.empty_like(y)
    launch(FILE, f"softmax_backward<{type_name(y.dtype)}, {_flag(log)}>", rows, row_threads(cols),
           (grad, y, grad_x, np.int32(rows), np.int32(cols)))
    return grad_x


def reference_softmax(x, log: bool = False, scale: float = 1.0, causal_length: int = 0):
    """What ``softmax`` computes, in float32 NumPy, rounded to ``x``'s dtype."""
    v = x.astype(np.float32) * np.float32(scale)
    if causal_length:
        cols = x.shape[-1]
        rows = np.arange(x.size // cols) % causal_length
        v = v.reshape(-1, cols).copy()
        v[np.arange(cols)[None, :] > rows[:, None]] = -np.inf
        v = v.reshape(x.shape)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        top = v.max(axis=-1, keepdims=True)
        total = np.exp(v - top).sum(axis=-1, keepdims=True)
        result = v - top - np.log(total) if log else np.exp(v - top) / total
    return result.astype(x.dtype)


def reference_softmax_backward(grad, y, log: bool = False):
    g, out = grad.astype(np.float32), y.astype(np.float32)
    if log:
        return (g - np.exp(out) * g.sum(axis=-1, keepdims=True)).astype(y.dtype)
    return (out * (g - (g * out).sum(axis=-1, keepdims=True))).astype(y.dtype)


# --- LayerNorm and RMSNorm over the trailing ``size`` elements ---------------------------------------------
def layer_norm_applies(x, weight, bias, size: int) -> bool:
    """Statistics over the last ``size`` elements of a GPU array; ``weight``/``bias`` (arrays or None) of
    ``size`` elements and ``x``'s dtype."""
    return (policy.on_kernel_path(x, weight, bias) and size > 0 and x.size % size == 0
            and _fits(x.size // size, size)
            and all(t is None or t.dtype == x.dtype and t.size == size for t in (weight, bias)))


def layer_norm(x, weight, bias, size: int, eps: float, center: bool = True):
    """``(y, mean, rstd)``: y like x; mean and rstd (rows,) float32 (mean 0 without ``center``)."""
    xp = backend.array_module(x)
    rows = x.size // size
    y = xp.empty_like(x)
    mean, rstd = xp.empty(rows, np.float32), xp.empty(rows, np.float32)
    launch(FILE, f"layer_norm_forward<{type_name(x.dtype)}, {_flag(center)}>", rows, row_threads(size),
           (x, weight, bias, y, mean, rstd, np.int32(rows), np.int32(size), np.float32(eps)))
    return y, mean, rstd


def layer_norm_backward(grad, x, weight, mean, rstd, size: int, center: bool = True, needs=(True, True, True)):
    """``(grad_x, grad_weight, grad_bias)`` (None where ``needs`` says so or there is no weight/bias);
    the parameter gradients are float32 column sums over chunks of rows, summed and rounded here."""
    xp = backend.array_module(x)
    grad = xp.ascontiguousarray(grad)
    rows = x.size // size
    grad_x = grad_w = grad_b = None
    if needs[0]:
        grad_x = xp.empty_like(x)
        launch(FILE, f"layer_norm_backward<{type_name(x.dtype)}, {_flag(center)}>", rows, row_threads(size),
               (grad, x, weight, mean, rstd, grad_x, np.int32(rows), np.int32(size)))
    if needs[1] or needs[2]:
        chunks = -(-rows // PARAM_CHUNK_ROWS)
        partial_w, partial_b = xp.empty((chunks, size), np.float32), xp.empty((chunks, size), np.float32)
        launch(FILE, f"layer_norm_param_backward<{type_name(x.dtype)}, {_flag(center)}>", (-(-size // 32), chunks),
               (32, 8), (grad, x, mean, rstd, partial_w, partial_b, np.int32(rows), np.int32(size),
                         np.int32(PARAM_CHUNK_ROWS)))
        grad_w = partial_w.sum(axis=0).astype(x.dtype) if needs[1] else None
        grad_b = partial_b.sum(axis=0).astype(x.dtype) if needs[2] else None
    return grad_x, grad_w, grad_b


def reference_layer_norm(x, weight, bias, size: int, eps: float, center: bool = True):
    rows = x.astype(np.float32).reshape(-1, size)
    mean = rows.mean(axis=1) if center else np.zeros(len(rows), np.float32)
    centered = rows - mean[:, None]
    rstd = 1 / np.sqrt((centered * centered).mean(axis=1) + np.float32(eps))
    y = centered * rstd[:, None]
    if weight is not None:
        y = y * weight.astype(np.float32).reshape(-1)
    if bias is not None:
        y = y + bias.astype(np.float32).reshape(-1)
    return y.reshape(x.shape).astype(x.dtype), mean.astype(np.float32), rstd.astype(np.float32)


def reference_layer_norm_backward(grad, x, weight, mean, rstd, size: int, center: bool = True):
    g = grad.astype(np.float32).reshape(-1, size)
    xhat = (x.astype(np.float32).reshape(-1, size) - mean[:, None]) * rstd[:, None]
    gw = g * (weight.astype(np.float32).reshape(-1) if weight is not None else 1)
    mean_g = gw.mean(axis=1, keepdims=True) if center else 0
    grad_x = rstd[:, None] * (gw - mean_g - xhat * (gw * xhat).mean(axis=1, keepdims=True))
    return (grad_x.reshape(x.shape).astype(x.dtype), (g * xhat).sum(axis=0).astype(x.dtype),
            g.sum(axis=0).astype(x.dtype))


# --- softmax + cross-entropy over (N, C) logits with class-index targets -----------------------------------
def cross_entropy_applies(x, target) -> bool:
    """(N, C) logits on the GPU in a kernel dtype, with (N,) integer class targets."""
    return (policy.on_kernel_path(x) and x.ndim == 2 and target.ndim == 1 and target.dtype.kind in "iu"
            and target.shape[0] == x.shape[0] and _fits(x.shape[0], x.shape[1]))


def cross_entropy(x, target, ignore_index: int):
    """``(loss, lse)``, both (N,) float32: ``lse = logsumexp(x, 1)``, ``loss = lse - x[n, target[n]]``,
    0 where ``target`` is ``ignore_index`` and nan where it is out of range."""
    xp = backend.array_module(x)
    rows, classes = x.shape
    loss, lse = xp.empty(rows, np.float32), xp.empty(rows, np.float32)
    launch(FILE, f"cross_entropy_forward<{type_name(x.dtype)}>", rows, row_threads(classes),
           (x, xp.ascontiguousarray(target, dtype=np.int64), loss, lse, np.int32(rows), np.int32(classes),
            np.int64(ignore_index)))
    return loss, lse


def cross_entropy_backward(x, target, lse, scale, ignore_index: int):
    """``(softmax(x) - onehot(target)) * scale`` per row (0 where ignored); ``scale`` is a float32 array of
    one value (for every row) or of N."""
    xp = backend.array_module(x)
    rows, classes = x.shape
    scale = xp.ascontiguousarray(scale, dtype=np.float32).reshape(-1)
    grad_x = xp.empty_like(x)
    launch(FILE, f"cross_entropy_backward<{type_name(x.dtype)}>", rows, row_threads(classes),
           (x, xp.ascontiguousarray(target, dtype=np.int64), lse, scale, np.int32(0 if scale.size == 1 else 1),
            grad_x, np.int32(rows), np.int32(classes), np.int64(ignore_index)))
    return grad_x


def reference_cross_entropy(x, target, ignore_index: int):
    v = x.astype(np.float32)
    top = v.max(axis=1)
    lse = top + np.log(np.exp(v - top[:, None]).sum(axis=1))
    kept = target != ignore_index
    inside = (target >= 0) & (target < x.shape[1])
    picked = v[np.arange(len(v)), np.where(inside, target, 0)]
    loss = np.where(kept, np.where(inside, lse - picked, np.nan), 0).astype(np.float32)
    return loss, lse.astype(np.float32)


def reference_cross_entropy_backward(x, target, lse, scale, ignore_index: int):
    p = np.exp(x.astype(np.float32) - lse[:, None])
    p[np.arange(len(p)), np.clip(target, 0, x.shape[1] - 1)] -= (target >= 0) & (target < x.shape[1])
    factor = np.broadcast_to(np.asarray(scale, np.float32).reshape(-1), (len(p),)) * (target != ignore_index)
    return (p * factor[:, None]).astype(x.dtype)
