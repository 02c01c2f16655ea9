"""How much of DDP's all-reduce hides behind backward: backward+sync against backward alone plus all-reduce alone.

On 2 ranks (started by this script, one thread each), for an MLP of ``--depth`` hidden layers of
``--width`` spanning at least 4 buckets, every figure the median over ``--steps`` steps of the
slowest rank's time, all ranks aligned by a barrier before each:
- ``backward_ms``: ``loss.backward()`` of the plain model;
- ``all_reduce_ms``: the same buckets' all-reduces alone (launched asynchronously in order, then waited);
- ``ddp_backward_ms``: ``loss.backward()`` of the DDP model (gradients ready and averaged);
- ``ddp_no_overlap_ms``: the same with every all-reduce deferred to the end of backward (a comm hook).
``overlap_ratio = ddp_backward_ms / (backward_ms + all_reduce_ms)`` (below 1: communication was hidden),
``hidden_fraction = (backward_ms + all_reduce_ms - ddp_backward_ms) / all_reduce_ms``.
The measurement is ``distgrad.bench.ddp`` (the one behind ``distgrad-bench ddp``'s *hidden* column).
Prints one JSON line. Usage: python benchmarks/ddp_overlap.py [--steps 30] [--width 1024] [--bucket-cap-mb 4]
"""
from __future__ import annotations

import argparse
import json

from distgrad.bench.machine import environment
from distgrad.bench.metrics import overlap_ratio
from distgrad.bench.ranks import run_task
from distgrad.bench.threads import thread_env
from distgrad.bench.workloads import BATCH


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--width", type=int, default=1024)
    p.add_argument("--depth", type=int, default=4, help="hidden layers")
    p.add_argument("--bucket-cap-mb", type=float, default=4)
    args = p.parse_args()
    # the synthetic model's depth counts the width x width layers, after the first hidden layer
    config = {"model": "synthetic", "width": args.width, "depth": args.depth - 1, "per_rank_batch": BATCH,
              "bucket_cap_mb": args.bucket_cap_mb, "no_overlap": True, "tags": ["overlap"]}
    params = {"backend": "mpi", "device": "cpu", "steps": args.steps, "warmup": args.warmup, "configs": [config]}
    row = run_task("ddp", params, 2, threads=1)["rows"][0]
    figures = {"backward_ms": row["plain_backward_ms"], "all_reduce_ms": row["allreduce_ms"],
               "ddp_backward_ms": row["backward_ms"], "ddp_no_overlap_ms": row["no_overlap_backward_ms"],
               "buckets": len(row["buckets"]), "bucket_mib": [round(b / 2**20, 3) for b in row["buckets"]]}
    print(json.dumps({"benchmark": "ddp_overlap", "world_size": 2, "per_rank_batch": BATCH, "width": args.width,
                      "depth": args.depth, "bucket_cap_mb": args.bucket_cap_mb, "steps": args.steps, **figures,
                      "overlap_ratio": overlap_ratio(row["plain_backward_ms"], row["allreduce_ms"], row["backward_ms"]),
                      "hidden_fraction": row["hidden_fraction"], **environment(), "threads": thread_env(1)}))


if __name__ == "__main__":
    main()
