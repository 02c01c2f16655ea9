"""The cost of the default check of collectives (``debug``: fingerprints on the progress board) on
W6's all-reduce: distgrad's ``all_reduce`` with the check on and off, in one run, call by call.

Per W6 size (4 KiB .. 64 MiB float32, sum): after warm-ups, ``--reps`` pairs of calls, on then off
(the order alternating pair by pair); a call's time is the slowest rank's; the medians give
``busbw_ratio = busbw(on) / busbw(off)`` (1.0 = free; the target is >= 0.98). ``--rounds`` repeats
the whole sweep. One JSON line from rank 0.

    mpiexec -n 2 python benchmarks/collective_check.py [--reps 50] [--rounds 3]
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

import distgrad as dg
import distgrad.distributed as dist
from distgrad.bench.machine import environment
from distgrad.distributed import world

SIZES = (4 << 10, 64 << 10, 1 << 20, 16 << 20, 64 << 20)


def one_size(nbytes: int, reps: int, warmup: int) -> dict:
    group = world.resolve_group(None)
    tensor = dg.ones(nbytes // 4, dtype=dg.float32)
    times = {True: [], False: []}
    for i in range(warmup + reps):
        for check in ((True, False) if i % 2 == 0 else (False, True)):
            group.check_collectives = check
            dist.barrier()
            start = time.perf_counter()
            dist.all_reduce(tensor)
            elapsed = time.perf_counter() - start
            if i >= warmup:
                times[check].append(elapsed)
    group.check_collectives = True
    slowest = {}
    for check, values in times.items():  # a call's time is its slowest rank's
        mine = dg.tensor(np.array(values))
        dist.all_reduce(mine, op=dist.ReduceOp.MAX)
        slowest[check] = float(np.median(mine.numpy()))
    n = dist.get_world_size()
    busbw = {check: nbytes / t * 2 * (n - 1) / n / 1e9 for check, t in slowest.items()}
    return {"bytes": nbytes, "on_us": round(slowest[True] * 1e6, 2), "off_us": round(slowest[False] * 1e6, 2),
            "busbw_on_GBps": round(busbw[True], 3), "busbw_off_GBps": round(busbw[False], 3),
            "busbw_ratio": round(busbw[True] / busbw[False], 4)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    dist.init_process_group(backend="mpi")
    rounds = [[one_size(size, args.reps, args.warmup) for size in SIZES] for _ in range(args.rounds)]
    if dist.get_rank() == 0:
        ratios = {size: [r[i]["busbw_ratio"] for r in rounds] for i, size in enumerate(SIZES)}
        print(json.dumps({"benchmark": "collective_check", "workload": "W6 sizes", "world_size": dist.get_world_size(),
                          "reps": args.reps, "rounds": rounds,
                          "median_busbw_ratio_by_bytes": {s: float(np.median(v)) for s, v in ratios.items()},
                          **environment()}), flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
