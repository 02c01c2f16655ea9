"""Ranks that go wrong on purpose: ``failures.py CASE`` under ``mpiexec -n N``.

Each case must end the whole job in seconds with a non-zero status and a message on stderr;
``tests/test_distributed_failures.py`` checks the time and the message.
"""
from __future__ import annotations

import sys
import time

import distgrad as dg
import distgrad.distributed as dist


def exception_on_rank_1(rank: int) -> None:
    """Rank 1 raises while the others wait in an all_reduce that can never complete."""
    if rank == 1:
        raise ValueError("rank 1 fails on purpose")
    dist.all_reduce(dg.ones(4))


def rank_1_skips_an_all_reduce(rank: int) -> None:
    """Collective #1 is a barrier everyone joins; rank 1 skips #2 and sleeps past the timeout."""
    dist.barrier()
    if rank == 1:
        time.sleep(60)
    else:
        dist.all_reduce(dg.ones(4))


def rank_1_waits_forever_on_async_work(rank: int) -> None:
    """An async all_reduce that rank 1 never joins: the wait times out too."""
    if rank != 1:
        dist.all_reduce(dg.ones(4), async_op=True).wait()
    else:
        time.sleep(60)


def shapes_differ(rank: int) -> None:
    """With DISTGRAD_DISTRIBUTED_DEBUG=DETAIL: rank r reduces 4 + r values."""
    dist.all_reduce(dg.zeros(4 + rank))


def collectives_differ(rank: int) -> None:
    """With DISTGRAD_DISTRIBUTED_DEBUG=DETAIL: rank 1 broadcasts while the others all_reduce."""
    if rank == 1:
        dist.broadcast(dg.zeros(4), src=0)
    else:
        dist.all_reduce(dg.zeros(4))


if __name__ == "__main__":
    case, timeout = sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 30.0
    dist.init_process_group(timeout=timeout)
    globals()[case](dist.get_rank())
    dist.destroy_process_group()
