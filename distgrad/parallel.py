"""Every core for NumPy's element-wise work: a small pool of threads that share out an op's blocks.

PyTorch runs its element-wise kernels on all the threads of its intra-op pool; a NumPy ufunc runs on the
calling thread alone. But NumPy releases the GIL inside a ufunc's loop (above a few hundred elements),
and so does BLAS inside a matrix product, so Python threads that each run an op's formula on their own
block of its arrays compute at the same time. Two entry points:

- ``run(task, count)`` calls ``task(i)`` for every i in range(count), on the pool's threads and the
  caller's, and returns when all are done (the first exception raised by a task is raised again);
- ``blockwise(fn, *arrays)`` computes an element-wise formula ``fn(xp, *arrays)`` block by block, each
  block's result written into one output: the blocks fit the L2 cache (many steps, one pass over memory)
  and are shared out with ``run``.

Each block is computed by the same calls whichever thread runs it, so the result is bitwise the serial
one. Blocks are handed out one at a time from a shared counter rather than split up front: on a machine
shared with other processes, a worker the OS keeps waiting takes fewer blocks and the caller more, instead
of every core waiting for the slowest (and a worker lost across ``fork`` takes none).

How many threads: ``get_num_threads()`` (the caller and ``n - 1`` workers, started on first use), so
``dg.set_num_threads`` and the per-rank default of ``init_process_group`` govern this pool as they govern
the BLAS, as ``torch.set_num_threads`` governs PyTorch's. Work below ``MIN_PARALLEL_ELEMENTS`` elements runs
on the caller alone (waking a thread costs tens of microseconds), as does a call from inside a task or
from a second thread while the pool is busy, and CuPy arrays are never split (one kernel does the whole).
"""
from __future__ import annotations

import itertools
import os
import queue
import threading

import numpy as np

from distgrad import threads
from distgrad.backend import array_module

__all__ = ["MIN_PARALLEL_ELEMENTS", "BLOCK_ELEMENTS", "run", "blockwise", "row_blocks", "worth_splitting"]

MIN_PARALLEL_ELEMENTS = 1 << 17
"""Elements below which an op runs on the calling thread: at 128 Ki float32 elements a formula of a few
passes takes about 100 us, and handing blocks to a worker pays from there (W7's GELU, 1 Mi elements,
and LayerNorm, 256 Ki, are above; a bias's gradient is below)."""

BLOCK_ELEMENTS = 1 << 16
"""Elements per block of ``blockwise``: its temporaries (256 KiB each in float32) stay in a 1 MiB L2 cache."""


class _Job:
    """``task(i)`` for i in range(count), the indices taken one at a time by whichever thread asks next."""

    def __init__(self, task, count: int):
        self.task, self.count = task, count
        self._next = itertools.count()  # next() on it is atomic under the GIL
        self._lock = threading.Lock()
        self._done = 0
        self.error = None
        self.finished = threading.Event()

    def work(self) -> None:
        while (i := next(self._next)) < self.count:
            try:
                self.task(i)
            except BaseException as error:  # raised again in the caller, once every task has ended
                self.error = self.error or error
            with self._lock:
                self._done += 1
                if self._done == self.count:
                    self.finished.set()


class _Pool:
    def __init__(self):
        self._inbox: list[queue.SimpleQueue] = []  # one per worker
        self._busy = threading.Lock()
        self._local = threading.local()

    def run(self, task, count: int, workers: int) -> None:
        if count <= 0:
            return
        if workers < 1 or count < 2 or getattr(self._local, "in_task", False) or not self._busy.acquire(False):
            for i in range(count):  # on this thread, in order
                task(i)
            return
        try:
            job = _Job(task, count)
            self._start(workers)
            for inbox in self._inbox[:min(workers, count - 1)]:
                inbox.put(job)
            self._local.in_task = True
            try:
                job.work()
            finally:
                self._local.in_task = False
            job.finished.wait()
        finally:
            self._busy.release()
        if job.error is not None:
            raise job.error

    def _start(self, workers: int) -> None:
        while len(self._inbox) < workers:
            inbox = queue.SimpleQueue()
            threading.Thread(target=self._serve, args=(inbox,), name=f"distgrad-parallel-{len(self._inbox)}",
                             daemon=True).start()
            self._inbox.append(inbox)

    def _serve(self, inbox: queue.SimpleQueue) -> None:
        self._local.in_task = True  # a task that calls run() again runs its blocks itself
        while True:
            inbox.get().work()


_pool = _Pool()


def _forget_pool_in_child() -> None:
    global _pool
    _pool = _Pool()  # a forked child has the parent's objects but none of its threads


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_in_child)


def worth_splitting(work) -> bool:
    """Whether tasks on ``work`` (an array as large as what they compute) go to the pool: a NumPy array
    of at least ``MIN_PARALLEL_ELEMENTS`` elements, and more than one thread."""
    return (isinstance(work, np.ndarray) and work.size >= MIN_PARALLEL_ELEMENTS
            and threads.cached_num_threads() > 1)


def run(task, count: int, work) -> None:
    """``task(i)`` for i in range(count), on this thread and the pool's; returns once all have run.

    ``work``: an array as large as what the tasks compute in all (the output, say). CuPy arrays, and NumPy
    ones below ``MIN_PARALLEL_ELEMENTS``, have the tasks run here, in order. Tasks run concurrently
    otherwise: they must write disjoint parts of their outputs.
    """
    if not worth_splitting(work):
        for i in range(count):
            task(i)
        return
    _pool.run(task, count, threads.cached_num_threads() - 1)


def row_blocks(rows: int, row_elements: int) -> list:
    """Slices of ``rows`` rows of ``row_elements`` each, about ``BLOCK_ELEMENTS`` elements per slice
    (at least one row)."""
    step = max(1, BLOCK_ELEMENTS // max(1, row_elements))
    return [slice(i, min(i + step, rows)) for i in range(0, rows, step)]


def blockwise(fn, *arrays):
    """``fn(xp, *arrays)`` for same-shaped arrays, computed block by block on the CPU (on the pool's
    threads when the arrays are large); ``fn`` must be element-wise and return a new array.

    A formula of many element-wise steps makes one pass over memory per step on whole arrays; on
    blocks, all steps but the first read and the last write stay in cache (GELU's forward and
    backward: about 3x faster on W7's 1M-element activations). CuPy gets the whole arrays.
    """
    first = arrays[0]
    xp = array_module(first)
    if (xp is not np or first.size <= 2 * BLOCK_ELEMENTS
            or any(a.shape != first.shape or not a.flags.c_contiguous for a in arrays)):
        return fn(xp, *arrays)
    flat = [a.reshape(-1) for a in arrays]
    blocks = row_blocks(first.size, 1)
    out = []  # [the output array], made by the first block to finish, when its dtype is known
    made = threading.Lock()

    def compute(i):
        block = blocks[i]
        result = fn(xp, *(a[block] for a in flat))
        if not out:
            with made:
                if not out:
                    out.append(np.empty(first.size, result.dtype))
        out[0][block] = result

    run(compute, len(blocks), first)
    return out[0].reshape(first.shape)
