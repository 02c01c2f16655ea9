"""``distgrad.utils.data``: ``torch.utils.data``'s import path to ``distgrad.data`` (the same objects).

``from distgrad.utils.data import DataLoader`` gives ``distgrad.data.DataLoader`` itself, and
``distgrad.utils.data.distributed.DistributedSampler`` is ``distgrad.distributed.DistributedSampler``.
"""
from distgrad.data import *  # noqa: F401,F403
from distgrad.data import __all__ as _data_names

__all__ = list(_data_names)
