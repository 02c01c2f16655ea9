"""The all-reduce sweep: time, algorithm and bus bandwidth per message size, each result checked.

Per size and dtype: the sum of a known pattern is checked against its exact value, then the timed
calls run on a zero buffer (repeated sums of zeros stay finite and cost the same). A call's time is
the slowest rank's, all ranks starting together after a barrier; the figure is the median of the
calls. Large sizes get fewer calls (at least ``min_reps``) so that a sweep to 256 MiB takes seconds.
On the MPI backend with host buffers, raw mpi4py ``Allreduce`` runs beside distgrad's, the two
taking turns call by call, as the reference for distgrad's own overhead. ``algorithms`` adds the
hierarchical all-reduce (``dist.hierarchical_all_reduce``), with nodes of ``ranks_per_node``
consecutive ranks when given (one machine playing several nodes), else the ranks sharing memory.
"""
from __future__ import annotations

import math
import os
import time

import numpy as np

from distgrad.bench.metrics import allreduce_bandwidths, median
from distgrad.bench.ranks import rank_device

__all__ = ["message_sizes", "sweep", "worker", "w6_row", "W6_SIZES"]

W6_SIZES = (4 << 10, 64 << 10, 1 << 20, 16 << 20, 64 << 20)


def message_sizes(min_bytes: int, max_bytes: int, factor: int = 2) -> list[int]:
    """``min_bytes``, ``min_bytes * factor``, ... up to ``max_bytes`` (nccl-tests' ``-b -e -f``)."""
    if min_bytes < 1 or max_bytes < min_bytes or factor < 2:
        raise ValueError(f"need 1 <= min_bytes <= max_bytes and factor >= 2, got {min_bytes}, {max_bytes}, {factor}")
    sizes = [min_bytes]
    while sizes[-1] * factor <= max_bytes:
        sizes.append(sizes[-1] * factor)
    return sizes


def exact_integers(dtype) -> int:
    """The largest n such that every integer up to n is exactly representable in ``dtype``."""
    dtype = np.dtype(dtype)
    return 2 ** (np.finfo(dtype).nmant + 1) if dtype.kind == "f" else int(np.iinfo(dtype).max)


def pattern_period(rank: int, world_size: int, dtype) -> np.ndarray:
    """Rank ``rank``'s values, repeating with period 4: ((rank + i) mod 4) + 1, so that every element's
    sum over ranks changes when a rank's contribution is lost or doubled, or when the ranks' values
    are combined by another operation than a sum. Where sums up to 4 x world_size would not be exact
    in ``dtype`` (float16 beyond 512 ranks) every value is 1 instead: sums up to world_size."""
    if 4 * world_size > exact_integers(dtype):
        return np.ones(4, dtype)
    return ((np.arange(4) + rank) % 4 + 1).astype(dtype)


def expected_period(world_size: int, dtype) -> np.ndarray:
    """The exact sum over ranks of ``pattern_period`` (float64)."""
    return sum(pattern_period(r, world_size, dtype).astype(np.float64) for r in range(world_size))


def fill_periodic(array, period) -> None:
    """``array`` (1-d) becomes ``period`` repeated, without building a second array of its size."""
    xp_period = _like(array, period)
    head = array.size - array.size % 4
    array[:head].reshape(-1, 4)[...] = xp_period
    array[head:] = xp_period[:array.size - head]


def max_error(array, period) -> float:
    xp_period = _like(array, period)
    head = array.size - array.size % 4
    errors = [float(abs(array[:head].reshape(-1, 4).astype(np.float64) - xp_period).max())] if head else []
    if head < array.size:
        errors.append(float(abs(array[head:].astype(np.float64) - xp_period[:array.size - head]).max()))
    return max(errors)


def _like(array, values):
    from distgrad import backend
    return backend.to_device(np.asarray(values, dtype=np.float64 if values.dtype.kind == "f" else values.dtype),
                             backend.device_of(array))


def tolerance(dtype, world_size: int) -> float:
    """0 (the check is exact) while the pattern's sums are exactly representable; past that (float16
    beyond 2048 ranks) one rounding per rank."""
    if world_size <= exact_integers(dtype):
        return 0.0
    return float(np.finfo(dtype).eps) * world_size * world_size


def worker(params: dict, progress) -> dict:
    """One rank of the sweep (started by ``distgrad-bench allreduce``); rank 0's return value is the result."""
    import distgrad.distributed as dist
    dist.init_process_group(params["backend"])
    return {"rows": sweep(params, progress)}


def sweep(params: dict, progress=lambda label: None) -> list[dict]:
    """The sweep on this rank of the default process group (already initialised): one row per dtype and size.

    ``params``: ``device`` ('cpu' or 'cuda'), ``dtypes``, ``sizes`` (bytes), ``warmup``, ``reps``,
    ``min_reps``, ``seconds_per_size``; ``compare_mpi4py`` (default True) adds raw mpi4py's figures;
    ``algorithms`` (default ``["flat"]``, or with ``"hierarchical"``) and ``ranks_per_node``.
    """
    import distgrad as dg
    import distgrad.distributed as dist
    from distgrad import backend, envvars
    from distgrad.distributed import world as dist_world
    from mpi4py import MPI

    if params.get("ranks_per_node"):
        os.environ[envvars.FAKE_RANKS_PER_NODE] = str(params["ranks_per_node"])  # read by the first call
    # the default group's communicator: MPI_COMM_WORLD under mpiexec, the joined world after a rendezvous
    comm, rank, world = dist_world.resolve_group(None).mpi.comm, dist.get_rank(), dist.get_world_size()
    backend_name = dist.get_backend()
    device = rank_device(params["device"])
    on_gpu = device != "cpu"
    with_mpi4py = backend_name == "mpi" and not on_gpu and params.get("compare_mpi4py", True)

    def timed(call) -> float:
        comm.Barrier()
        start = time.perf_counter()
        call()
        if on_gpu:
            backend.synchronize()
        return comm.allreduce(time.perf_counter() - start, op=MPI.MAX)

    rows = []
    for algorithm, dtype_name, nbytes in [(a, d, n) for a in params.get("algorithms", ["flat"])
                                          for d in params["dtypes"] for n in params["sizes"]]:
        reduce = dist.all_reduce if algorithm == "flat" else dist.hierarchical_all_reduce
        dtype = np.dtype(dtype_name)
        count = max(1, nbytes // dtype.itemsize)
        tensor = dg.zeros(count, dtype=getattr(dg, dtype_name), device=device)
        fill_periodic(tensor.array, pattern_period(rank, world, dtype))
        reduce(tensor)
        error = max_error(tensor.array, expected_period(world, dtype))
        tensor.array[...] = 0
        raw = np.zeros(count, dtype) if with_mpi4py and algorithm == "flat" else None
        calls = {"distgrad": lambda: reduce(tensor)}
        if raw is not None:
            calls["mpi4py"] = lambda: comm.Allreduce(MPI.IN_PLACE, raw, op=MPI.SUM)
        times = _time_calls(calls, timed, params["warmup"], params["reps"], params["min_reps"],
                            params["seconds_per_size"])
        row = {"backend": backend_name, "device": device.split(":")[0], "dtype": dtype.name, "algorithm": algorithm,
               "ranks_per_node": params.get("ranks_per_node") if algorithm != "flat" else None,
               "world_size": world, "bytes": count * dtype.itemsize, "count": count,
               "calls": len(times["distgrad"]), "correct": error <= tolerance(dtype, world), "max_error": error}
        for name, samples in times.items():
            seconds = median(samples)
            prefix = "" if name == "distgrad" else "mpi4py_"
            row[prefix + "time_us"] = seconds * 1e6
            row[prefix + "algbw_GBps"], row[prefix + "busbw_GBps"] = allreduce_bandwidths(row["bytes"], seconds,
                                                                                          world)
        rows.append(row)
        progress(f"{backend_name} {algorithm} {dtype.name} {row['bytes']} B on {world} rank(s)")
        del tensor, raw
    return rows


def _time_calls(calls: dict, timed, warmup: int, reps: int, min_reps: int, seconds_per_size: float) -> dict:
    """Times of each call (the callers take turns, in alternating order); as many repetitions as fit
    in ``seconds_per_size``, between ``min_reps`` and ``reps``. ``timed`` returns the slowest rank's
    time, the same number on every rank, so every rank decides on the same count."""
    for _ in range(warmup):
        for call in calls.values():
            call()
    order = list(calls.items())
    times = {name: [timed(call)] for name, call in order}
    per_round = sum(t[0] for t in times.values())
    fitting = seconds_per_size / max(per_round, 1e-9)
    rounds = max(min_reps, min(reps, math.ceil(fitting))) if math.isfinite(fitting) else reps
    for rep in range(1, rounds):
        for name, call in order if rep % 2 == 0 else order[::-1]:
            times[name].append(timed(call))
    return times


def w6_row(row: dict) -> dict:
    """A sweep row in W6's names: each library's time, algbw and busbw, and distgrad's busbw over raw mpi4py's."""
    out = {"bytes": row["bytes"], "correct": row["correct"]}
    for name, prefix in (("mpi4py", "mpi4py_"), ("distgrad", "")):
        out[f"{name}_us"] = round(row[prefix + "time_us"], 2)
        for figure in ("algbw_GBps", "busbw_GBps"):
            value = row[prefix + figure]
            out[f"{name}_{figure}"] = None if value is None else round(value, 3)
    out["busbw_ratio"] = None if row["world_size"] < 2 else \
        round(out["distgrad_busbw_GBps"] / out["mpi4py_busbw_GBps"], 3)
    return out
