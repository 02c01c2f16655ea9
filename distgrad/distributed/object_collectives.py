"""Collectives on picklable Python objects (over the group's MPI communicator, whatever the backend)."""
from __future__ import annotations

from distgrad.distributed.collectives import run_collective
from distgrad.distributed.world import resolve_group

__all__ = ["all_gather_object", "broadcast_object_list", "gather_object"]


def broadcast_object_list(object_list: list, src: int = 0, group=None, device=None) -> None:
    """Every rank's ``object_list`` becomes rank ``src``'s (in place). ``device`` is accepted for
    PyTorch compatibility and unused: objects travel pickled over MPI."""
    pg = resolve_group(group)
    if pg is None:
        return
    root = pg.group_rank(src)

    def call(comm):
        received = comm.comm.bcast(object_list if pg.rank() == root else None, root=root)
        object_list[:] = received

    run_collective(pg, "broadcast_object_list", [], call, async_op=False, src=src, length=len(object_list))


def all_gather_object(object_list: list, obj, group=None) -> None:
    """``object_list[i]`` becomes group rank i's ``obj``; ``object_list`` must have one slot per rank."""
    pg = resolve_group(group)
    if pg is None:
        return
    if len(object_list) != pg.size():
        raise ValueError(f"all_gather_object: object_list has {len(object_list)} entries but the group has "
                         f"{pg.size()} ranks")

    def call(comm):
        object_list[:] = comm.comm.allgather(obj)

    run_collective(pg, "all_gather_object", [], call, async_op=False)


def gather_object(obj, object_gather_list: list | None = None, dst: int = 0, group=None) -> None:
    """On global rank ``dst``, ``object_gather_list[i]`` becomes group rank i's ``obj`` (one slot per rank);
    the other ranks pass None."""
    pg = resolve_group(group)
    if pg is None:
        return
    root = pg.group_rank(dst)
    if pg.rank() == root and (object_gather_list is None or len(object_gather_list) != pg.size()):
        raise ValueError(f"gather_object: object_gather_list must have one entry per rank ({pg.size()}) on the "
                         "destination rank")

    def call(comm):
        gathered = comm.comm.gather(obj, root=root)
        if pg.rank() == root:
            object_gather_list[:] = gathered

    run_collective(pg, "gather_object", [], call, async_op=False, dst=dst)
