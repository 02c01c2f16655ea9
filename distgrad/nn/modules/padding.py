"""Padding layers over the last 1, 2 or 3 dims: ``ZeroPad``, ``ConstantPad``, ``ReflectionPad``, ``ReplicationPad``
and ``CircularPad`` in 1d, 2d and 3d forms, each ``F.pad`` with its mode.

``padding`` is an int (every side) or a tuple in ``F.pad``'s order: (left, right) for 1d, (left, right,
top, bottom) for 2d, (left, right, top, bottom, front, back) for 3d.
"""
from __future__ import annotations

from distgrad.nn import functional as F
from distgrad.nn.module import Module


class _PadNd(Module):
    dims = 1
    mode = "constant"

    def __init__(self, padding, value: float | None = None):
        super().__init__()
        widths = tuple(padding) if isinstance(padding, (tuple, list)) else (padding,) * (2 * self.dims)
        if len(widths) != 2 * self.dims:
            raise ValueError(f"{type(self).__name__}: padding must be an int or a tuple of {2 * self.dims} ints, "
                             f"got {padding!r}")
        self.padding = widths
        self.value = value

    def forward(self, input):
        return F.pad(input, self.padding, self.mode, self.value)

    def extra_repr(self) -> str:
        return f"{self.padding}"


class _ConstantPadNd(_PadNd):
    def __init__(self, padding, value: float):
        super().__init__(padding, value)

    def extra_repr(self) -> str:
        return f"padding={self.padding}, value={self.value}"


class _ZeroPadNd(_PadNd):
    def __init__(self, padding):
        super().__init__(padding, 0.0)


def _family(base, mode: str, name: str) -> tuple:
    """The 1d, 2d and 3d classes of one padding mode."""
    return tuple(type(f"{name}{d}d", (base,), {"dims": d, "mode": mode, "__doc__": f"``F.pad`` of the last {d} "
                      f"dim(s) in mode {mode!r}.", "__module__": __name__}) for d in (1, 2, 3))


ZeroPad1d, ZeroPad2d, ZeroPad3d = _family(_ZeroPadNd, "constant", "ZeroPad")
ConstantPad1d, ConstantPad2d, ConstantPad3d = _family(_ConstantPadNd, "constant", "ConstantPad")
ReflectionPad1d, ReflectionPad2d, ReflectionPad3d = _family(_PadNd, "reflect", "ReflectionPad")
ReplicationPad1d, ReplicationPad2d, ReplicationPad3d = _family(_PadNd, "replicate", "ReplicationPad")
CircularPad1d, CircularPad2d, CircularPad3d = _family(_PadNd, "circular", "CircularPad")
