"""How much of DDP's all-reduce hides behind backward: backward+sync against backward alone plus all-reduce alone.

On 2 ranks (``mpiexec -n 2``, started by this script; one thread each), for an MLP spanning at least
4 buckets, every figure a median over ``--steps`` steps, all ranks aligned by a barrier before each:
- ``backward_ms``: ``loss.backward()`` of the plain model;
- ``all_reduce_ms``: the same buckets' all-reduces alone (launched asynchronously in order, then waited);
- ``ddp_backward_ms``: ``loss.backward()`` of the DDP model (gradients ready and averaged);
- ``ddp_no_overlap_ms``: the same with every all-reduce deferred to the end of backward (a comm hook).
``overlap_ratio = ddp_backward_ms / (backward_ms + all_reduce_ms)`` (below 1: communication was hidden),
``hidden_fraction = (backward_ms + all_reduce_ms - ddp_backward_ms) / all_reduce_ms``.
Prints one JSON line. Usage: python benchmarks/ddp_overlap.py [--steps 30] [--width 1024] [--bucket-cap-mb 4]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

from common import environment

ONE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
BATCH = 64


def worker(args) -> dict:
    import distgrad as dg
    import distgrad.distributed as dist
    import distgrad.nn.functional as F
    from distgrad import nn
    from distgrad.distributed import comm_hooks, ReduceOp

    dist.init_process_group("mpi")
    rank = dist.get_rank()

    def mlp():
        dg.manual_seed(0)
        sizes = [784] + [args.width] * args.depth + [10]
        layers = []
        for a, b in zip(sizes, sizes[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        return nn.Sequential(*layers[:-1])

    rng = np.random.default_rng(rank)
    x, y = dg.tensor(rng.standard_normal((BATCH, 784)).astype(np.float32)), dg.tensor(rng.integers(0, 10, BATCH))

    def backward_time(model) -> float:
        loss = F.cross_entropy(model(x), y)
        for p in model.parameters():
            p.grad = None
        dist.barrier()
        start = time.perf_counter()
        loss.backward()
        return time.perf_counter() - start

    def all_reduce_time(buckets) -> float:
        dist.barrier()
        start = time.perf_counter()
        works = [dist.all_reduce(b.buffer(), op=ReduceOp.AVG, async_op=True) for b in buckets]
        for work in works:
            work.wait()
        return time.perf_counter() - start

    def deferred(state, bucket):  # starts the all-reduce only when the end of backward waits for it
        return comm_hooks.CommFuture(None, then=lambda: comm_hooks.allreduce_hook(state, bucket).wait())

    plain, ddp, no_overlap = mlp(), dist.DistributedDataParallel(mlp(), bucket_cap_mb=args.bucket_cap_mb), \
        dist.DistributedDataParallel(mlp(), bucket_cap_mb=args.bucket_cap_mb)
    no_overlap.register_comm_hook(None, deferred)
    buckets = ddp.reducer.buckets
    figures = {"backward_ms": lambda: backward_time(plain), "all_reduce_ms": lambda: all_reduce_time(buckets),
               "ddp_backward_ms": lambda: backward_time(ddp), "ddp_no_overlap_ms": lambda: backward_time(no_overlap)}
    times = {name: [] for name in figures}
    for step in range(args.warmup + args.steps):
        for name, measure in figures.items():  # interleaved, so that drifts in machine load hit all alike
            seconds = measure()
            if step >= args.warmup:
                times[name].append(seconds * 1000)
    result = {name: statistics.median(t) for name, t in times.items()}
    result["buckets"] = len(ddp.reducer.buckets)
    result["bucket_mib"] = [round(b.nbytes() / 2**20, 3) for b in ddp.reducer.buckets]
    dist.destroy_process_group()
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--width", type=int, default=1024)
    p.add_argument("--depth", type=int, default=4, help="hidden layers")
    p.add_argument("--bucket-cap-mb", type=float, default=4)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        result = worker(args)
        if int(os.environ.get("PMI_RANK", "0")) == 0:
            print(json.dumps(result), flush=True)
        return
    from distgrad.launch import mpi
    mpiexec = mpi.find_mpiexec()
    program = [sys.executable, os.path.abspath(__file__), "--worker"] + sys.argv[1:]
    done = subprocess.run(mpi.mpiexec_command(2, program, mpiexec, mpi.mpiexec_flavour(mpiexec)),
                          env={**os.environ, **ONE_THREAD}, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    figures = json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][0])
    separate = figures["backward_ms"] + figures["all_reduce_ms"]
    print(json.dumps({"benchmark": "ddp_overlap", "world_size": 2, "per_rank_batch": BATCH, "width": args.width,
                      "depth": args.depth, "bucket_cap_mb": args.bucket_cap_mb, "steps": args.steps, **figures,
                      "overlap_ratio": figures["ddp_backward_ms"] / separate,
                      "hidden_fraction": (separate - figures["ddp_backward_ms"]) / figures["all_reduce_ms"],
                      **environment(), "threads": ONE_THREAD}))


if __name__ == "__main__":
    main()
