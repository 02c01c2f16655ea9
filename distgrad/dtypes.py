"""dtypes are NumPy dtype objects, shared by NumPy and CuPy arrays."""
from __future__ import annotations

import numpy as np

float16 = half = np.dtype("float16")
float32 = float = np.dtype("float32")
float64 = double = np.dtype("float64")
int32 = int = np.dtype("int32")
int64 = long = np.dtype("int64")
int8 = np.dtype("int8")
uint8 = np.dtype("uint8")
bool_ = np.dtype("bool")

_default_float = float32


def get_default_dtype() -> np.dtype:
    return _default_float


def set_default_dtype(dtype) -> None:
    global _default_float
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"default dtype must be a floating point type, got {dtype}")
    _default_float = dtype


def to_dtype(dtype) -> np.dtype | None:
    """Normalise ``dtype`` (a dtype, a type, a string, or None)."""
    if dtype is None:
        return None
    if dtype is bool:
        return bool_
    try:
        return np.dtype(dtype)
    except TypeError:
        raise TypeError(f"unknown dtype {dtype!r}") from None


def name(dtype) -> str:
    """``'float32'`` etc., as shown in reprs and error messages."""
    return np.dtype(dtype).name
