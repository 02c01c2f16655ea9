"""``ReduceOp``: how ``all_reduce``, ``reduce`` and ``reduce_scatter`` combine the ranks' values."""
from __future__ import annotations

import enum

from distgrad import backend, dtypes


class ReduceOp(enum.Enum):
    """PyTorch's reduction names. ``AVG`` is the sum divided by the group size (integers: truncated)."""

    SUM = "sum"
    AVG = "avg"
    PRODUCT = "product"
    MIN = "min"
    MAX = "max"


def divide_in_place(array, divisor: int) -> None:
    """``array /= divisor``; integer division truncates toward zero, as NCCL's ``ncclAvg`` does."""
    if dtypes.is_floating_point(array.dtype):
        array /= divisor
        return
    xp = backend.array_module(array)
    quotient = xp.abs(array) // divisor
    array[...] = xp.where(array < 0, -quotient, quotient)
