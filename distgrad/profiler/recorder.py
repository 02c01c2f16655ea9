"""The timeline's recorder: one rank's events in Chrome's trace-event format, and the flag code checks.

``ACTIVE`` is the recorder while a timeline is being recorded and None otherwise, so instrumented
code pays one global lookup when it is off::

    active = recorder.ACTIVE
    if active is not None:
        start = active.now_us()
        ...
        active.complete("name", "category", start, active.now_us())

Every event is a *complete* event (``"ph": "X"``: a start ``ts`` and a duration ``dur``, in
microseconds) on a *track*: ``pid`` is the rank and ``tid`` a track of that rank ("main" for the
training loop, one per DDP bucket for its all-reduce), each named by a metadata event, so that
Perfetto and ``chrome://tracing`` show one process per rank. Times are wall-clock microseconds
(``time.time``, advanced by ``perf_counter``) so that ranks of one machine line up when merged.

A leaf module: the data loader and DDP's reducer import it, so it imports nothing of distgrad.
"""
from __future__ import annotations

import json
import os
import threading
import time

__all__ = ["ACTIVE", "Recorder", "record_function", "start", "stop"]

ACTIVE = None  # the Recorder while a timeline is recorded
MAIN_TRACK = "main"


class Recorder:
    """The events of one rank (``rank``, or the process id outside a distributed job)."""

    def __init__(self, folder: str, rank: int | None = None):
        self.folder = folder
        self.rank = rank
        self.events: list[dict] = []
        self.tracks: dict[str, int] = {MAIN_TRACK: 0}
        self._wall_origin_us = time.time_ns() / 1000
        self._perf_origin_ns = time.perf_counter_ns()
        self._lock = threading.Lock()  # tracks may be named from several threads

    def now_us(self) -> float:
        return self._wall_origin_us + (time.perf_counter_ns() - self._perf_origin_ns) / 1000

    def track(self, name: str) -> int:
        """The ``tid`` of the track called ``name`` (made on first use)."""
        tid = self.tracks.get(name)
        if tid is None:
            with self._lock:
                tid = self.tracks.setdefault(name, len(self.tracks))
        return tid

    def complete(self, name: str, category: str, start_us: float, end_us: float, track: str = MAIN_TRACK,
                 args: dict | None = None) -> None:
        """A complete event ("X") from ``start_us`` to ``end_us`` on ``track``."""
        event = {"name": name, "cat": category, "ph": "X", "ts": start_us, "dur": max(0.0, end_us - start_us),
                 "tid": self.track(track)}
        if args:
            event["args"] = args
        self.events.append(event)

    def trace(self) -> dict:
        """The events as a Chrome trace (JSON object format), metadata first, then by time."""
        pid = self.rank if self.rank is not None else os.getpid()
        label = f"rank {self.rank}" if self.rank is not None else f"process {os.getpid()}"
        meta = [{"name": "process_name", "ph": "M", "pid": pid, "tid": 0, "args": {"name": label}},
                {"name": "process_sort_index", "ph": "M", "pid": pid, "tid": 0, "args": {"sort_index": pid}}]
        for name, tid in self.tracks.items():
            meta += [{"name": "thread_name", "ph": "M", "pid": pid, "tid": tid, "args": {"name": name}},
                     {"name": "thread_sort_index", "ph": "M", "pid": pid, "tid": tid, "args": {"sort_index": tid}}]
        # Enclosing events first where two start together, so that viewers nest them.
        events = sorted(self.events, key=lambda e: (e["tid"], e["ts"], -e["dur"]))
        return {"traceEvents": meta + [{**e, "pid": pid} for e in events], "displayTimeUnit": "ms",
                "otherData": {"rank": self.rank, "clock": "wall-clock microseconds since the epoch"}}

    def path(self) -> str:
        name = f"rank{self.rank}" if self.rank is not None else f"pid{os.getpid()}"
        return os.path.join(self.folder, f"timeline-{name}.json")

    def write(self) -> str:
        """Writes the trace to ``<folder>/timeline-rank<r>.json``; returns the path."""
        os.makedirs(self.folder, exist_ok=True)
        path = self.path()
        with open(path + ".tmp", "w") as f:
            json.dump(self.trace(), f)
        os.replace(path + ".tmp", path)
        return path


def start(folder: str, rank: int | None = None) -> Recorder:
    """Starts recording (``ACTIVE`` becomes the recorder)."""
    global ACTIVE
    if ACTIVE is not None:
        raise RuntimeError(f"a timeline is already being recorded (into {ACTIVE.folder})")
    ACTIVE = Recorder(folder, rank)
    return ACTIVE


def stop() -> Recorder | None:
    """Stops recording; returns the recorder that was active (None if none was)."""
    global ACTIVE
    active, ACTIVE = ACTIVE, None
    return active


class record_function:
    """``with record_function("name"):`` marks a range of the user's own on the timeline (PyTorch's
    ``torch.profiler.record_function``); nothing when no timeline is recorded."""

    def __init__(self, name: str, args: str | None = None):
        self.name = name
        self.args = args
        self._start = None

    def __enter__(self):
        if ACTIVE is not None:
            self._start = ACTIVE.now_us()
        return self

    def __exit__(self, *exc):
        active = ACTIVE
        if active is not None and self._start is not None:
            active.complete(self.name, "user", self._start, active.now_us(),
                            args={"args": self.args} if self.args else None)
        self._start = None
