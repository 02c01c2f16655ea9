"""Flattening parameters into one vector and back (for second-order methods, averaging, checks)."""
from __future__ import annotations

import distgrad
from distgrad.tensor import Tensor

__all__ = ["parameters_to_vector", "vector_to_parameters"]


def _check_same_device(param: Tensor, device):
    if device is not None and param.device != device:
        raise TypeError("Found two parameters on different devices, this is currently not supported.")
    return param.device


def parameters_to_vector(parameters) -> Tensor:
    """All parameters flattened and concatenated into one 1-D tensor (differentiable)."""
    device = None
    flat = []
    for param in parameters:
        device = _check_same_device(param, device)
        flat.append(param.reshape(-1))
    return distgrad.cat(flat)


def vector_to_parameters(vec: Tensor, parameters) -> None:
    """Points each parameter's data at its slice of ``vec`` (they share memory afterwards, as in PyTorch)."""
    if not isinstance(vec, Tensor):
        raise TypeError(f"expected distgrad Tensor, but got: {type(vec).__name__}")
    device = None
    pointer = 0
    for param in parameters:
        device = _check_same_device(param, device)
        n = param.numel()
        param.array = vec.array[pointer:pointer + n].reshape(param.shape)
        pointer += n
