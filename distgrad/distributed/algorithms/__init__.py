"""Algorithms on top of the process groups, as ``torch.distributed.algorithms``: ``Join`` for uneven inputs."""
from distgrad.distributed.algorithms.join import Join, Joinable, JoinHook

__all__ = ["Join", "Joinable", "JoinHook"]
