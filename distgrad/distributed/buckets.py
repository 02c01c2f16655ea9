"""How DDP lays gradients out for communication: buckets of parameters, each one flat buffer.

Reducing many small gradients one by one costs a latency each; reducing all of them at once cannot
start before the last one is computed. Buckets sit in between: parameters are grouped, in the order
their gradients are expected to become ready, into flat buffers of about ``bucket_cap_mb``. The
first bucket is kept small (1 MiB, as in PyTorch) so that communication starts early in backward.
"""
from __future__ import annotations

import itertools
from typing import Sequence

from distgrad import backend
from distgrad.tensor import Tensor

__all__ = ["GradBucket", "assign_buckets", "chunked_layout", "FIRST_BUCKET_BYTES"]

FIRST_BUCKET_BYTES = 1024 * 1024  # PyTorch's dist._DEFAULT_FIRST_BUCKET_BYTES


def assign_buckets(params: Sequence[Tensor], order: Sequence[int], bucket_cap_bytes: int,
                   first_bucket_bytes: int = FIRST_BUCKET_BYTES) -> list[list[int]]:
    """Groups the indices of ``params``, taken in ``order``, into buckets.

    A bucket holds parameters of one dtype and device; it closes as soon as it holds at least its cap
    (so one large parameter makes a bucket of its own). The first bucket of each dtype and device is
    capped at ``min(first_bucket_bytes, bucket_cap_bytes)``. Buckets come back in the order of their
    first parameter in ``order``, which is the order in which they will be reduced.
    """
    caps = (min(first_bucket_bytes, bucket_cap_bytes), bucket_cap_bytes)
    open_buckets = {}  # (dtype, device) -> [indices, bytes, number of buckets closed so far]
    closed = []
    for i in order:
        p = params[i]
        key = (p.dtype, p.device)
        bucket = open_buckets.setdefault(key, [[], 0, 0])
        bucket[0].append(i)
        bucket[1] += p.numel() * p.element_size()
        if bucket[1] >= caps[min(bucket[2], 1)]:
            closed.append(bucket[0])
            open_buckets[key] = [[], 0, bucket[2] + 1]
    closed += [bucket[0] for bucket in open_buckets.values() if bucket[0]]
    position = {i: pos for pos, i in enumerate(order)}
    return sorted(closed, key=lambda indices: position[indices[0]])


def chunked_layout(owners: Sequence[int], numels: Sequence[int], world_size: int) -> tuple[list[int], int]:
    """Where items go in a flat buffer of ``world_size`` equal chunks, chunk r holding rank r's items.

    Item i (``numels[i]`` elements, owned by rank ``owners[i]``) follows the earlier items of its rank;
    every chunk is as long as the longest (the others end in padding), because ``all_gather_into_tensor``
    moves equal chunks (ZeRO-1's flat parameter buffers). Returns ``(offsets, chunk length)``.
    """
    filled = [0] * world_size
    within = []
    for owner, numel in zip(owners, numels):
        within.append(filled[owner])
        filled[owner] += numel
    chunk = max(filled, default=0)
    return [owner * chunk + start for owner, start in zip(owners, within)], chunk


class GradBucket:
    """Parameters whose gradients travel together: one flat buffer, and a view of it per parameter.

    A communication hook receives one (``index()``, ``buffer()``, ``gradients()``, ``parameters()``,
    ``is_last()``, as PyTorch's ``GradBucket``) and returns the reduced buffer through a future.
    """

    def __init__(self, index: int, param_indices: list[int], params: Sequence[Tensor], is_last: bool):
        self.param_indices = list(param_indices)
        members = [params[i] for i in self.param_indices]
        self.dtype, self.device = members[0].dtype, members[0].device
        self._index, self._is_last = index, is_last
        self._params = members
        # Each gradient after the other: parameter k's slice starts at offsets[k].
        self.offsets = list(itertools.accumulate((p.numel() for p in members[:-1]), initial=0))
        self.length = sum(p.numel() for p in members)
        with backend.cuda_device_context(self.device):
            flat = backend.module_for(self.device).zeros(self.length, dtype=self.dtype)
        self._buffer = Tensor(flat)
        self.views = [flat[start:start + p.numel()].reshape(p.shape) for p, start in zip(members, self.offsets)]
        self.pending = len(members)  # gradients still to come in this backward pass
        self.future = None  # the hook's future while the bucket is being reduced

    def index(self) -> int:
        return self._index

    def buffer(self) -> Tensor:
        """The flat buffer: every gradient of the bucket, one after the other."""
        return self._buffer

    def gradients(self) -> list[Tensor]:
        """Each parameter's gradient as a view into ``buffer()``."""
        return [Tensor(v) for v in self.views]

    def parameters(self) -> list[Tensor]:
        return list(self._params)

    def is_last(self) -> bool:
        """True for the bucket reduced last in the backward pass."""
        return self._is_last

    def nbytes(self) -> int:
        return self.length * self.dtype.itemsize

    def __repr__(self) -> str:
        return (f"GradBucket(index={self._index}, parameters={len(self._params)}, "
                f"{self.dtype.name}[{self.length}] on {self.device})")
