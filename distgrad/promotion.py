"""PyTorch's type promotion, in one place: every op that combines dtypes asks ``result_type`` here.

PyTorch's rule is by category (bool < integer < floating), not NumPy's value-based widening:

1. Operands fall in three tiers: tensors with dimensions, 0-d tensors, and Python numbers (a
   Python float counts as the default dtype, an int as int64, a bool as bool). Within a tier the
   dtypes combine with ``promote_types``.
2. A lower tier changes the result only when it is of a higher category: ``float32 tensor * 0-d
   float64 tensor`` stays float32, ``float16 tensor + int64 tensor``... is float16 (same tier, and
   a float beats an int), ``int32 tensor + 2.5`` gives the default float dtype, ``bool tensor + 1``
   gives int64, ``uint8 tensor + 1000`` stays uint8 (and wraps, as in PyTorch).
3. ``promote_types`` of two dtypes: bool gives way to anything; a float beats an integer whatever
   their sizes; two floats give the wider one, except float16 with bfloat16, which is float32; two
   integers give the smallest integer holding both (uint8 with int8 is int16).

An in-place op writes into its first operand, so it may only narrow within a category:
``can_cast(result, self.dtype)`` must hold (no float into an integer tensor, nothing but bool into
a bool tensor), or it raises PyTorch's "result type Float can't be cast to the desired output type
Long".
"""
from __future__ import annotations

import numbers

import numpy as np

from distgrad import dtypes
from distgrad.dtypes import FLOATING, bool_, bfloat16, float16, float32, int64
from distgrad.tensor import Tensor

_promoted = {}  # (dtype, dtype) -> dtype, filled on first use
_PYTHON_NUMBERS = (bool, int, float)


def promote_types(type1, type2) -> np.dtype:
    """The smallest dtype to which both ``type1`` and ``type2`` convert under PyTorch's rules."""
    key = (type1, type2)
    found = _promoted.get(key)
    if found is None:
        found = _promoted[key] = _promote(dtypes.to_dtype(type1), dtypes.to_dtype(type2))
    return found


def _promote(a: np.dtype, b: np.dtype) -> np.dtype:
    if a == b or b == bool_:
        return a
    if a == bool_:
        return b
    a_float, b_float = a in FLOATING, b in FLOATING
    if a_float and b_float:
        if {a, b} == {float16, bfloat16}:
            return float32
        return a if a.itemsize >= b.itemsize else b
    if a_float or b_float:
        return a if a_float else b
    return np.promote_types(a, b)  # two integers: NumPy's table is PyTorch's (uint8 with int8 -> int16)


def can_cast(from_, to) -> bool:
    """Whether PyTorch's casting rules let a ``from_`` result be written into a ``to`` tensor:
    never a float into an integer or bool, nor a number into a bool."""
    from_, to = dtypes.to_dtype(from_), dtypes.to_dtype(to)
    if from_ in FLOATING and to not in FLOATING:
        return False
    return not (to == bool_ and from_ != bool_)


def as_number(x):
    """A Python number from a number or a NumPy scalar (NumPy scalars would upcast float32)."""
    if x.__class__ is float or x.__class__ is int:
        return x
    return x.item() if hasattr(x, "item") else x


def _number_dtype(x) -> np.dtype:
    """The dtype a Python (or NumPy) number counts as: bool, int64 or the default float."""
    cls = x.__class__
    if cls is float:
        return dtypes.get_default_dtype()
    if cls is int:
        return int64
    if isinstance(x, (bool, np.bool_)):
        return bool_
    if isinstance(x, numbers.Integral):
        return int64
    if isinstance(x, numbers.Real):
        return dtypes.get_default_dtype()
    raise TypeError(f"unsupported operand of type {type(x).__name__}: expected a Tensor or a real number")


def _combine(higher, lower):
    """A result of tier ``higher`` changed by a lower tier only where that is of a higher category."""
    if higher is None:
        return lower
    if lower is None or higher in FLOATING:
        return higher
    if higher == bool_ or lower in FLOATING:
        return promote_types(higher, lower)
    return higher


def result_type(*operands) -> np.dtype:
    """The dtype of an op over ``operands`` (Tensors, Python numbers, or None for absent ones)."""
    if len(operands) == 2:  # the common cases without the tiers: one dtype, or a float tensor and a number
        a, b = operands
        if isinstance(a, Tensor):
            dtype = a.array.dtype
            if isinstance(b, Tensor):
                if b.array.dtype == dtype:
                    return dtype
            elif b.__class__ in _PYTHON_NUMBERS and dtype in FLOATING:
                return dtype
    dims = zeros = numbers_ = None
    for x in operands:
        if x is None:
            continue
        if isinstance(x, Tensor):
            dtype = x.array.dtype
            if x.array.ndim:
                dims = dtype if dims is None else promote_types(dims, dtype)
            else:
                zeros = dtype if zeros is None else promote_types(zeros, dtype)
        else:
            dtype = _number_dtype(x)
            numbers_ = dtype if numbers_ is None else promote_types(numbers_, dtype)
    return _combine(dims, _combine(zeros, numbers_))


def promoted(a, b, true_division: bool = False) -> tuple:
    """``(a, b)`` ready for a binary array op: Tensors' arrays (numbers kept) in their result dtype, or
    in the default float dtype for the true division of integers. The common cases cost no conversion."""
    if isinstance(a, Tensor):
        x = a.array
        dtype = x.dtype
        if isinstance(b, Tensor):
            if b.array.dtype == dtype and (dtype in FLOATING or not true_division):
                return x, b.array
        elif b.__class__ in _PYTHON_NUMBERS and dtype in FLOATING:
            return x, b
    dtype = result_type(a, b)
    if true_division:
        dtype = true_divide_type(dtype)
    return cast(a, dtype), cast(b, dtype)


def true_divide_type(dtype: np.dtype) -> np.dtype:
    """True division of integers (and bools) gives the default float dtype."""
    return dtype if dtype in FLOATING else dtypes.get_default_dtype()


def cast(x, dtype: np.dtype):
    """``x`` ready for an array op in ``dtype``: a Tensor's array converted, a number as it is (NumPy
    keeps an array's dtype against a Python number), or wrapped into an integer dtype's range."""
    if isinstance(x, Tensor):
        array = x.array
        return array if array.dtype == dtype else array.astype(dtype)
    if x.__class__ is int and dtype.kind in "iu":
        info = np.iinfo(dtype)
        if not info.min <= x <= info.max:  # NumPy refuses; PyTorch wraps, as C++ does
            return np.array(x).astype(dtype)
    return x


def check_in_place(op: str, result: np.dtype, out: np.dtype) -> None:
    """Raises PyTorch's error when ``op``'s result cannot be written into a tensor of dtype ``out``."""
    if not can_cast(result, out):
        raise RuntimeError(f"{op}: result type {dtypes.torch_name(result)} can't be cast to the desired output "
                           f"type {dtypes.torch_name(out)}")
