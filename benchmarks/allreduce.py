"""W6: all-reduce (sum) of float32 buffers between ranks, distgrad's ``all_reduce`` vs raw mpi4py.

Sizes 4 KiB .. 64 MiB; per size, the median of 20 timed calls after 5 warm-ups, the two libraries
taking turns call by call (and in turn going first) so that both see the same machine load. A call's
time is the slowest rank's. algbw = bytes / time; busbw = algbw x 2 (n - 1) / n (NCCL-tests' rule).
Prints one JSON line from rank 0.

    mpiexec -n 2 python benchmarks/allreduce.py        (or: distgrad-launch -n 2 benchmarks/allreduce.py)
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import mpi4py
import numpy as np
from mpi4py import MPI

import distgrad as dg
import distgrad.distributed as dist
from common import environment
from distgrad.distributed import mpi_env

SIZES = (4 << 10, 64 << 10, 1 << 20, 16 << 20, 64 << 20)


def timed(call, comm) -> float:
    """Seconds ``call()`` took on the slowest rank, starting together after a barrier."""
    comm.Barrier()
    start = time.perf_counter()
    call()
    return comm.allreduce(time.perf_counter() - start, op=MPI.MAX)


def measure(nbytes: int, comm, warmup: int, reps: int) -> dict:
    raw = np.zeros(nbytes // 4, np.float32)  # zeros: repeated sums stay finite and equally fast
    tensor = dg.from_numpy(np.zeros(nbytes // 4, np.float32))

    def with_mpi4py():
        comm.Allreduce(MPI.IN_PLACE, raw, op=MPI.SUM)

    def with_distgrad():
        dist.all_reduce(tensor)

    for _ in range(warmup):
        with_mpi4py()
        with_distgrad()
    times = {"mpi4py": [], "distgrad": []}
    order = [("mpi4py", with_mpi4py), ("distgrad", with_distgrad)]
    for rep in range(reps):
        for name, call in order if rep % 2 == 0 else order[::-1]:
            times[name].append(timed(call, comm))
    n = comm.Get_size()
    row = {"bytes": nbytes}
    for name, samples in times.items():
        seconds = statistics.median(samples)
        algbw = nbytes / seconds / 1e9
        row[f"{name}_us"] = round(seconds * 1e6, 2)
        row[f"{name}_algbw_GBps"] = round(algbw, 3)
        row[f"{name}_busbw_GBps"] = round(algbw * 2 * (n - 1) / n, 3)
    row["busbw_ratio"] = round(row["distgrad_busbw_GBps"] / row["mpi4py_busbw_GBps"], 3) if n > 1 else None
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--reps", type=int, default=20)
    args = p.parse_args()
    dist.init_process_group(backend="mpi")
    comm = MPI.COMM_WORLD
    rows = [measure(nbytes, comm, args.warmup, args.reps) for nbytes in SIZES]
    if comm.Get_rank() == 0:
        print(json.dumps({
            "workload": "W6", "world_size": comm.Get_size(), "warmup": args.warmup, "reps": args.reps,
            "statistic": "median, slowest rank", "sizes": rows,
            "mpi": mpi_env.library_version().splitlines()[0], "mpi4py": mpi4py.__version__, **environment(),
        }), flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
