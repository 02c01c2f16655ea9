"""Which ONNX nodes each traced op becomes: ``TRANSLATIONS[op class] -> Translation``.

A translation is ``fn(e)`` with ``e`` the op's ``OpContext`` (``context.py``): it reads the op's
arguments and adds nodes, and returns the ONNX name of each of the op's outputs (a tuple, or one name
for one output; None for an output that no ONNX node gives, which no later node may then read).
``varying`` lists the argument positions that may differ between the two traces (sizes that follow
the dynamic axes); the translation reads sizes from ``e.dims`` there, not from the argument.
"""
from __future__ import annotations

from typing import Callable, NamedTuple


class Translation(NamedTuple):
    fn: Callable
    varying: frozenset


TRANSLATIONS: dict = {}


def translates(*ops, varying=()):
    """Registers the decorated function as the translation of each op class in ``ops``."""
    def register(fn):
        for op in ops:
            TRANSLATIONS[op] = Translation(fn, frozenset(varying))
        return fn
    return register
