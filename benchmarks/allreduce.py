"""W6: all-reduce (sum) of float32 buffers between ranks, distgrad's ``all_reduce`` vs raw mpi4py.

Sizes 4 KiB .. 64 MiB; per size, the median of 20 timed calls after 5 warm-ups, the two libraries
taking turns call by call (and in turn going first) so that both see the same machine load. A call's
time is the slowest rank's. algbw = bytes / time; busbw = algbw x 2 (n - 1) / n (NCCL-tests' rule).
The measurement is ``distgrad.bench.allreduce.sweep`` (which also checks every sum); this script keeps
W6's sizes and its one JSON line, printed by rank 0. ``distgrad-bench allreduce`` sweeps 4 B .. 256 MiB.

    mpiexec -n 2 python benchmarks/allreduce.py        (or: distgrad-launch -n 2 benchmarks/allreduce.py)
"""
from __future__ import annotations

import argparse
import json

import mpi4py

import distgrad.distributed as dist
from common import environment
from distgrad.bench.allreduce import sweep
from distgrad.distributed import mpi_env

SIZES = (4 << 10, 64 << 10, 1 << 20, 16 << 20, 64 << 20)


def w6_row(row: dict) -> dict:
    """A sweep row in W6's names: each library's time, algbw and busbw, and distgrad's busbw over raw mpi4py's."""
    out = {"bytes": row["bytes"], "correct": row["correct"]}
    for name, prefix in (("mpi4py", "mpi4py_"), ("distgrad", "")):
        out[f"{name}_us"] = round(row[prefix + "time_us"], 2)
        out[f"{name}_algbw_GBps"] = round(row[prefix + "algbw_GBps"], 3)
        out[f"{name}_busbw_GBps"] = round(row[prefix + "busbw_GBps"], 3)
    out["busbw_ratio"] = round(out["distgrad_busbw_GBps"] / out["mpi4py_busbw_GBps"], 3) \
        if row["world_size"] > 1 else None
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--reps", type=int, default=20)
    args = p.parse_args()
    dist.init_process_group(backend="mpi")
    rows = sweep({"device": "cpu", "dtypes": ["float32"], "sizes": list(SIZES), "warmup": args.warmup,
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
