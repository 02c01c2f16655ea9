"""Failure, never a hang: an uncaught exception on one rank, or a stuck collective, ends every rank.

``abort_job`` prints why, then calls ``MPI_Abort`` on the world, which the MPI launcher turns into
the end of all ranks with a non-zero exit status.
"""
from __future__ import annotations

import os
import sys
import time

from distgrad.distributed import mpi_env

_before_abort = []  # callables run before MPI_Abort (e.g. aborting NCCL communicators)
_previous_excepthook = None


def abort_job(message: str) -> None:
    """Prints ``message`` to stderr and aborts every rank of the job with exit status 1."""
    sys.stderr.write(message.rstrip("\n") + "\n")
    sys.stderr.flush()
    time.sleep(0.2)  # the launcher forwards our stderr through a pipe; MPI_Abort may drop what is in flight
    for callback in list(_before_abort):
        try:
            callback()
        except Exception:  # aborting anyway: a failing clean-up must not stop the abort
            pass
    mpi_env.mpi().COMM_WORLD.Abort(1)
    os._exit(1)  # MPI_Abort does not return; this is for libraries where it does


def add_abort_callback(callback) -> None:
    """``callback()`` runs just before an abort (e.g. to abort an NCCL communicator)."""
    _before_abort.append(callback)


def remove_abort_callback(callback) -> None:
    if callback in _before_abort:
        _before_abort.remove(callback)


def install_excepthook(rank: int, world_size: int) -> None:
    """After the usual traceback, an uncaught exception on any rank aborts the whole job."""
    global _previous_excepthook
    if _previous_excepthook is not None:
        return
    _previous_excepthook = sys.excepthook

    def abort_on_uncaught_exception(exc_type, exc, tb):
        _previous_excepthook(exc_type, exc, tb)
        if world_size > 1:
            abort_job(f"distgrad.distributed: rank {rank} of {world_size} raised an uncaught "
                      f"{exc_type.__name__}: {exc}; aborting all ranks")

    sys.excepthook = abort_on_uncaught_exception


def uninstall_excepthook() -> None:
    global _previous_excepthook
    if _previous_excepthook is not None:
        sys.excepthook = _previous_excepthook
        _previous_excepthook = None
