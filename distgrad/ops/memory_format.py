"""Memory formats: the layouts ``clone``, ``contiguous`` and ``is_contiguous`` accept, as in PyTorch.

* ``contiguous_format``: row-major (C order), the last dim varying fastest.
* ``preserve_format`` (``clone``'s default): a dense, non-overlapping tensor keeps its strides (a
  transposed tensor stays transposed); any other (a slice with gaps, a broadcast) becomes row-major.
  PyTorch would also pick channels-last for such a tensor whose strides suggest it; distgrad does not.
* ``channels_last`` (4-D, N C H W) and ``channels_last_3d`` (5-D, N C D H W): the same shape, stored
  with the channel dim varying fastest (N H W C in memory).

NumPy and CuPy arrays carry strides, so these are real layouts: ``x.clone(memory_format=
dg.channels_last).is_contiguous()`` is False and ``.is_contiguous(memory_format=dg.channels_last)``
is True. distgrad's ops accept any layout; the layout affects only speed and ``view``.
"""
from __future__ import annotations

from distgrad import backend

__all__ = ["memory_format", "contiguous_format", "preserve_format", "channels_last", "channels_last_3d"]


class memory_format:  # noqa: N801  (torch's name for the type)
    """A memory layout, named like PyTorch's (``dg.channels_last``)."""

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"distgrad.{self.name}"

    def __reduce__(self):
        return self.name  # pickles as the module-level constant of that name


contiguous_format = memory_format("contiguous_format")
preserve_format = memory_format("preserve_format")
channels_last = memory_format("channels_last")
channels_last_3d = memory_format("channels_last_3d")

# Per channels-last format: its rank and the order of dims in memory, outermost first.
_CHANNELS_LAST = {"channels_last": (4, (0, 2, 3, 1)), "channels_last_3d": (5, (0, 2, 3, 4, 1))}


def _check(fmt) -> None:
    if not isinstance(fmt, memory_format):
        raise TypeError(f"memory_format must be a distgrad memory format (dg.contiguous_format, dg.preserve_format, "
                        f"dg.channels_last, dg.channels_last_3d), got {fmt!r}")


def _channels_last_order(fmt, data, op: str) -> tuple:
    rank, order = _CHANNELS_LAST[fmt.name]
    if data.ndim != rank:
        raise RuntimeError(f"{op}: required rank {rank} tensor to use {fmt.name} format, got shape {list(data.shape)}")
    return order


def is_dense(data) -> bool:
    """True when the array's elements fill its memory block exactly once (any order of dims)."""
    expected = data.itemsize
    for stride, size in sorted((abs(s), n) for n, s in zip(data.shape, data.strides) if n != 1):
        if stride != expected:
            return False
        expected *= size
    return True


def copy_in_format(data, fmt, op: str = "clone"):
    """A new array holding ``data`` laid out as ``fmt``."""
    _check(fmt)
    xp = backend.array_module(data)
    if fmt is contiguous_format or fmt is preserve_format and not is_dense(data):
        return xp.array(data, copy=True, order="C")
    if fmt is preserve_format:
        return xp.array(data, copy=True, order="K")  # a dense array's strides, kept
    order = _channels_last_order(fmt, data, op)
    inverse = tuple(order.index(d) for d in range(len(order)))
    return xp.ascontiguousarray(data.transpose(order)).transpose(inverse)


def is_in_format(data, fmt) -> bool:
    """True when the array is laid out as ``fmt``; ``preserve_format`` asks for row-major, as in
    PyTorch, and a channels-last format is False for a tensor of another rank."""
    _check(fmt)
    if fmt is contiguous_format or fmt is preserve_format:
        return bool(data.flags.c_contiguous)
    rank, order = _CHANNELS_LAST[fmt.name]
    return data.ndim == rank and bool(data.transpose(order).flags.c_contiguous)
