"""The watchdog: a daemon thread that ends the job when a collective outlives its group's timeout.

The calling thread registers each collective it enters (a dict insert; blocking calls unregister on
return, asynchronous ones once their ``Work`` reports the transfer done). Every ``interval`` the
watchdog looks at what is still in flight; past the timeout it reads the group's progress board to
name the ranks that never arrived, and aborts the job with that message. Sooner, once a collective
has waited ``look_after_s``, it reads the board once to find ranks that entered the same collective
number with another fingerprint (a mismatch across nodes, which hangs), and aborts naming them. It
also checks NCCL communicators for asynchronous errors.
"""
from __future__ import annotations

import threading
import time

from distgrad.distributed import debug
from distgrad.distributed.failure import abort_job
from distgrad.distributed.progress_board import KINDS


class _InFlight:
    """A collective in flight; as a context manager, a blocking one registered while it runs."""

    __slots__ = ("group", "kind", "seq", "started", "work", "looked", "_in_flight")

    def __init__(self, in_flight: dict, group, kind: str, seq: int, work=None):
        self.group, self.kind, self.seq, self.work = group, kind, seq, work
        self.looked = False  # for a mismatch, once
        self._in_flight = in_flight
        self.started = time.monotonic()

    def register(self) -> None:
        self._in_flight[id(self)] = self  # dict assignment and pop are atomic under the GIL

    __enter__ = register

    def __exit__(self, *exc):
        self._in_flight.pop(id(self), None)


class Watchdog:
    """One per process; ``enabled=False`` (MPI without thread support) keeps the interface, no thread."""

    def __init__(self, world_rank: int, enabled: bool = True):
        self.world_rank = world_rank
        self.enabled = enabled
        self.interval = 1.0
        self._in_flight = {}  # id(entry) -> _InFlight
        self._groups = []
        self._stop = threading.Event()
        self._thread = None
        if enabled:
            self._thread = threading.Thread(target=self._run, name="distgrad-watchdog", daemon=True)
            self._thread.start()

    def add_group(self, group) -> None:
        """Watches ``group``'s collectives (and its NCCL communicator's errors) from now on."""
        self._groups.append(group)
        self.interval = min(self.interval, max(0.05, group.timeout_s / 10))

    def remove_group(self, group) -> None:
        if group in self._groups:
            self._groups.remove(group)

    def watching(self, group, kind: str, seq: int) -> _InFlight:
        """``with watchdog.watching(...)``: watches a blocking collective while it runs."""
        return _InFlight(self._in_flight, group, kind, seq)

    def watch_work(self, group, kind: str, seq: int, work) -> None:
        """Watches an asynchronous collective until ``work.poll()`` says its transfer is done."""
        if self.enabled:
            _InFlight(self._in_flight, group, kind, seq, work).register()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.check()

    def check(self) -> None:
        """One look at everything in flight; aborts the job on a timeout or an NCCL error."""
        now = time.monotonic()
        for key, entry in list(self._in_flight.items()):
            if entry.work is not None and entry.work.poll():
                self._in_flight.pop(key, None)
            elif now - entry.started > entry.group.timeout_s and key in self._in_flight:
                abort_job(self.describe_timeout(entry, entry.group.board.read_all()))
            elif not entry.looked and now - entry.started > look_after_s(entry.group) and key in self._in_flight:
                entry.looked = True
                if entry.group.check_collectives and self.describe_mismatch(entry, entry.group.board.read_all()):
                    time.sleep(0.05)  # read again: a row read while its rank was writing it is torn
                    mismatch = self.describe_mismatch(entry, entry.group.board.read_all())
                    if mismatch and key in self._in_flight:
                        abort_job(mismatch)
        for group in list(self._groups):
            error = group.nccl.async_error() if group.nccl is not None else None
            if error is not None:
                abort_job(f"distgrad.distributed: rank {self.world_rank}: NCCL error in group "
                          f"{group.name}: {error}")

    def describe_mismatch(self, entry: _InFlight, rows: list) -> str | None:
        """The abort message when ranks entered ``entry``'s collective number with different
        fingerprints (rows from ``board.read_all``), else None."""
        group = entry.group
        posted = {group.ranks[r]: row[1][entry.seq] for r, row in enumerate(rows)
                  if row is not None and entry.seq in row[1]}
        if len({fp for _, fp in posted.values()}) < 2:
            return None
        message = debug.mismatch_message(group, entry.seq, {rank: fp for rank, (_, fp) in posted.items()})
        return f"distgrad.distributed: rank {self.world_rank}: {message}. Aborting all ranks."

    def describe_timeout(self, entry: _InFlight, rows: list) -> str:
        """The abort message: the collective, its sequence number, and who did not arrive."""
        group = entry.group
        positions = [None if row is None else (row[0], _kind(row)) for row in rows]
        missing = [group.ranks[r] for r, pos in enumerate(positions) if pos is None or pos[0] < entry.seq]
        where = []
        for r, pos in enumerate(positions):
            if pos is None:
                where.append(f"rank {group.ranks[r]} did not answer (busy outside MPI, or gone)")
            elif pos[0] != entry.seq:
                where.append(f"rank {group.ranks[r]} last entered #{pos[0]} ({pos[1]})")
        message = (f"distgrad.distributed: rank {self.world_rank}: collective #{entry.seq} ({entry.kind}) of "
                   f"group {group.name} did not complete within the timeout of {group.timeout_s:g} s. ")
        if missing:
            message += f"Ranks that did not arrive: {missing}"
        else:
            message += ("Every rank entered it: ranks may disagree on what it is (run with "
                        "DISTGRAD_DISTRIBUTED_DEBUG=DETAIL to compare), or the transport is stuck")
        return message + ("; " + "; ".join(where) if where else "") + ". Aborting all ranks."


def look_after_s(group) -> float:
    """How long a collective waits before the watchdog looks for a mismatch across nodes."""
    return min(1.0, group.timeout_s / 4)


def _kind(row) -> str:
    last, entries = row
    return KINDS[entries[last][1][0]] if last in entries else "none"
