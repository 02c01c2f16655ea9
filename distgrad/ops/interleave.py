"""``repeat_interleave``: each entry (or slice along ``dim``) repeated in place, ``[a, b] -> [a, a, b, b]``.

It is ``index_select`` with the index ``[0, 0, 1, 1, ...]``, so its gradient sums the copies back
(index_select's backward) and can be differentiated again. With per-entry repeats ``r`` the index
of output position ``p`` is the number of cumulative repeats ``<= p``: one ``searchsorted``, the
same on NumPy and CuPy (CuPy's ``repeat`` does not take an array of repeats).
"""
from __future__ import annotations

import numpy as np

from distgrad import backend
from distgrad.ops.dims import wrap_dim
from distgrad.ops.indexing import index_select
from distgrad.ops.shape import flatten
from distgrad.tensor import Tensor, bind_methods

__all__ = ["repeat_interleave"]


def repeat_index(xp, repeats, output_size: int | None = None):
    """``[0] * repeats[0] + [1] * repeats[1] + ...`` as an int64 array (``output_size`` saves a sync)."""
    ends = xp.cumsum(repeats)
    if output_size is None:
        backend.check_host_sync("repeat_interleave without output_size (its result's shape depends on the data)",
                                repeats)
    total = int(ends[-1]) if output_size is None and len(repeats) else output_size or 0
    return xp.searchsorted(ends, xp.arange(total), side="right").astype(np.int64, copy=False)


def _repeats_array(input: Tensor, repeats: Tensor, size: int):
    """``repeats`` as an integer array on ``input``'s device, one per entry (a single one is broadcast)."""
    r = repeats.array
    if r.ndim > 1:
        raise RuntimeError(f"repeat_interleave: repeats must be 0-dim or 1-dim tensor, got shape {list(r.shape)}")
    if r.dtype.kind not in "iu":
        raise RuntimeError(f"repeat_interleave: repeats must be an integer tensor, got {r.dtype.name}")
    r = backend.to_device(r, input.device).reshape(-1)
    if r.size == 1:
        r = input._xp.full(size, r[0], dtype=r.dtype)
    elif r.size != size:
        raise RuntimeError(f"repeats must have the same size as input along dim, but got repeats.size(0) = {r.size} "
                           f"and input.size(0) = {size}")
    if r.size and bool((r < 0).any()):
        raise RuntimeError("repeat_interleave: repeats can not be negative")
    return r


def repeat_interleave(input: Tensor, repeats=None, dim: int | None = None, *, output_size: int | None = None):
    """``input`` with entry i repeated ``repeats[i]`` times (or ``repeats`` times, for an int) along
    ``dim``; without ``dim`` the flattened input. ``repeat_interleave(counts)`` alone gives the index
    ``[0] * counts[0] + [1] * counts[1] + ...``."""
    if repeats is None:
        counts = _repeats_array(input, input, input.numel())
        return Tensor(repeat_index(input._xp, counts, output_size))
    if dim is None:
        input, dim = flatten(input), 0
    dim = wrap_dim(dim, input.ndim)
    size = input.shape[dim] if input.ndim else 1
    xp = input._xp
    if isinstance(repeats, Tensor):
        index = repeat_index(xp, _repeats_array(input, repeats, size), output_size)
    else:
        if repeats < 0:
            raise RuntimeError(f"repeat_interleave: Repeats must be non-negative, got {repeats}")
        index = xp.arange(size * repeats, dtype=np.int64) // max(repeats, 1)
    return index_select(input, dim, Tensor(index))


bind_methods(repeat_interleave=repeat_interleave)
