"""``destroy_process_group``: freeing groups at the end of a job, or when the user asks.

It sits above ``world`` (which holds the groups) and ``collectives`` (whose barrier it runs), so
that neither of those needs the other back.
"""
from __future__ import annotations

import atexit

from distgrad.distributed import failure, world
from distgrad.distributed.collectives import run_collective


def destroy_process_group(group=None) -> None:
    """Frees ``group``, or every group and the default one when None. Call it on every rank of it.

    It waits for the group's other ranks, unless waiting could hang: leaving while an exception is
    in flight (in a ``finally``) ends the job at once, naming this rank and the exception; and when
    the others are in another collective (they are not leaving), the job ends naming both.
    """
    _destroy(group, "destroy_process_group")


def _destroy(group, kind: str) -> None:
    pg = world.resolve_group(group)
    if pg is None:
        return
    me, size = world.get_rank(), world.get_world_size()
    exc = failure.leaving_on_error()
    if exc is not None and size > 1:
        failure.end_job_for(exc, me, size)
    doomed = [pg] if group is not None else world.all_groups()
    for g in doomed:
        try:
            run_collective(g, kind, (), lambda comm: comm.barrier(False), async_op=False)
        except RuntimeError as error:  # others are in another collective: waiting would hang
            failure.abort_job(f"distgrad.distributed: rank {me} of {size}: {error}. Aborting all ranks.")
        world.watchdog().remove_group(g)
        if g.nccl is not None:
            failure.remove_abort_callback(g.nccl.abort)
        g.destroy()
    world.forget_group(None if group is None else pg)


@atexit.register
def _destroy_at_exit() -> None:
    # Registered when distgrad.distributed is imported, before mpi4py registers MPI_Finalize (MPI
    # starts lazily), so it runs first: communicators are freed while MPI still runs. Its kind,
    # "exit", tells the other ranks that this one is leaving if they are elsewhere.
    if world.is_initialized():
        _destroy(None, "exit")
