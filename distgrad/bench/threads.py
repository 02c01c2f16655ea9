"""How many threads a benchmark process uses: one policy for every benchmark.

NumPy's BLAS (OpenBLAS, MKL) and PyTorch size their thread pools from ``OMP_NUM_THREADS`` and its
siblings when a process starts, so a benchmark never changes its own thread count: whoever starts
the measuring processes sets these variables for them (``thread_env``), and distgrad and PyTorch
then compute on the same number of cores, which keeps their ratio fair. Multi-rank benchmarks give
every rank the same count: one thread per rank for W5 and the overlap measurement, and
``--threads-per-rank`` (``default_threads_per_rank``) for ``distgrad-bench``. A single-process run
started by hand keeps whatever the shell set (both libraries default to every core).
"""
from __future__ import annotations

import os

__all__ = ["THREAD_VARIABLES", "thread_env", "thread_settings", "default_threads_per_rank"]

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def thread_env(threads: int) -> dict[str, str]:
    """The environment that gives a process ``threads`` BLAS/OpenMP threads (NumPy and PyTorch alike)."""
    return {name: str(threads) for name in THREAD_VARIABLES}


def thread_settings() -> dict[str, str | None]:
    """This process's thread variables as it was started with them (None: unset), for the results."""
    return {name: os.environ.get(name) for name in THREAD_VARIABLES}


def default_threads_per_rank(largest_world: int) -> int:
    """SLURM's ``--cpus-per-task`` inside an allocation; elsewhere the cores shared by the largest world
    size, so that every world size of a sweep runs each rank with the same threads."""
    if os.environ.get("SLURM_JOB_ID") and os.environ.get("SLURM_CPUS_PER_TASK", "").isdigit():
        return int(os.environ["SLURM_CPUS_PER_TASK"])
    return max(1, (os.cpu_count() or 1) // largest_world)
