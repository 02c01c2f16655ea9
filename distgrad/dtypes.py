"""dtypes are NumPy dtype objects, shared by NumPy and CuPy arrays; ``bfloat16`` is ml_dtypes' dtype.

NumPy has no bfloat16 of its own: ``ml_dtypes`` registers one (kind ``'V'``, so never test
``dtype.kind == 'f'``: ask ``is_floating_point``). Its elementwise loops compute in float32 and round
once, as PyTorch's CPU kernels do; ops that NumPy has no bf16 kernel for (matrix products,
reductions) compute in ``compute_dtype`` and round on output. The promotion rules live in
``promotion.py``.
"""
from __future__ import annotations

import builtins

import ml_dtypes
import numpy as np

float16 = half = np.dtype("float16")
bfloat16 = np.dtype(ml_dtypes.bfloat16)
float32 = float = np.dtype("float32")
float64 = double = np.dtype("float64")
int8 = np.dtype("int8")
int16 = short = np.dtype("int16")
int32 = int = np.dtype("int32")
int64 = long = np.dtype("int64")
uint8 = np.dtype("uint8")
bool_ = np.dtype("bool")

FLOATING = frozenset({float16, bfloat16, float32, float64})
LOW_PRECISION = frozenset({float16, bfloat16})  # 16-bit floats: accumulate and reduce in float32

# PyTorch's ScalarType names, used in its error messages ("result type Float can't be cast ...").
_TORCH_NAMES = {bool_: "Bool", uint8: "Byte", int8: "Char", int16: "Short", int32: "Int", int64: "Long",
                float16: "Half", bfloat16: "BFloat16", float32: "Float", float64: "Double"}

_default_float = float32


def get_default_dtype() -> np.dtype:
    return _default_float


def set_default_dtype(dtype) -> None:
    """The dtype of Python floats made into tensors (float32 at start; float16, bfloat16, float64 allowed)."""
    global _default_float
    dtype = to_dtype(dtype)
    if dtype not in FLOATING:
        raise TypeError(f"only floating-point types are supported as the default type, got {dtype}")
    _default_float = dtype


def to_dtype(dtype) -> np.dtype | None:
    """Normalise ``dtype`` (a dtype, a type, a string, or None)."""
    if dtype is None:
        return None
    if dtype is builtins.bool:
        return bool_
    try:
        return np.dtype(dtype)
    except TypeError:
        raise TypeError(f"unknown dtype {dtype!r}") from None


def name(dtype) -> str:
    """``'float32'`` etc., as shown in reprs and error messages."""
    return np.dtype(dtype).name


def torch_name(dtype) -> str:
    """PyTorch's name of ``dtype`` in its messages: ``'Float'``, ``'Long'``, ``'BFloat16'`` ..."""
    return _TORCH_NAMES.get(dtype, np.dtype(dtype).name)


def is_floating_point(dtype) -> bool:
    """True for float16, bfloat16, float32 and float64."""
    return dtype in FLOATING


def compute_dtype(dtype) -> np.dtype:
    """The dtype an op accumulates in for inputs of ``dtype``: float32 for the 16-bit floats."""
    return float32 if dtype in LOW_PRECISION else dtype


# --- finfo, iinfo ------------------------------------------------------------------------------------
class finfo:
    """Machine limits of a floating dtype (the default dtype without one), with PyTorch's fields."""

    def __init__(self, type=None):
        dtype = to_dtype(type) if type is not None else _default_float
        if dtype not in FLOATING:
            raise TypeError(f"distgrad.finfo() requires a floating point input type, got {dtype}. "
                            "Use distgrad.iinfo to handle integer types")
        info = ml_dtypes.finfo(dtype)
        self.bits = info.bits
        self.eps = builtins.float(info.eps)
        self.max = builtins.float(info.max)
        self.min = builtins.float(info.min)
        self.tiny = self.smallest_normal = builtins.float(info.smallest_normal)
        self.resolution = 10.0 ** -info.precision
        self.dtype = dtype.name

    def __repr__(self):
        return (f"finfo(resolution={self.resolution:g}, min={self.min:g}, max={self.max:g}, eps={self.eps:g}, "
                f"smallest_normal={self.smallest_normal:g}, tiny={self.tiny:g}, dtype={self.dtype})")


class iinfo:
    """Machine limits of an integer dtype, with PyTorch's fields (bits, min, max, dtype)."""

    def __init__(self, type):
        dtype = to_dtype(type)
        if dtype.kind not in "iu":
            raise TypeError(f"distgrad.{dtype.name} is not supported by distgrad.iinfo")
        info = np.iinfo(dtype)
        self.bits, self.min, self.max, self.dtype = info.bits, builtins.int(info.min), builtins.int(info.max), dtype.name

    def __repr__(self):
        return f"iinfo(min={self.min:g}, max={self.max:g}, dtype={self.dtype})"
