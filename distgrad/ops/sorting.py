"""Sorting and selecting by order: ``sort argsort msort topk kthvalue`` and ``unique unique_consecutive``.

Each ordering op finds int64 indices with one (stable) argsort of the arrays, then gathers the values
at them with ``gather``: the values' gradient is gather's, which sends each value's gradient back to
the position it came from (and can itself be differentiated again). Indices never require grad.

NaN sorts as the largest value, as in PyTorch: last in ascending order, first in descending order.
A descending sort stays stable (equal values keep their order) because it is an ascending stable
sort of the reversed input, read backwards. ``topk`` and ``kthvalue`` take their entries from that
full sort (O(n log n) along ``dim``); ``sorted=False`` still returns them sorted, which PyTorch allows.

``unique`` has no gradient, like PyTorch's; it always sorts (PyTorch may not when ``sorted=False``).
"""
from __future__ import annotations

import collections
import math

import numpy as np

from distgrad import backend
from distgrad.ops.dims import wrap_dim
from distgrad.ops.indexing import gather
from distgrad.ops.shape import reshape
from distgrad.tensor import Tensor, bind_methods

__all__ = ["sort", "argsort", "msort", "topk", "kthvalue", "unique", "unique_consecutive"]

# What the ordering ops return, like ``torch.return_types.sort``.
return_types = {name: collections.namedtuple(name, ["values", "indices"]) for name in ("sort", "topk", "kthvalue")}


def sorted_indices(data, axis: int, descending: bool):
    """int64 indices that sort the array ``data`` along ``axis``, stably, NaN counted as largest."""
    xp = backend.array_module(data)
    if not descending:
        return xp.argsort(data, axis=axis, kind="stable").astype(np.int64, copy=False)
    # Ascending stable sort of the reversed data, read backwards: descending, ties in original order.
    last = data.shape[axis] - 1
    order = xp.argsort(xp.flip(data, axis), axis=axis, kind="stable").astype(np.int64, copy=False)
    return last - xp.flip(order, axis)


def _ordered(input: Tensor, dim: int, descending: bool, first: tuple | None = None, keepdim: bool = True):
    """Values and indices of ``input`` sorted along ``dim``; with ``first``, only the first that many."""
    if input.ndim == 0:  # a 0-d tensor is its own sort
        values, indices = _ordered(reshape(input, (1,)), 0, descending, first)
        return reshape(values, ()), reshape(indices, ())
    axis = wrap_dim(dim, input.ndim)
    indices = sorted_indices(input.array, axis, descending)
    if first is not None:
        indices = indices[(slice(None),) * axis + (slice(first[0], first[1]),)]
    values = gather(input, axis, indices)
    indices = Tensor(indices)
    if not keepdim:
        values, indices = values.squeeze(axis), indices.squeeze(axis)
    return values, indices


def sort(input: Tensor, dim: int = -1, descending: bool = False, stable: bool = False):
    """``(values, indices)`` with ``input`` sorted along ``dim``. The sort is always stable."""
    return return_types["sort"](*_ordered(input, dim, descending))


def argsort(input: Tensor, dim: int = -1, descending: bool = False, stable: bool = False) -> Tensor:
    """The int64 indices that sort ``input`` along ``dim`` (stably)."""
    if input.ndim == 0:
        return Tensor(input._xp.zeros((), np.int64))
    return Tensor(sorted_indices(input.array, wrap_dim(dim, input.ndim), descending))


def msort(input: Tensor) -> Tensor:
    """``input`` sorted along its first dim (the values of ``sort(input, 0)``)."""
    return sort(input, 0).values


def topk(input: Tensor, k: int, dim: int = -1, largest: bool = True, sorted: bool = True):
    """``(values, indices)`` of the ``k`` largest (``largest=False``: smallest) entries along ``dim``."""
    size = input.shape[wrap_dim(dim, input.ndim)] if input.ndim else 1
    if not 0 <= k <= size:
        raise RuntimeError(f"selected index k out of range (k={k}, size {size} along dim {dim} of a tensor of "
                           f"shape {list(input.shape)})")
    return return_types["topk"](*_ordered(input, dim, largest, (0, k)))


def kthvalue(input: Tensor, k: int, dim: int = -1, keepdim: bool = False):
    """``(values, indices)`` of the ``k``-th smallest entry (1-based) along ``dim``."""
    axis = wrap_dim(dim, input.ndim)
    size = input.shape[axis] if input.ndim else 1
    if not 1 <= k <= size:
        raise RuntimeError(f"kthvalue(): selected number k out of range for dimension {axis} (k={k}, size {size})")
    values, indices = _ordered(input, dim, False, (k - 1, k), keepdim or input.ndim == 0)
    return return_types["kthvalue"](values, indices)


# --- unique ----------------------------------------------------------------------------------------
def _runs(rows, order):
    """For ``rows`` (n, m) read in ``order``: the first row of each run of equal rows, each row's run
    number (inverse) and the run lengths (counts). NaN equals nothing, so each NaN is its own run."""
    xp = backend.array_module(rows)
    ordered = rows[order]
    starts = xp.ones(len(order), dtype=bool)
    if len(order) > 1:
        starts[1:] = (ordered[1:] != ordered[:-1]).any(axis=1)
    run = xp.cumsum(starts) - 1
    inverse = xp.empty(len(order), np.int64)
    inverse[order] = run
    bounds = xp.concatenate([xp.flatnonzero(starts), xp.asarray([len(order)])])
    return ordered[starts], inverse, xp.diff(bounds).astype(np.int64)


def _unique(op: str, input: Tensor, sort_first: bool, return_inverse: bool, return_counts: bool, dim):
    xp, data = input._xp, input.array
    if dim is None:
        rows, moved_shape = data.reshape(-1, 1), None
    else:
        axis = wrap_dim(dim, input.ndim)
        moved = xp.moveaxis(data, axis, 0)
        if moved.size == 0 and moved.shape[0] != 0:
            raise RuntimeError(f"{op}: There are 0 sized dimensions, and they aren't selected, so unique cannot be "
                               f"applied (shape {list(input.shape)}, dim {axis})")
        rows, moved_shape = moved.reshape(moved.shape[0], math.prod(moved.shape[1:])), moved.shape
    n = rows.shape[0]
    if sort_first and n:
        # lexsort's last key is the primary one: the first column decides first.
        order = xp.lexsort(rows.T[::-1]) if rows.shape[1] > 1 else xp.argsort(rows[:, 0], kind="stable")
    else:
        order = xp.arange(n)
    if n:
        values, inverse, counts = _runs(rows, order)
    else:
        values, inverse, counts = rows, xp.zeros(0, np.int64), xp.zeros(0, np.int64)
    if dim is None:
        values, inverse = values.reshape(-1), inverse.reshape(data.shape)
    else:
        values = xp.moveaxis(values.reshape((values.shape[0],) + moved_shape[1:]), 0, axis)
    out = [Tensor(xp.ascontiguousarray(values))]
    if return_inverse:
        out.append(Tensor(inverse))
    if return_counts:
        out.append(Tensor(counts))
    return out[0] if len(out) == 1 else tuple(out)


def unique(input: Tensor, sorted: bool = True, return_inverse: bool = False, return_counts: bool = False,
           dim: int | None = None):
    """The distinct entries (or, with ``dim``, distinct slices along ``dim``), sorted; optionally the
    int64 ``inverse`` (where each entry went: ``output[inverse] == input``) and the ``counts``."""
    return _unique("unique", input, True, return_inverse, return_counts, dim)


def unique_consecutive(input: Tensor, return_inverse: bool = False, return_counts: bool = False,
                       dim: int | None = None):
    """Like ``unique``, but only runs of equal neighbours are merged, in their order."""
    return _unique("unique_consecutive", input, False, return_inverse, return_counts, dim)


bind_methods(
    sort=sort, argsort=argsort, msort=msort, topk=topk, kthvalue=kthvalue, unique=unique,
    unique_consecutive=unique_consecutive,
)
