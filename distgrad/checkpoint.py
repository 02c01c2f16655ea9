"""Resuming training from the latest checkpoint: what a restarted or requeued job needs.

``distgrad-launch --max-restarts K`` and SLURM's requeue start the same command again; the script
then continues where its last checkpoint left it, or starts fresh when there is none yet::

    import distgrad.checkpoint as ckpt

    ckpt.prepare(path)                                   # before training: the folder exists and is writable
    state = ckpt.resume(path, map_location=device)       # None: no checkpoint yet (a one-line notice)
    if state is not None:
        model.load_state_dict(state["model"]); optimizer.load_state_dict(state["optimizer"])
        start = state["step"]
    ...
    if rank == 0 and step % every == 0:
        ckpt.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step}, path)

A run that must stop early (SLURM's time-limit warning, ``sbatch --signal=B:USR1@120``, passed on
by ``distgrad-launch``) checks ``StopRequest`` after each step: every rank agrees on the step, rank 0
saves, all leave with status 0, and the batch script requeues the job, which resumes.

``save`` is ``distgrad.save`` (atomic: a crash mid-save leaves the previous checkpoint). A file that
is there but unreadable raises ``CheckpointError`` with one line naming it: a job must not silently
start over when its checkpoint is broken. (Not activation checkpointing, which PyTorch calls
``torch.utils.checkpoint``.)
"""
from __future__ import annotations

import os
import signal
import sys

from distgrad import envvars
from distgrad.serialization import load, save

__all__ = ["CheckpointError", "StopRequest", "prepare", "restart_count", "resume", "save"]


class CheckpointError(RuntimeError):
    """A checkpoint that exists but cannot be read, or a path a checkpoint cannot be written to;
    ``str()`` is one line naming the path."""


def restart_count() -> int:
    """How many times the launcher has restarted this job: 0 on the first attempt
    (``DISTGRAD_RESTART_COUNT``, set by ``distgrad-launch --max-restarts``)."""
    value = os.environ.get(envvars.RESTART_COUNT, "0")
    return int(value) if value.isdigit() else 0


def prepare(path) -> None:
    """Creates the folder of ``path`` if needed and checks that it can be written, so that a wrong
    path fails before training rather than when the first checkpoint is saved."""
    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise CheckpointError(f"cannot save checkpoints to {os.fspath(path)}: cannot create its folder "
                              f"({exc.strerror})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CheckpointError(f"cannot save checkpoints to {os.fspath(path)}: its folder is not writable")
    if os.path.isdir(path):
        raise CheckpointError(f"cannot save checkpoints to {os.fspath(path)}: it is a folder; give a file name")


def resume(path, map_location=None, notice=True):
    """What ``save`` last wrote to ``path``, or None when there is no file yet (a fresh start,
    announced in one line on stderr when ``notice``). Raises ``CheckpointError`` when it is unreadable."""
    if not os.path.exists(path):
        if notice:
            print(f"no checkpoint at {os.fspath(path)} yet: starting from scratch", file=sys.stderr, flush=True)
        return None
    try:
        return load(path, map_location=map_location)
    except (RuntimeError, OSError) as exc:
        raise CheckpointError(str(exc).splitlines()[0] if str(exc) else f"cannot read {os.fspath(path)}") from exc


class StopRequest:
    """Turns ``signals`` (default SIGUSR1) into a request to checkpoint and stop at the next step.

    ``agreed()`` is True on every rank at the same step once any rank got the signal: ranks see a
    signal at different moments, and one that stopped alone would leave the others in a collective.
    In a process group of several ranks it is a collective (one small all-reduce): call it on every
    rank, once per step.
    """

    def __init__(self, signals=(signal.SIGUSR1,)):
        self.requested = False
        for sig in signals:
            signal.signal(sig, self._request)

    def _request(self, signum, frame) -> None:
        self.requested = True

    def agreed(self) -> bool:
        import distgrad as dg
        import distgrad.distributed as dist

        if not (dist.is_initialized() and dist.get_world_size() > 1):
            return self.requested
        flag = dg.tensor([1.0 if self.requested else 0.0])
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        self.requested = bool(flag.item())
        return self.requested
