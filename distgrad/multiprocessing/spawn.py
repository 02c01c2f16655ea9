"""``spawn(fn, args=(), nprocs=1, join=True)``: PyTorch's way to start one process per rank.

Process i runs ``fn(i, *args)`` in a fresh interpreter (the ``spawn`` start method: no state, MPI
least of all, is inherited). ``join`` waits for all of them. When one raises, or dies, the others
are ended (SIGTERM, then SIGKILL) -- they may be waiting for it in a collective -- and the parent
raises ``ProcessRaisedException`` with the child's traceback, or ``ProcessExitedException``,
naming the process index (its rank). The children inherit the parent's environment, less the
variables by which an MPI launcher started the parent: they form their own world.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import traceback

__all__ = ["spawn", "start_processes", "ProcessContext", "ProcessRaisedException", "ProcessExitedException"]

_GRACE_S = 5.0  # between SIGTERM and SIGKILL for the processes ended after one failed
# What an MPI launcher sets in its ranks: a child that kept them would think mpiexec started it.
_LAUNCHER_PREFIXES = ("PMI_", "PMIX_", "OMPI_", "HYDRA_", "MPIR_CVAR_CH3", "DISTGRAD_EXPECTED_WORLD_SIZE")


class ProcessException(Exception):
    def __init__(self, msg: str, error_index: int, error_pid: int):
        super().__init__(msg)
        self.msg, self.error_index, self.pid = msg, error_index, error_pid

    def __reduce__(self):
        return type(self), (self.msg, self.error_index, self.pid)


class ProcessRaisedException(ProcessException):
    """A process raised an exception; the message holds its traceback."""


class ProcessExitedException(ProcessException):
    """A process ended with a non-zero exit status, or by a signal, without raising in ``fn``."""

    def __init__(self, msg: str, error_index: int, error_pid: int, exit_code: int, signal_name: str | None = None):
        super().__init__(msg, error_index, error_pid)
        self.exit_code, self.signal_name = exit_code, signal_name

    def __reduce__(self):
        return type(self), (self.msg, self.error_index, self.pid, self.exit_code, self.signal_name)


def _wrap(fn, i: int, args: tuple, error_queue) -> None:
    """The child's entry point: ``fn(i, *args)``; an exception's traceback goes to the parent."""
    try:
        fn(i, *args)
    except KeyboardInterrupt:
        pass  # the parent is ending the job
    except Exception:
        error_queue.put(traceback.format_exc())
        sys.stderr.flush()
        # Leave at once: a normal exit would run atexit handlers (the process group's "exit"
        # collective) that could wait for ranks still in another collective.
        os._exit(1)


class ProcessContext:
    """The processes of one ``start_processes`` call; ``join()`` waits for them (PyTorch's class)."""

    def __init__(self, processes: list, error_queues: list):
        self.processes, self.error_queues = processes, error_queues
        self.sentinels = {p.sentinel: i for i, p in enumerate(processes)}

    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    def join(self, timeout: float | None = None) -> bool:
        """Waits (at most ``timeout`` s) for the processes; True when all ended well, False while some
        still run. A failed process ends the others and raises, naming its index."""
        if not self.sentinels:
            return True
        ready = multiprocessing.connection.wait(list(self.sentinels), timeout=timeout)
        failed = None
        for sentinel in ready:
            i = self.sentinels.pop(sentinel)
            self.processes[i].join()
            if self.processes[i].exitcode != 0 and failed is None:
                failed = i
        if failed is None:
            return not self.sentinels
        self._end_the_others()
        raise self._error_of(failed)

    def _end_the_others(self) -> None:
        alive = [p for p in self.processes if p.is_alive()]
        for p in alive:
            p.terminate()
        for p in alive:
            p.join(_GRACE_S)
            if p.is_alive():
                p.kill()
                p.join()
        self.sentinels.clear()

    def _error_of(self, i: int) -> ProcessException:
        process = self.processes[i]
        if not self.error_queues[i].empty():
            trace = self.error_queues[i].get()
            return ProcessRaisedException(f"\n\n-- Process {i} terminated with the following error:\n{trace}",
                                          i, process.pid)
        code = process.exitcode
        if code < 0:
            name = signal.Signals(-code).name
            return ProcessExitedException(f"process {i} terminated with signal {name}", i, process.pid, code, name)
        return ProcessExitedException(f"process {i} terminated with exit code {code}", i, process.pid, code)


@contextlib.contextmanager
def _without_launcher_variables():
    """``os.environ`` without the MPI launcher's variables while children start."""
    saved = {k: v for k, v in os.environ.items() if k.startswith(_LAUNCHER_PREFIXES)}
    for k in saved:
        del os.environ[k]
    try:
        yield
    finally:
        os.environ.update(saved)


def start_processes(fn, args: tuple = (), nprocs: int = 1, join: bool = True, daemon: bool = False,
                    start_method: str = "spawn"):
    """Starts ``nprocs`` processes running ``fn(i, *args)``; joins them when ``join``, else returns
    their ``ProcessContext``."""
    if nprocs < 1:
        raise ValueError(f"nprocs must be at least 1, got {nprocs}")
    context = multiprocessing.get_context(start_method)
    processes, queues = [], []
    with _without_launcher_variables():
        for i in range(nprocs):
            queue = context.SimpleQueue()
            process = context.Process(target=_wrap, args=(fn, i, args, queue), daemon=daemon)
            process.start()
            processes.append(process)
            queues.append(queue)
    process_context = ProcessContext(processes, queues)
    if not join:
        return process_context
    try:
        while not process_context.join():
            pass
    except KeyboardInterrupt:
        process_context._end_the_others()
        raise
    return None


def spawn(fn, args: tuple = (), nprocs: int = 1, join: bool = True, daemon: bool = False,
          start_method: str = "spawn"):
    """PyTorch's ``torch.multiprocessing.spawn``: runs ``fn(i, *args)`` in ``nprocs`` new processes,
    ``i`` = 0 .. nprocs-1. With ``join`` (default) returns None once all have ended, or raises as soon
    as one fails (after ending the others); otherwise returns a ``ProcessContext``."""
    return start_processes(fn, args, nprocs, join, daemon, start_method)
