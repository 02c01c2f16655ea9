"""``distgrad.multiprocessing``: starting ranks as processes the PyTorch way (``torch.multiprocessing.spawn``).

    def train(rank, world_size):
        dist.init_process_group("gloo", rank=rank, world_size=world_size)   # MASTER_ADDR/PORT set
        ...
    dg.multiprocessing.spawn(train, args=(4,), nprocs=4)

The processes find each other through ``init_process_group``'s ``env://`` rendezvous (no ``mpiexec``).
"""
from distgrad.multiprocessing.spawn import (ProcessContext, ProcessExitedException,  # noqa: F401
                                            ProcessRaisedException, spawn, start_processes)

__all__ = ["spawn", "start_processes", "ProcessContext", "ProcessRaisedException", "ProcessExitedException"]
