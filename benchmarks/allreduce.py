"""W6: all-reduce (sum) of float32 buffers between ranks, distgrad's ``all_reduce`` vs raw mpi4py.

Sizes 4 KiB .. 64 MiB; per size, the median of 20 timed calls after 5 warm-ups, the two libraries
taking turns call by call (and in turn going first) so that both see the same machine load. A call's
time is the slowest rank's. algbw = bytes / time; busbw = algbw x 2 (n - 1) / n (NCCL-tests' rule).
The measurement is ``distgrad.bench.allreduce.sweep`` (which also checks every sum); this script prints
W6's one JSON line (``w6_row``) from rank 0; on one rank the bandwidths are null (nothing moves).
``distgrad-bench allreduce`` sweeps 4 B .. 256 MiB. docs/benchmarks.md defines W6.

    mpiexec -n 2 python benchmarks/allreduce.py        (or: distgrad-launch -n 2 benchmarks/allreduce.py)
"""
from __future__ import annotations

import argparse
import json

import mpi4py

import distgrad.distributed as dist
from distgrad.bench.allreduce import W6_SIZES, sweep, w6_row
from distgrad.bench.machine import environment
from distgrad.distributed import mpi_env


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--reps", type=int, default=20)
    args = p.parse_args()
    dist.init_process_group(backend="mpi")
    rows = sweep({"device": "cpu", "dtypes": ["float32"], "sizes": list(W6_SIZES), "warmup": args.warmup,
                  "reps": args.reps, "min_reps": args.reps, "seconds_per_size": float("inf")})
    if dist.get_rank() == 0:
        print(json.dumps({
            "workload": "W6", "world_size": dist.get_world_size(), "warmup": args.warmup, "reps": args.reps,
            "statistic": "median, slowest rank", "sizes": [w6_row(r) for r in rows],
            "mpi": mpi_env.library_version().splitlines()[0], "mpi4py": mpi4py.__version__, **environment(),
        }), flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
