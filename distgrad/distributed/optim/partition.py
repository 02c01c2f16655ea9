"""Which rank owns which parameter under ZeRO: PyTorch's greedy partition, balanced by size.

Each parameter group is split on its own, largest parameters first, each going to the rank that holds
the fewest elements so far (the lowest such rank on ties); the running totals carry over from one
group to the next. Every rank computes the same partition from the same parameter list, so no
communication is needed, and parameters added later (``add_param_group``) leave the earlier ones where
they were.
"""
from __future__ import annotations

from distgrad.tensor import Tensor

__all__ = ["partition_parameters"]


def partition_parameters(param_groups: list[dict], world_size: int) -> list[list[dict]]:
    """``result[rank][g]`` is a copy of ``param_groups[g]`` (same hyper-parameters) with ``'params'`` the
    parameters of group g that ``rank`` owns (possibly none), in the order they were assigned."""
    if world_size < 1:
        raise ValueError(f"world_size must be at least 1, got {world_size}")
    sizes = [0] * world_size
    per_rank = [[] for _ in range(world_size)]
    for group in param_groups:
        owned: list[list[Tensor]] = [[] for _ in range(world_size)]
        for p in sorted(group["params"], key=lambda t: t.numel(), reverse=True):  # stable: ties keep their order
            rank = sizes.index(min(sizes))
            owned[rank].append(p)
            sizes[rank] += p.numel()
        for rank in range(world_size):
            per_rank[rank].append({**group, "params": owned[rank]})
    return per_rank
