"""Failure, never a hang: an uncaught exception on one rank, or a stuck collective, ends every rank.

``abort_job`` prints why, then calls ``MPI_Abort`` on the world, which the MPI launcher turns into
the end of all ranks with a non-zero exit status. ``end_job_for`` is the one policy for a rank that
leaves on an exception (uncaught, or passing through ``destroy_process_group`` in a ``finally``):
the traceback, then the abort naming the rank; a Ctrl-C prints one short line.
"""
from __future__ import annotations

import os
import sys
import time
import traceback

from distgrad.distributed import mpi_env

_before_abort = []  # callables run before MPI_Abort (e.g. aborting NCCL communicators)
_previous_excepthook = None
_world_comm = []  # the job's communicator when it is not MPI_COMM_WORLD (ranks joined through a rendezvous)


def set_world_communicator(comm) -> None:
    """Aborts go to ``comm`` (None: back to ``MPI_COMM_WORLD``)."""
    _world_comm[:] = [] if comm is None else [comm]


def abort_job(message: str, status: int = 1) -> None:
    """Prints ``message`` to stderr and aborts every rank of the job with exit status ``status``."""
    sys.stderr.write(message.rstrip("\n") + "\n")
    sys.stderr.flush()
    time.sleep(0.2)  # the launcher forwards our stderr through a pipe; MPI_Abort may drop what is in flight
    for callback in list(_before_abort):
        try:
            callback()
        except Exception:  # aborting anyway: a failing clean-up must not stop the abort
            pass
    (_world_comm[0] if _world_comm else mpi_env.mpi().COMM_WORLD).Abort(status)
    os._exit(status)  # MPI_Abort does not return; this is for libraries where it does


def add_abort_callback(callback) -> None:
    """``callback()`` runs just before an abort (e.g. to abort an NCCL communicator)."""
    _before_abort.append(callback)


def remove_abort_callback(callback) -> None:
    if callback in _before_abort:
        _before_abort.remove(callback)


def leaving_on_error():
    """The exception this rank is leaving on (one in flight, e.g. in a ``finally``), or None; a
    ``sys.exit(0)`` is a normal leave, any other ``SystemExit`` a failure of the job."""
    exc = sys.exc_info()[1]
    if exc is None or isinstance(exc, SystemExit) and exc.code in (None, 0):
        return None
    return exc


def interrupted(rank: int) -> None:
    """Ctrl-C: one short line (from rank 0), and this rank ends with 130, as shells report SIGINT.
    Every rank got the signal from the launcher; MPI ends any that did not."""
    if rank == 0:
        sys.stderr.write("interrupted\n")
        sys.stderr.flush()
    os._exit(130)


def end_job_for(exc: BaseException, rank: int, world_size: int, print_traceback: bool = True) -> None:
    """Ends the job because rank ``rank`` leaves on ``exc``: prints its traceback (unless already
    printed), then aborts every rank with a message naming this one."""
    if isinstance(exc, KeyboardInterrupt):
        interrupted(rank)
    if isinstance(exc, SystemExit):
        status = exc.code if isinstance(exc.code, int) else 1
        abort_job(f"distgrad.distributed: rank {rank} of {world_size} called sys.exit({exc.code!r}) while the "
                  "job was running; aborting all ranks", status)
    if print_traceback:
        traceback.print_exception(type(exc), exc, exc.__traceback__)
    abort_job(f"distgrad.distributed: rank {rank} of {world_size} raised an uncaught "
              f"{type(exc).__name__}: {exc}; aborting all ranks")


def install_excepthook(rank: int, world_size: int) -> None:
    """An uncaught exception on any rank aborts the whole job, after the usual traceback."""
    global _previous_excepthook
    if _previous_excepthook is not None:
        return
    _previous_excepthook = sys.excepthook

    def abort_on_uncaught_exception(exc_type, exc, tb):
        if world_size > 1 and issubclass(exc_type, KeyboardInterrupt):
            interrupted(rank)
        _previous_excepthook(exc_type, exc, tb)
        if world_size > 1:
            end_job_for(exc, rank, world_size, print_traceback=False)

    sys.excepthook = abort_on_uncaught_exception


def uninstall_excepthook() -> None:
    global _previous_excepthook
    if _previous_excepthook is not None:
        sys.excepthook = _previous_excepthook
        _previous_excepthook = None
