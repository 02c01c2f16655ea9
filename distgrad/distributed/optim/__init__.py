"""Distributed optimizers, as ``torch.distributed.optim``: ``ZeroRedundancyOptimizer`` (ZeRO-1)."""
from distgrad.distributed.optim.zero_redundancy_optimizer import ZeroRedundancyOptimizer

__all__ = ["ZeroRedundancyOptimizer"]
