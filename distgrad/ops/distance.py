"""Lengths and angles between vectors: ``normalize``, ``cosine_similarity``, ``pairwise_distance``.

Each is a composition of differentiable ops (``norm``, ``clamp``, division, sum), so its gradients and
second derivatives come from theirs; the formulas are PyTorch's, eps included.
"""
from __future__ import annotations

import numpy as np

from distgrad.ops.broadcast import broadcast_to
from distgrad.ops.dims import wrap_dim
from distgrad.tensor import Tensor

__all__ = ["normalize", "cosine_similarity", "pairwise_distance"]


def normalize(input: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12) -> Tensor:
    """``input / max(||input||_p, eps)`` with the norm taken over ``dim``: unit vectors along ``dim``."""
    return input / input.norm(p, dim, keepdim=True).clamp_min(eps)


def cosine_similarity(x1: Tensor, x2: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """The cosine of the angle between ``x1`` and ``x2`` along ``dim`` (they broadcast), in [-1, 1].

    As PyTorch, each is divided by its own norm (at least ``eps``) before the dot product, which
    cannot overflow and stays within [-1, 1].
    """
    for t in (x1, x2):
        if t.dtype.kind != "f":
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
