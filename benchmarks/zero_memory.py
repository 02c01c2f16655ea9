"""W9: optimizer-state memory and step time of ZeRO on 1, 2, 3 ranks, against plain DDP, and PyTorch's.

A 25.2M-parameter MLP (2048 wide, 6 hidden layers, float32) trained with Adam on a synthetic batch of
32 per rank, one thread per rank: plain DDP, ZeRO-1, ZeRO-1 with ``parameters_as_bucket_view`` and
ZeRO-2, with PyTorch's DDP and DDP + ``ZeroRedundancyOptimizer`` (gloo) beside them unless
``--skip-torch``. The measurement is ``distgrad.bench.zero`` (also ``distgrad-bench zero``, which
writes tables and a plot); this script starts ``mpiexec -n N`` itself for each N and prints W9's one
JSON line: a row per world size and configuration, with the optimizer-state bytes per rank over plain
Adam's on one rank (``state_vs_plain_n1``) and the step time over plain DDP's (``step_vs_plain_ddp``).
Usage: python benchmarks/zero_memory.py [--ranks 1,2,3] [--steps 5] [--warmup 2] [--skip-torch]
"""
from __future__ import annotations

import argparse
import json

from distgrad.bench import machine, zero


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ranks", default="1,2,3")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--width", type=int, default=zero.W9["width"])
    p.add_argument("--layers", type=int, default=zero.W9["layers"])
    p.add_argument("--skip-torch", action="store_true")
    args = p.parse_args()
    configs = [c for c in zero.CONFIGS if not (args.skip_torch and c.startswith("torch"))]
    section = zero.measure([int(n) for n in args.ranks.split(",")], threads=1, configs=configs, width=args.width,
                           layers=args.layers, steps=args.steps, warmup=args.warmup)
    print(json.dumps({"workload": "W9", **section, **machine.environment()}))


if __name__ == "__main__":
    main()
