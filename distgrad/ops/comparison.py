"""Comparisons (``eq ne lt le gt ge``), logical and bitwise ops, ``isnan``/``isinf``/``isfinite``, the
Python operators bound to them (``==``, ``<``, ``&``, ``~`` ...), and ``isclose``/``allclose``/``equal``.

Each returns a new tensor (bool, or the integer dtype for bitwise ops) outside the graph: none of these
has a gradient. ``other`` may be a Tensor or a number, and broadcasts. Comparisons and bitwise ops
see their operands in PyTorch's result dtype (``int tensor == 2.5`` compares in the default float).
"""
from __future__ import annotations

import numbers

import numpy as np

from distgrad.autograd.tracing import state as _tracing
from distgrad.dtypes import torch_name
from distgrad.promotion import promoted
from distgrad.tensor import Tensor, bind_methods

__all__ = [
    "eq", "ne", "lt", "le", "gt", "ge", "logical_not", "logical_and", "logical_or", "logical_xor",
    "bitwise_not", "bitwise_and", "bitwise_or", "bitwise_xor", "isnan", "isinf", "isfinite",
    "isclose", "allclose", "equal",
]


def _bool_op(name: str, ufunc_name: str):
    def compare(input, other):
        if _tracing.hook is not None:  # dg.onnx.export records the ops that have no Function too
            return _tracing.hook(compare, (input, other), {})
        return Tensor(getattr(input._xp, ufunc_name)(*promoted(input, other)))
    compare.__name__ = name
    compare.__doc__ = f"Elementwise ``{ufunc_name}`` as a bool tensor (broadcasts; ``other`` may be a number)."
    return compare


def _operator(fn):
    """``fn`` as a Python operator: unsupported operands (``t == None``) return NotImplemented."""
    def op(input, other):
        if not isinstance(other, (Tensor, numbers.Number)):
            return NotImplemented
        return fn(input, other)
    return op


eq = _bool_op("eq", "equal")
ne = _bool_op("ne", "not_equal")
lt = _bool_op("lt", "less")
le = _bool_op("le", "less_equal")
gt = _bool_op("gt", "greater")
ge = _bool_op("ge", "greater_equal")
logical_and = _bool_op("logical_and", "logical_and")
logical_or = _bool_op("logical_or", "logical_or")
logical_xor = _bool_op("logical_xor", "logical_xor")


def logical_not(input):
    if _tracing.hook is not None:
        return _tracing.hook(logical_not, (input,), {})
    return Tensor(input._xp.logical_not(input.array))


def _require_integral(op: str, *values) -> None:
    for v in values:
        if (isinstance(v, Tensor) and v.dtype.kind not in "biu") or isinstance(v, float):
            dtype = v.dtype.name if isinstance(v, Tensor) else "float"
            raise TypeError(f"{op} is only implemented on integer and Boolean-type tensors, got {dtype}")


def _bitwise(name: str):
    def bitwise(input, other):
        if _tracing.hook is not None:
            return _tracing.hook(bitwise, (input, other), {})
        _require_integral(name, input, other)
        return Tensor(getattr(input._xp, name)(*promoted(input, other)))
    bitwise.__name__ = name
    bitwise.__doc__ = f"``{name}`` of integer or bool tensors (logical on bools)."
    return bitwise


bitwise_and = _bitwise("bitwise_and")
bitwise_or = _bitwise("bitwise_or")
bitwise_xor = _bitwise("bitwise_xor")


def bitwise_not(input):
    if _tracing.hook is not None:
        return _tracing.hook(bitwise_not, (input,), {})
    _require_integral("bitwise_not", input)
    return Tensor(input._xp.invert(input.array))


def isnan(input): return Tensor(input._xp.isnan(input.array))
def isinf(input): return Tensor(input._xp.isinf(input.array))
def isfinite(input): return Tensor(input._xp.isfinite(input.array))


def isclose(input: Tensor, other: Tensor, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> Tensor:
    """``|input - other| <= atol + rtol * |other|`` elementwise, as a bool tensor (same dtypes; broadcasts)."""
    for position, (name, value) in enumerate((("input", input), ("other", other)), 1):
        if not isinstance(value, Tensor):
            raise TypeError(f"isclose(): argument '{name}' (position {position}) must be Tensor, not "
                            f"{type(value).__name__}")
    if input.dtype != other.dtype:
        raise RuntimeError(f"{torch_name(input.dtype)} did not match {torch_name(other.dtype)}")
    try:
        np.broadcast_shapes(input.shape, other.shape)
    except ValueError:
        raise RuntimeError(f"isclose(): the shapes {list(input.shape)} and {list(other.shape)} do not broadcast "
                           "together") from None
    return Tensor(input._xp.isclose(input.array, other.array, rtol=rtol, atol=atol, equal_nan=equal_nan))


def allclose(input: Tensor, other: Tensor, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> bool:
    """True when ``isclose`` holds everywhere."""
    return bool(isclose(input, other, rtol, atol, equal_nan).array.all())


def equal(input: Tensor, other: Tensor) -> bool:
    """True when both have the same shape and elements (NaN is never equal to itself)."""
    if input.shape != other.shape:
        return False
    return bool((input.array == other.array).all())


bind_methods(
    isclose=isclose, allclose=allclose, equal=equal,
    eq=eq, ne=ne, lt=lt, le=le, gt=gt, ge=ge, __eq__=_operator(eq), __ne__=_operator(ne),
    __lt__=_operator(lt), __le__=_operator(le), __gt__=_operator(gt), __ge__=_operator(ge),
    logical_not=logical_not, logical_and=logical_and, logical_or=logical_or, logical_xor=logical_xor,
    bitwise_not=bitwise_not, bitwise_and=bitwise_and, bitwise_or=bitwise_or, bitwise_xor=bitwise_xor,
    __invert__=bitwise_not, __and__=_operator(bitwise_and), __or__=_operator(bitwise_or),
    __xor__=_operator(bitwise_xor), __rand__=_operator(bitwise_and), __ror__=_operator(bitwise_or),
    __rxor__=_operator(bitwise_xor), isnan=isnan, isinf=isinf, isfinite=isfinite,
)
