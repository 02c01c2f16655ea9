"""How many threads each process's BLAS (and OpenMP) uses: ``set_num_threads`` / ``get_num_threads``,
and the default for ranks that share a node.

N ranks on a node, each with a BLAS that starts one thread per core, run N times more threads than
there are cores, and fight over them: a 2-rank epoch ran 2 to 20 times slower under plain ``mpirun``
than under a launcher that set ``OMP_NUM_THREADS``. So the framework chooses, in
``init_process_group``: the cores this process may run on (its affinity mask: SLURM or mpirun
bindings are respected) divided by the ranks of its node that may run on the same cores (found
through MPI's shared-memory split). ``OMP_NUM_THREADS`` (or ``OPENBLAS_NUM_THREADS`` /
``MKL_NUM_THREADS``) and ``set_num_threads`` override it. The BLAS libraries loaded in the process
are driven through ``threadpoolctl``.
"""
from __future__ import annotations

import os

__all__ = ["get_num_threads", "set_num_threads"]

USER_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_chosen_by_user = False
_limits = None  # the threadpoolctl limit in force, kept so it is not undone when collected
_known = None  # the count get_num_threads last read (None: not read since the last limit)


def set_num_threads(n: int) -> None:
    """Sets the number of threads the BLAS (matrix products, convolutions) uses in this process, as
    ``torch.set_num_threads``; the framework's per-rank default no longer applies."""
    global _chosen_by_user
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads expects a positive integer, got {n!r}")
    _chosen_by_user = True
    _limit(n)


def get_num_threads() -> int:
    """The number of threads the BLAS uses in this process (the largest, if several are loaded)."""
    global _known
    from threadpoolctl import threadpool_info

    counts = [lib["num_threads"] for lib in threadpool_info() if lib.get("user_api") == "blas"]
    _known = max(counts) if counts else len(_cores())
    return _known


def cached_num_threads() -> int:
    """``get_num_threads()`` as last read: asking the libraries takes milliseconds, too long for every op
    (``distgrad.parallel`` sizes its pool by it). Changes made through ``set_num_threads`` and the rank
    default are seen; a ``threadpoolctl`` limit set directly is not."""
    return _known if _known is not None else get_num_threads()


def _limit(n: int) -> None:
    global _limits, _known
    _known = None
    import numpy  # noqa: F401  (its BLAS must be loaded for the limit to reach it)
    from threadpoolctl import threadpool_limits

    _limits = threadpool_limits(limits=n)


def _cores() -> set:
    try:
        return os.sched_getaffinity(0)
    except AttributeError:  # not Linux
        return set(range(os.cpu_count() or 1))


def threads_per_rank(mine: set, node_masks: list) -> int:
    """Cores of ``mine`` divided among the node's ranks whose masks overlap it (itself included)."""
    sharing = sum(1 for mask in node_masks if set(mask) & mine) or 1
    return max(1, len(mine) // sharing)


def choose_for_ranks(node_comm) -> int | None:
    """Limits this rank's BLAS threads to its share of the node's cores (collective over
    ``node_comm``, the ranks of this node); returns the count, or None when the user chose."""
    mine = _cores()
    masks = node_comm.allgather(sorted(mine))  # every rank takes part, whatever it then decides
    if _chosen_by_user or any(os.environ.get(name) for name in USER_VARIABLES):
        return None
    n = threads_per_rank(mine, masks)
    _limit(n)
    return n
