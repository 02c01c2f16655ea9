"""``broadcast_coalesced``: many tensors from one rank to all, one collective per dtype and device.

Broadcasting each tensor alone would pay a collective's latency per tensor; here the tensors of one
dtype and device travel as one flat array. DDP copies rank 0's model with it; ZeRO-1 sends each
rank's updated shard with it.
"""
from __future__ import annotations

from distgrad.autograd.node import increment_version
from distgrad.distributed import collectives, world
from distgrad.tensor import Tensor

__all__ = ["broadcast_coalesced"]


def broadcast_coalesced(tensors: list, src: int, process_group=None) -> None:
    """Every rank's ``tensors`` become global rank ``src``'s (each rank passes the same shapes)."""
    by_kind = {}
    for t in tensors:
        by_kind.setdefault((t.dtype, t.device), []).append(t)
    is_source = world.get_rank() == src
    for members in by_kind.values():
        xp = members[0]._xp
        flat = Tensor(xp.concatenate([t.array.reshape(-1) for t in members]))
        collectives.broadcast(flat, src, group=process_group)
        if is_source:  # its tensors already hold what it sent
            continue
        offset = 0
        for t in members:
            t.array[...] = flat.array[offset:offset + t.numel()].reshape(t.shape)
            increment_version(t)
            offset += t.numel()
