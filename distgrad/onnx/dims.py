"""Sizes that follow the dynamic axes, found by comparing two traces.

``export`` traces the model twice: the second time every dynamic axis (``dynamic_axes``) has another
size. A dim of some tensor that is equal in both traces is a constant; one that changed is taken to
be ``factor * size(a) * size(b) ...`` for the dynamic axes a, b, ..., when one such product fits both
traces (a batch dim N, the N*T rows of a flattened sequence batch, 4*N ...). ONNX then computes it
from the input's shape where an op needs it as a number (a reshape's target, a constant's shape).
"""
from __future__ import annotations

import itertools
import math
from typing import NamedTuple


class Dim(NamedTuple):
    """A size that follows the dynamic axes: ``factor`` times the product of the sizes of ``symbols``."""

    factor: int
    symbols: tuple  # names of dynamic axes, sorted


UNKNOWN = Dim(0, ())
"""A size that changed between the traces in a way no product of dynamic sizes explains."""


def solve(first: int, second: int, sizes: dict) -> int | Dim:
    """The dim whose size was ``first`` in the first trace and ``second`` in the second.

    ``sizes`` maps each dynamic axis name to its (first, second) sizes.
    """
    if first == second:
        return first
    names = sorted(sizes)
    for count in range(1, min(len(names), 3) + 1):
        for combo in itertools.combinations(names, count):
            p1 = math.prod(sizes[n][0] for n in combo)
            p2 = math.prod(sizes[n][1] for n in combo)
            if p1 and p2 and first % p1 == 0 and second % p2 == 0 and first // p1 == second // p2:
                return Dim(first // p1, combo)
    return UNKNOWN


def solve_shape(first: tuple, second: tuple, sizes: dict) -> tuple | None:
    """Each dim of a tensor of shape ``first`` (second trace: ``second``); None when the ranks differ."""
    if len(first) != len(second):
        return None
    return tuple(solve(a, b, sizes) for a, b in zip(first, second))


def is_static(dims) -> bool:
    return all(isinstance(d, int) for d in dims)


def dim_name(dim) -> str | None:
    """The ``dim_param`` of a graph input or output dim: the axis name of a plain dynamic size."""
    if isinstance(dim, Dim) and dim.factor == 1 and len(dim.symbols) == 1:
        return dim.symbols[0]
    if isinstance(dim, Dim) and dim is not UNKNOWN:
        return "*".join(((str(dim.factor),) if dim.factor != 1 else ()) + dim.symbols)
    return None
