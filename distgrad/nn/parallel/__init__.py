"""``distgrad.nn.parallel``: ``torch.nn.parallel``'s import path to ``DistributedDataParallel``
(``from torch.nn.parallel import DistributedDataParallel as DDP``), the same class as
``distgrad.distributed.DistributedDataParallel``. Single-process multi-GPU ``DataParallel`` does not exist
in distgrad: run one process per GPU with DDP instead."""
from distgrad.distributed.ddp import DistributedDataParallel

__all__ = ["DistributedDataParallel"]
