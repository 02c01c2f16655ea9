"""``DistributedSampler``: each rank's share of a dataset, with PyTorch's semantics."""
from __future__ import annotations

import math
from typing import Iterator

import numpy as np

from distgrad.data.sampler import Sampler

__all__ = ["DistributedSampler"]


class DistributedSampler(Sampler):
    """Rank ``rank`` of ``num_replicas`` visits indices ``rank, rank + num_replicas, ...`` of one
    (shuffled) order of the dataset shared by every rank.

    Without ``drop_last``, the order is padded by repeating its first indices so that every rank gets
    ``ceil(len / num_replicas)`` samples; with it, the tail is cut to a multiple of ``num_replicas``.
    The shuffle is a NumPy permutation seeded with ``seed + epoch``: the same on every rank, new each
    epoch once ``set_epoch(epoch)`` is called before iterating (distgrad differs from PyTorch only in
    drawing it with NumPy instead of torch's generator). ``num_replicas`` and ``rank`` default to the
    default process group's; when both are given no process group is needed.
    """

    def __init__(self, dataset, num_replicas: int | None = None, rank: int | None = None, shuffle: bool = True,
                 seed: int = 0, drop_last: bool = False):
        if num_replicas is None or rank is None:
            from distgrad.distributed import world
            if not world.is_initialized():
                raise RuntimeError("Requires distributed package to be available (call init_process_group, or "
                                   "give num_replicas and rank)")
            num_replicas = world.get_world_size() if num_replicas is None else num_replicas
            rank = world.get_rank() if rank is None else rank
        if num_replicas < 1:
            raise ValueError(f"num_replicas must be at least 1, got {num_replicas}")
        if rank >= num_replicas or rank < 0:
            raise ValueError(f"Invalid rank {rank}, rank should be in the interval [0, {num_replicas - 1}]")
        self.dataset = dataset
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.drop_last = drop_last
        self.shuffle = shuffle
        self.seed = seed
        if drop_last and len(dataset) % num_replicas != 0:
            self.num_samples = math.ceil((len(dataset) - num_replicas) / num_replicas)
        else:
            self.num_samples = math.ceil(len(dataset) / num_replicas)
        self.total_size = self.num_samples * num_replicas

    def __iter__(self) -> Iterator[int]:
        n = len(self.dataset)
        if self.shuffle:
            indices = np.random.default_rng(self.seed + self.epoch).permutation(n)
        else:
            indices = np.arange(n)
        if not self.drop_last:
            padding = self.total_size - n
            if padding > 0:
                indices = np.concatenate([indices, np.resize(indices, padding)])
        else:
            indices = indices[:self.total_size]
        return iter(indices[self.rank:self.total_size:self.num_replicas].tolist())

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Makes the next iteration use the shuffle of ``epoch`` (call it at the start of each epoch)."""
        self.epoch = epoch
