"""Gradient clipping: ``clip_grad_norm_`` (scale all gradients together) and ``clip_grad_value_``."""
from __future__ import annotations

import math

import numpy as np

from distgrad import backend, dtypes
from distgrad.autograd.node import increment_version
from distgrad.tensor import Tensor

__all__ = ["get_total_norm", "clip_grads_with_norm_", "clip_grad_norm_", "clip_grad_value_"]


def _as_list(tensors) -> list:
    return [tensors] if isinstance(tensors, Tensor) else list(tensors)


def _grads(parameters) -> list:
    return [p.grad for p in _as_list(parameters) if p.grad is not None]


def _vector_norm(array, norm_type: float):
    """The ``norm_type``-norm of all elements, at least in float32 (so half gradients do not overflow)."""
    xp = backend.array_module(array)
    flat = array.ravel()
    if flat.dtype.itemsize < 4:
        flat = flat.astype(xp.float32)
    if math.isinf(norm_type):
        return xp.abs(flat).max() if flat.size else xp.zeros((), flat.dtype)
    return xp.linalg.norm(flat, ord=norm_type)


def get_total_norm(tensors, norm_type: float = 2.0, error_if_nonfinite: bool = False) -> Tensor:
    """The norm of all ``tensors`` together, as if concatenated into one vector (a 0-d Tensor).

    The result lives on the first tensor's device, with its dtype.
    """
    tensors = _as_list(tensors)
    norm_type = float(norm_type)
    if not tensors:
        return Tensor(np.zeros((), dtypes.get_default_dtype()))
    first = tensors[0]
    norms = [backend.to_device(_vector_norm(t.array, norm_type), first.device) for t in tensors]
    xp = first._xp
    total = _vector_norm(xp.stack(norms), norm_type).astype(first.dtype)
    if error_if_nonfinite and not bool(xp.isfinite(total)):
        raise RuntimeError(f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, so it "
                           "cannot be clipped. To disable this error and scale the gradients by the non-finite norm "
                           "anyway, set `error_if_nonfinite=False`")
    return Tensor(xp.asarray(total))


def clip_grads_with_norm_(parameters, max_norm: float, total_norm: Tensor) -> None:
    """Scales every gradient in place by ``min(1, max_norm / (total_norm + 1e-6))``."""
    grads = _grads(parameters)
    if not grads:
        return
    coef = min(float(max_norm) / (float(total_norm.item()) + 1e-6), 1.0)
    for g in grads:
        g.array *= g.array.dtype.type(coef)
        increment_version(g)


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False) -> Tensor:
    """Rescales the gradients so that their joint ``norm_type``-norm is at most ``max_norm``.

    Returns the total norm before clipping (a 0-d Tensor), as PyTorch does.
    """
    parameters = _as_list(parameters)
    total_norm = get_total_norm(_grads(parameters), norm_type, error_if_nonfinite)
    clip_grads_with_norm_(parameters, max_norm, total_norm)
    return total_norm


def clip_grad_value_(parameters, clip_value: float) -> None:
    """Clamps every gradient in place to [-clip_value, clip_value]."""
    clip_value = float(clip_value)
    for g in _grads(parameters):
        xp = g._xp
        xp.clip(g.array, -clip_value, clip_value, out=g.array)
        increment_version(g)
