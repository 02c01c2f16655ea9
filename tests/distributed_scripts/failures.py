"""Ranks that go wrong on purpose: ``failures.py CASE`` under ``mpiexec -n N``.

Each case must end the whole job in seconds with a non-zero status and a message on stderr;
``tests/test_distributed_failures.py`` checks the time and the message.
"""
from __future__ import annotations

import os
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


def rank_1_leaves_before_an_all_reduce(rank: int, leave, rank_0_delay_s: float = 0.0) -> None:
    """After a barrier, rank 1 calls ``leave()``; rank 0 waits ``rank_0_delay_s``, then all-reduces."""
    dist.barrier()
    if rank == 1:
        leave()
    time.sleep(rank_0_delay_s)
    dist.all_reduce(dg.ones(4))


def raise_on_rank_1() -> None:
    raise ValueError("rank 1 fails inside try/finally")


def sys_exit_on_rank_1(rank: int) -> None:
    """Rank 1 calls sys.exit(2) (the exit handler's destroy_process_group) while rank 0 all-reduces."""
    rank_1_leaves_before_an_all_reduce(rank, lambda: sys.exit(2))


def exception_through_finally(rank: int, rank_0_delay_s: float = 0.0) -> None:
    """The usual script shape: rank 1's exception passes through ``finally: destroy_process_group()``."""
    try:
        rank_1_leaves_before_an_all_reduce(rank, raise_on_rank_1, rank_0_delay_s)
    finally:
        dist.destroy_process_group()


def exception_through_finally_late(rank: int) -> None:
    """As above, but rank 0 is still computing when rank 1 reaches destroy_process_group."""
    exception_through_finally(rank, rank_0_delay_s=1.0)


def sys_exit_0_early_on_rank_1(rank: int) -> None:
    """Rank 1 leaves with sys.exit(0) while rank 0 goes on to a collective a moment later."""
    rank_1_leaves_before_an_all_reduce(rank, lambda: sys.exit(0), rank_0_delay_s=1.0)


def os_exit_on_rank_1(rank: int) -> None:
    """Rank 1 vanishes with os._exit(3): no handler of any kind runs."""
    rank_1_leaves_before_an_all_reduce(rank, lambda: os._exit(3))


def sys_exit_2_at_the_end_on_rank_1(rank: int) -> None:
    """Every collective done and the group destroyed together; then rank 1 exits with status 2."""
    dist.all_reduce(dg.ones(4))
    dist.destroy_process_group()
    if rank == 1:
        sys.exit(2)


def hang_in_all_reduce_on_rank_0(rank: int) -> None:
    """Ready for a signal: rank 0 waits in an all_reduce that rank 1 never joins (rank 1 sleeps)."""
    dist.barrier()
    open(os.path.join(os.environ["READY_DIR"], f"ready{rank}"), "w").close()
    if rank == 0:
        dist.all_reduce(dg.ones(4))
    time.sleep(60)


def leaves_then_others_mismatch_late(rank: int) -> None:
    """Rank 0 reaches destroy_process_group first; rank 1 comes a moment later with an all_reduce."""
    dist.barrier()
    if rank == 1:
        time.sleep(1.0)
        dist.all_reduce(dg.ones(4))


if __name__ == "__main__":
    case, timeout = sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 30.0
    dist.init_process_group(timeout=timeout)
    globals()[case](dist.get_rank())
    if dist.is_initialized():
        dist.destroy_process_group()
