"""Lengths and angles between vectors: ``cdist`` (every pair of rows of two batches), and the compositions
``normalize``, ``cosine_similarity``, ``pairwise_distance`` (see their section below).

``cdist``: the p-norm distances between the rows of two batches of row vectors.

``x1`` (B..., P, M) and ``x2`` (B..., R, M) give (B..., P, R) with ``out[..., i, j] = ||x1[i] - x2[j]||_p``;
the batch dims broadcast. Shapes of the work: for p = 2 by matrix products (``|a|^2 + |b|^2 - 2 a.b``,
clamped at 0) when PyTorch's ``compute_mode`` says so (by default when P or R exceeds 25), otherwise
from the (B, P, R, M) tensor of differences.

Backward, with ``d = x1[i] - x2[j]`` and ``D`` the distance, as PyTorch (and 0 wherever ``D == 0``):

* p = 2: ``g * d / D``, formed with matrix products (no (B, P, R, M) tensor);
* p = 1: ``g * sign(d)``; p = inf: ``g * sign(d)`` on the coordinates where ``|d| == D``; p = 0: zero;
* other p: ``g * sign(d) * |d|^(p-1) / D^(p-1)`` (for p < 1 also 0 where ``d == 0``).

These are written with Tensor ops, so double backward works away from zero distances.
"""
from __future__ import annotations

import math

import numpy as np

from distgrad.autograd.function import Function
from distgrad.dtypes import compute_dtype, is_floating_point
from distgrad.ops.autocasting import autocast_op
from distgrad.ops.broadcast import broadcast_to
from distgrad.ops.dims import wrap_dim
from distgrad.ops.elementwise import sign
from distgrad.ops.reduction import constant_like
from distgrad.tensor import Tensor

__all__ = ["cdist", "normalize", "cosine_similarity", "pairwise_distance"]

_MODES = ("use_mm_for_euclid_dist_if_necessary", "use_mm_for_euclid_dist", "donot_use_mm_for_euclid_dist")


def _by_products(xp, a, b):
    """Euclidean distances from matrix products: fast, a little less exact for close rows."""
    squared = (a * a).sum(-1)[..., :, None] + (b * b).sum(-1)[..., None, :] - 2 * (a @ b.swapaxes(-1, -2))
    return xp.sqrt(xp.maximum(squared, 0))


def _by_differences(xp, a, b, p: float):
    diff = xp.abs(a[..., :, None, :] - b[..., None, :, :])
    if p == 0:
        return (diff != 0).sum(-1).astype(a.dtype)
    if p == math.inf:
        return diff.max(-1) if diff.shape[-1] else diff.sum(-1)
    if p == 1:
        return diff.sum(-1)
    if p == 2:
        return xp.sqrt((diff * diff).sum(-1))
    return (diff ** p).sum(-1) ** (1 / p)


class CDist(Function):
    @staticmethod
    def forward(ctx, x1, x2, p, use_products):
        ctx.p = p
        xp = x1._xp
        compute = compute_dtype(x1.dtype)  # float16/bfloat16 sum in float32
        a, b = x1.array.astype(compute, copy=False), x2.array.astype(compute, copy=False)
        out = _by_products(xp, a, b) if p == 2 and use_products else _by_differences(xp, a, b, p)
        out = Tensor(out.astype(x1.dtype, copy=False))
        ctx.save_for_backward(x1, x2, out)
        return out

    @staticmethod
    def backward(ctx, grad):
        x1, x2, dist = ctx.saved_tensors
        p = ctx.p
        if p == 0:
            return x1 * 0, x2 * 0, None, None
        zero = dist.array == 0
        nonzero, safe = constant_like(dist, ~zero), constant_like(dist, zero)
        if p == 2:  # sum_j r_ij (x1_i - x2_j) = x1_i * sum_j r_ij - (r @ x2)_i, with r = g / D
            ratio = grad * nonzero / (dist + safe)
            g1 = x1 * ratio.sum(-1, keepdim=True) - ratio @ x2
            g2 = x2 * ratio.sum(-2).unsqueeze(-1) - ratio.mT @ x1
            return g1, g2, None, None
        diff = x1.unsqueeze(-2) - x2.unsqueeze(-3)  # (B, P, R, M)
        direction = sign(diff)
        if p == 1:
            term = direction
        elif p == math.inf:
            term = direction * constant_like(diff, abs(diff.array) == dist.array[..., None])
        else:
            flat = constant_like(diff, diff.array == 0)  # |d|^(p-1) is 1 there, times sign 0: no inf * 0
            term = direction * (diff.abs() + flat) ** (p - 1)
            grad = grad * nonzero / (dist + safe) ** (p - 1)
        per_pair = grad.unsqueeze(-1) * term
        return per_pair.sum(-2), -per_pair.sum(-3), None, None


@autocast_op()
def cdist(x1: Tensor, x2: Tensor, p: float = 2.0, compute_mode: str = "use_mm_for_euclid_dist_if_necessary"):
    """The (B..., P, R) p-norm distances between the rows of ``x1`` (B..., P, M) and ``x2`` (B..., R, M)."""
    if compute_mode not in _MODES:
        raise ValueError(f"{compute_mode} is not a valid value for compute_mode")
    for name, t in (("X1", x1), ("X2", x2)):
        if t.ndim < 2:
            raise RuntimeError(f"cdist only supports at least 2D tensors, {name} got: {t.ndim}D")
        if not is_floating_point(t.dtype):
            raise RuntimeError(f"cdist only supports floating-point dtypes, {name} got: {t.dtype.name}")
    if x1.dtype != x2.dtype:
        raise RuntimeError(f"cdist: expected both inputs to have the same dtype, got {x1.dtype.name} and "
                           f"{x2.dtype.name}")
    if x1.shape[-1] != x2.shape[-1]:
        raise RuntimeError(f"X1 and X2 must have the same number of columns. X1: {x1.shape[-1]} X2: {x2.shape[-1]}")
    if p < 0:
        raise RuntimeError(f"cdist only supports non-negative p values, got {p}")
    try:
        batch = tuple(int(n) for n in np.broadcast_shapes(x1.shape[:-2], x2.shape[:-2]))
    except ValueError:
        raise RuntimeError(f"cdist: the batch dims of X1 {list(x1.shape)} and X2 {list(x2.shape)} do not "
                           "broadcast") from None
    x1 = broadcast_to(x1, batch + x1.shape[-2:])
    x2 = broadcast_to(x2, batch + x2.shape[-2:])
    products = compute_mode == "use_mm_for_euclid_dist" or (
        compute_mode == "use_mm_for_euclid_dist_if_necessary" and (x1.shape[-2] > 25 or x2.shape[-2] > 25))
    return CDist.apply(x1, x2, float(p), products)


# --- compositions of differentiable ops (gradients and second derivatives come from theirs), with ---------
# --- PyTorch's formulas, eps included ----------------------------------------------------------------------
def normalize(input: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12) -> Tensor:
    """``input / max(||input||_p, eps)`` with the norm taken over ``dim``: unit vectors along ``dim``."""
    return input / input.norm(p, dim, keepdim=True).clamp_min(eps)


@autocast_op()
def cosine_similarity(x1: Tensor, x2: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """The cosine of the angle between ``x1`` and ``x2`` along ``dim`` (they broadcast), in [-1, 1].

    As PyTorch, each is divided by its own norm (at least ``eps``) before the dot product, which
    cannot overflow and stays within [-1, 1].
    """
    for t in (x1, x2):
        if not is_floating_point(t.dtype):
            raise RuntimeError(f"expected common dtype to be floating point, yet common dtype is {t.dtype.name}")
    try:
        shape = np.broadcast_shapes(x1.shape, x2.shape)
    except ValueError:
        raise RuntimeError(f"cosine_similarity: the shapes {list(x1.shape)} and {list(x2.shape)} do not broadcast "
                           "together") from None
    x1, x2 = broadcast_to(x1, shape), broadcast_to(x2, shape)
    dim = wrap_dim(dim, len(shape))
    unit1 = x1 / x1.norm(2, dim, keepdim=True).clamp_min(eps)
    unit2 = x2 / x2.norm(2, dim, keepdim=True).clamp_min(eps)
    return (unit1 * unit2).sum(dim)


def pairwise_distance(x1: Tensor, x2: Tensor, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False) -> Tensor:
    """``||x1 - x2 + eps||_p`` over the last dimension (``eps`` keeps the gradient finite at equal points)."""
    dims = max(x1.ndim, x2.ndim)
    difference = x1 - x2 + eps
    if dims == 0:
        return difference.abs()
    return difference.norm(p, -1, keepdim=keepdim)
