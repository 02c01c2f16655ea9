"""``torch.utils.data.distributed``'s import path to ``distgrad.distributed.DistributedSampler``."""
from distgrad.distributed.sampler import DistributedSampler

__all__ = ["DistributedSampler"]
