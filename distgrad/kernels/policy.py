"""Which arrays go to distgrad's own CUDA kernels: the one question every op asks before its array code.

An op takes its kernel path when kernels are on (``DISTGRAD_KERNELS=0`` or ``set_enabled(False)`` turns
them off), every array it reads is on the GPU, C-contiguous and float32, float16 or bfloat16, and the
op's own conditions hold (the kernel modules' ``applies`` functions: the reduced dim is the last, the
shapes are ones the kernel handles...). Otherwise it runs its NumPy/CuPy array code, which stays the
reference the kernels are tested against.

``emulated()`` lets host (NumPy) arrays take the kernel path too, launched on the CPU emulator
(``distgrad.kernels.emulator``): tests run each op's GPU path, dispatch included, without a GPU.
"""
from __future__ import annotations

import contextlib
import os

import numpy as np

from distgrad import backend, envvars
from distgrad.dtypes import bfloat16, float16, float32

KERNEL_DTYPES = (np.dtype(float32), np.dtype(float16), np.dtype(bfloat16))

_state = {"enabled": os.environ.get(envvars.KERNELS, "1") != "0", "emulated": False}


def enabled() -> bool:
    return _state["enabled"]


def set_enabled(on: bool) -> None:
    """Turns distgrad's kernels on or off for every op (on by default)."""
    _state["enabled"] = bool(on)


def is_emulated() -> bool:
    return _state["emulated"]


@contextlib.contextmanager
def emulated():
    """Host arrays take the kernel path, launched on the CPU emulator (for tests; slow)."""
    before = _state["emulated"]
    _state["emulated"] = True
    try:
        yield
    finally:
        _state["emulated"] = before


def on_kernel_path(*arrays) -> bool:
    """True when kernels are on and each array (None entries are skipped) is on the GPU (or emulated),
    C-contiguous and of a kernel dtype."""
    if not _state["enabled"]:
        return False
    for a in arrays:
        if a is None:
            continue
        if not (backend.is_device_array(a) or _state["emulated"] and isinstance(a, np.ndarray)):
            return False
        if a.dtype not in KERNEL_DTYPES or not a.flags.c_contiguous:
            return False
    return True
