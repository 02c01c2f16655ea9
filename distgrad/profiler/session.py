"""Starting and stopping a timeline: ``with dg.profiler.profile(folder):``, or ``DISTGRAD_TIMELINE=folder``.

While one runs, the global module hooks time forward and backward per module (``modules.py``),
the global optimizer hooks time each ``step``, and the data loader and DDP's reducer add their own
events (they check ``recorder.ACTIVE``). Stopping writes ``<folder>/timeline-rank<r>.json``.
"""
from __future__ import annotations

import atexit
import os
import sys

from distgrad import envvars
from distgrad.optim import optimizer as optim_base
from distgrad.profiler import modules, recorder

__all__ = ["profile", "start", "stop", "start_from_environment"]

_step_handles: list = []
_started_from_environment = [False]


def _before_step(optimizer, args, kwargs) -> None:
    active = recorder.ACTIVE
    if active is not None:
        optimizer.__dict__["_timeline_step_start"] = active.now_us()


def _after_step(optimizer, args, kwargs) -> None:
    active = recorder.ACTIVE
    start = optimizer.__dict__.pop("_timeline_step_start", None)
    if active is not None and start is not None:
        active.complete(f"{type(optimizer).__name__}.step", "optimizer", start, active.now_us())


def start(folder: str, rank: int | None = None) -> recorder.Recorder:
    """Starts recording this process's timeline (rank ``rank``: the default group's when None)."""
    if rank is None:
        rank = _rank_or_none()
    active = recorder.start(folder, rank)
    modules.install()
    _step_handles[:] = [optim_base.register_optimizer_step_pre_hook(_before_step),
                        optim_base.register_optimizer_step_post_hook(_after_step)]
    return active


def stop() -> str | None:
    """Stops recording and writes the trace; returns its path (None when nothing was recorded)."""
    active = recorder.stop()
    modules.uninstall()
    for handle in _step_handles:
        handle.remove()
    _step_handles.clear()
    return None if active is None else active.write()


class profile:
    """``with dg.profiler.profile("timeline/"):`` records this rank's timeline while the block runs and
    writes ``timeline/timeline-rank<r>.json`` (distgrad's own profiler: a folder, not PyTorch's
    ``activities``/``schedule`` arguments). ``distgrad-timeline merge timeline/`` merges the ranks."""

    def __init__(self, folder: str = "timeline", rank: int | None = None):
        self.folder, self.rank = folder, rank
        self.path = None

    def __enter__(self):
        start(self.folder, self.rank)
        return self

    def __exit__(self, *exc):
        self.path = stop()


def start_from_environment(rank: int) -> None:
    """``DISTGRAD_TIMELINE=folder``: starts this rank's timeline (at ``init_process_group``), written by
    ``stop_from_environment`` (at ``destroy_process_group``) or at exit."""
    folder = os.environ.get(envvars.TIMELINE)
    if not folder or recorder.ACTIVE is not None:
        return
    start(folder, rank)
    if not _started_from_environment[0]:
        atexit.register(stop_from_environment)
    _started_from_environment[0] = True


def stop_from_environment() -> str | None:
    """Writes the timeline that ``DISTGRAD_TIMELINE`` started, if it still runs."""
    if not _started_from_environment[0] or recorder.ACTIVE is None:
        return None
    return stop()


def _rank_or_none() -> int | None:
    # The default group's rank when one exists; looked up, not imported (distributed sits above).
    world = sys.modules.get("distgrad.distributed.world")
    if world is not None and world.is_initialized():
        return world.get_rank()
    for name in (envvars.RANK, "PMI_RANK", "OMPI_COMM_WORLD_RANK"):
        value = os.environ.get(name)
        if value is not None and value.isdigit():
            return int(value)
    return None
