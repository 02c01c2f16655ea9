"""``destroy_process_group``: freeing groups at the end of a job, or when the user asks.

It sits above ``world`` (which holds the groups) and ``collectives`` (whose barrier it runs), so
that neither of those needs the other back.
"""
from __future__ import annotations

import atexit

from distgrad.distributed import failure, world
from distgrad.distributed.collectives import run_collective


def destroy_process_group(group=None) -> None:
    """Frees ``group``, or every group and the default one when None. Call it on every rank of it."""
    pg = world.resolve_group(group)
    if pg is None:
        return
    doomed = [pg] if group is not None else world.all_groups()
    for g in doomed:
        run_collective(g, "destroy_process_group", (), lambda comm: comm.barrier(False), async_op=False)
        world.watchdog().remove_group(g)
        if g.nccl is not None:
            failure.remove_abort_callback(g.nccl.abort)
        g.destroy()
    world.forget_group(None if group is None else pg)


@atexit.register
def _destroy_at_exit() -> None:
    # Registered when distgrad.distributed is imported, before mpi4py registers MPI_Finalize (MPI
    # starts lazily), so it runs first: communicators are freed while MPI still runs.
    if world.is_initialized():
        destroy_process_group()
