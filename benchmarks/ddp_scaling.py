"""W5: data-parallel scaling of W1's MLP on one machine, distgrad DDP (MPI) vs PyTorch DDP (gloo).

Per-rank batch 64, one thread per process, 300 steps after 20 warm-ups; inputs are synthetic (the
step time does not depend on the pixel values). World size 1 is the plain model in one process (no
DDP, no launcher); world size 2 is DDP on 2 ranks. Scaling efficiency is
``throughput(2) / (2 x throughput(1))``. Each configuration runs ``--repeats`` times; medians are quoted.
The measurement is ``distgrad.bench.throughput`` (docs/benchmarks.md defines W5). Prints one JSON line.
Usage: python benchmarks/ddp_scaling.py [--steps 300] [--repeats 3] [--skip-torch]
"""
from __future__ import annotations

import argparse
import json

from distgrad.bench import frameworks, throughput
from distgrad.bench.machine import environment
from distgrad.bench.threads import thread_env
from distgrad.bench.workloads import BATCH


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--skip-torch", action="store_true")
    args = p.parse_args()
    ours, theirs = frameworks.measure_both(lambda fw: throughput.measure(fw.name, args.steps, args.warmup, args.repeats),
                                           args.skip_torch)
    print(json.dumps({"workload": "W5", "per_rank_batch": BATCH, "steps": args.steps, "warmup": args.warmup,
                      "repeats": args.repeats, "world1": "plain model, one process", "world2": "DDP, 2 ranks",
                      "distgrad": ours, "torch_gloo": theirs,
                      "efficiency_distgrad_minus_torch": None if not theirs else
                      ours["scaling_efficiency"] - theirs["scaling_efficiency"],
                      **environment(), "threads": thread_env(1)}))


if __name__ == "__main__":
    main()
