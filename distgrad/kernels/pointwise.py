"""Launchers for ``cuda/pointwise.cu`` and the NumPy references of what each kernel computes: bias +
activation (identity, ReLU, GELU with erf or tanh) forward and backward, and dropout (+ residual add)
forward and backward with a counter-based mask.

The dropout mask of element i is a hash of ``(seed, offset + i)`` (SplitMix64's finaliser): nothing is
stored between forward and backward, and a CUDA graph replays the step with a new ``offset`` by reading
its base from a device counter (``offset_base``) that the graph advances after each replay.
"""
from __future__ import annotations

import numpy as np

from distgrad import backend
from distgrad.kernels import policy
from distgrad.kernels.sources import KernelFile
from distgrad.kernels.runtime import blocks_for, launch, type_name

ACTIVATIONS = {"identity": 0, "relu": 1, "gelu": 2, "gelu_tanh": 3}
_TYPES = ("float", "dg_half", "dg_bf16")
FILE = KernelFile("pointwise.cu", [f"{kernel}<{t}, {a}>" for kernel in ("bias_act_forward", "bias_act_backward")
                                   for t in _TYPES for a in ACTIVATIONS.values()]
                  + [f"{kernel}<{t}>" for kernel in ("dropout_forward", "dropout_backward") for t in _TYPES]
                  + ["advance_counter"])
THREADS = 256


def applies(*arrays) -> bool:
    """Same-shaped, same-dtype GPU arrays (None skipped) of a kernel dtype, not empty."""
    present = [a for a in arrays if a is not None]
    return (policy.on_kernel_path(*present) and present[0].size > 0
            and all(a.shape == present[0].shape and a.dtype == present[0].dtype for a in present))


def bias_applies(x, bias) -> bool:
    """``bias`` (or None) broadcasts along the last dim of ``x`` and has its dtype."""
    return (policy.on_kernel_path(x, bias) and x.size > 0 and x.ndim >= 1
            and (bias is None or bias.dtype == x.dtype and bias.shape in ((x.shape[-1],), (1,) * (x.ndim - 1) + (x.shape[-1],))))


def _features(x, bias) -> int:
    return x.shape[-1] if bias is not None else 1


# --- bias + activation -----------------------------------------------------------------------------------
def bias_act(x, bias, activation: str):
    """``activation(x + bias)`` (bias along the last dim, or None) in one pass, in x's dtype."""
    xp = backend.array_module(x)
    out = xp.empty_like(x)
    launch(FILE, f"bias_act_forward<{type_name(x.dtype)}, {ACTIVATIONS[activation]}>", blocks_for(x.size, THREADS),
           THREADS, (x, bias, out, np.int64(x.size), np.int32(_features(x, bias))))
    return out


def bias_act_backward(grad, x, bias, activation: str):
    """``grad * activation'(x + bias)``: the gradient of x (the bias gradient is its sum over leading dims)."""
    xp = backend.array_module(x)
    grad_x = xp.empty_like(x)
    launch(FILE, f"bias_act_backward<{type_name(x.dtype)}, {ACTIVATIONS[activation]}>", blocks_for(x.size, THREADS),
           THREADS, (xp.ascontiguousarray(grad), x, bias, grad_x, np.int64(x.size), np.int32(_features(x, bias))))
    return grad_x


_SQRT_HALF = np.float32(np.sqrt(0.5))
_SQRT_2_OVER_PI = np.float32(np.sqrt(2 / np.pi))


def _erf(v):
    from math import erf
    return np.vectorize(erf, otypes=[np.float64])(v).astype(np.float32)


def reference_bias_act(x, bias, activation: str):
    v = x.astype(np.float32) + (0 if bias is None else bias.astype(np.float32).reshape(-1))
    if activation == "relu":
        v = np.maximum(v, 0)
    elif activation == "gelu":
        v = 0.5 * v * (1 + _erf(v * _SQRT_HALF))
    elif activation == "gelu_tanh":
        v = 0.5 * v * (1 + np.tanh(_SQRT_2_OVER_PI * (v + np.float32(0.044715) * v ** 3)))
    return v.astype(x.dtype)


def reference_bias_act_backward(grad, x, bias, activation: str):
    v = x.astype(np.float32) + (0 if bias is None else bias.astype(np.float32).reshape(-1))
    if activation == "relu":
        d = (v > 0).astype(np.float32)
    elif activation == "gelu":
        d = 0.5 * (1 + _erf(v * _SQRT_HALF)) + v * np.float32(1 / np.sqrt(2 * np.pi)) * np.exp(-0.5 * v * v)
    elif activation == "gelu_tanh":
        t = np.tanh(_SQRT_2_OVER_PI * (v + np.float32(0.044715) * v ** 3))
        d = 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * _SQRT_2_OVER_PI * (1 + 3 * np.float32(0.044715) * v * v)
    else:
        d = np.ones_like(v)
    return (grad.astype(np.float32) * d).astype(x.dtype)


# --- dropout (+ residual) --------------------------------------------------------------------------------
def dropout(x, residual, p: float, seed: int, offset: int, offset_base=None):
    """``where(keep, x / (1 - p), 0) + residual`` (``residual`` may be None); ``keep`` as ``reference_keep``."""
    xp = backend.array_module(x)
    out = xp.empty_like(x)
    launch(FILE, f"dropout_forward<{type_name(x.dtype)}>", blocks_for(x.size, THREADS), THREADS,
           (x, residual, out, np.int64(x.size), np.float32(p), np.float32(_scale(p)), np.uint64(seed),
            np.uint64(offset), offset_base))
    return out


def dropout_backward(grad, p: float, seed: int, offset: int, offset_base=None):
    xp = backend.array_module(grad)
    grad = xp.ascontiguousarray(grad)
    grad_x = xp.empty_like(grad)
    launch(FILE, f"dropout_backward<{type_name(grad.dtype)}>", blocks_for(grad.size, THREADS), THREADS,
           (grad, grad_x, np.int64(grad.size), np.float32(p), np.float32(_scale(p)), np.uint64(seed),
            np.uint64(offset), offset_base))
    return grad_x


def advance_counter(counter, delta: int) -> None:
    """``counter[0] += delta`` on the device (the end of a captured step)."""
    launch(FILE, "advance_counter", 1, 32, (counter, np.uint64(delta)))


def _scale(p: float) -> float:
    return 1 / (1 - p) if p < 1 else 0.0


def _mix64(z):
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xbf58476d1ce4e5b9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94d049bb133111eb)
    return z ^ (z >> np.uint64(31))


def reference_keep(n: int, p: float, seed: int, offset: int):
    """The kernels' mask of n elements: element i kept when the top 24 bits of
    ``mix64(seed + 0x9e3779b97f4a7c15 * (offset + i + 1))``, over 2**24, are at least p (float32)."""
    counter = np.uint64(offset) + np.arange(n, dtype=np.uint64) + np.uint64(1)
    with np.errstate(over="ignore"):
        h = _mix64(np.uint64(seed) + np.uint64(0x9e3779b97f4a7c15) * counter)
    return (h >> np.uint64(40)).astype(np.float32) * np.float32(2.0 ** -24) >= np.float32(p)


def reference_dropout(x, residual, p: float, seed: int, offset: int):
    keep = reference_keep(x.size, p, seed, offset).reshape(x.shape)
    v = np.where(keep, x.astype(np.float32) * np.float32(_scale(p)), np.float32(0))
    if residual is not None:
        v = v + residual.astype(np.float32)
    return v.astype(x.dtype)
