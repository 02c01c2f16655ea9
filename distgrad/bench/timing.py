"""Clocks for benchmarks: warm-up calls, timed repeats, medians, and a device that has finished.

A GPU runs asynchronously: a clock read right after a call would time the launch, not the work.
Every clock here therefore calls ``synchronize`` (a no-argument function: ``Framework.synchronizer``
or ``distgrad.backend.synchronize``) before it is read; on the CPU it does nothing.
"""
from __future__ import annotations

import statistics
import time

__all__ = ["no_sync", "synchronized_clock", "sample_seconds", "median_seconds", "seconds_per_call"]


def no_sync() -> None:
    """The CPU's synchronize: nothing is in flight."""


def synchronized_clock(synchronize=no_sync):
    """``clock()``: ``time.perf_counter()`` read once the device has finished what was queued."""
    def clock() -> float:
        synchronize()
        return time.perf_counter()
    return clock


def sample_seconds(run, reps: int, warmup: int = 0, synchronize=no_sync) -> list[float]:
    """Seconds of each of ``reps`` calls of ``run()``, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        run()
    clock = synchronized_clock(synchronize)
    times = []
    for _ in range(reps):
        start = clock()
        run()
        times.append(clock() - start)
    return times


def median_seconds(run, reps: int, warmup: int = 0, synchronize=no_sync) -> float:
    """The median of ``sample_seconds``: robust to a call slowed by another process on a shared machine."""
    return statistics.median(sample_seconds(run, reps, warmup, synchronize))


def seconds_per_call(run, calls: int, warmup: int, barrier=no_sync) -> float:
    """One clock around ``calls`` calls of ``run(i)`` (i = 0, 1, ...), divided by ``calls``: the rate of a
    free-running loop, as training runs. ``barrier()`` before both readings (all ranks have finished; on
    a GPU it should also synchronise)."""
    for i in range(warmup):
        run(i)
    barrier()
    start = time.perf_counter()
    for i in range(calls):
        run(i)
    barrier()
    return (time.perf_counter() - start) / calls
