"""W3: autograd engine overhead per recorded op (forward + backward), distgrad vs PyTorch eager.

The measurement is ``distgrad.bench.autograd_overhead.w3_us`` (also run by ``distgrad-bench autograd``;
docs/benchmarks.md defines W3); this script prints W3's one JSON line.
Usage: python benchmarks/autograd_overhead.py [--device cpu|cuda] [--reps 20]
"""
from __future__ import annotations

import argparse
import json

from distgrad.bench import frameworks
from distgrad.bench.autograd_overhead import w3_us
from distgrad.bench.machine import environment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--reps", type=int, default=20)
    args = parser.parse_args()
    ours, theirs = frameworks.measure_both(lambda fw: w3_us(fw, args.device, args.reps))
    env = environment()
    print(json.dumps({
        "workload": "W3", "device": args.device,
        "distgrad_us_per_op": round(ours, 3),
        "torch_us_per_op": None if theirs is None else round(theirs, 3),
        "ratio_distgrad_over_torch": None if theirs is None else round(ours / theirs, 3),
        "reps": args.reps, "numpy": env["numpy"], "torch": env["torch"], "python": env["python"],
        "OMP_NUM_THREADS": env["threads"]["OMP_NUM_THREADS"],
    }))


if __name__ == "__main__":
    main()
