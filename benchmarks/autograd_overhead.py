"""W3: autograd engine overhead per recorded op (forward + backward), distgrad vs PyTorch eager.

The measurement is ``distgrad.bench.autograd_overhead`` (also run by ``distgrad-bench autograd``);
this script prints W3's one JSON line.
Usage: python benchmarks/autograd_overhead.py [--device cpu|cuda] [--reps 20]
"""
from __future__ import annotations

import argparse
import json
import os
import platform

import numpy as np

from distgrad.bench.autograd_overhead import w3_distgrad_us, w3_torch_us
from distgrad.bench.machine import torch_version


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--reps", type=int, default=20)
    args = parser.parse_args()
    ours = w3_distgrad_us(args.device, args.reps)
    theirs = w3_torch_us(args.device, args.reps)
    print(json.dumps({
        "workload": "W3", "device": args.device,
        "distgrad_us_per_op": round(ours, 3),
        "torch_us_per_op": None if theirs is None else round(theirs, 3),
        "ratio_distgrad_over_torch": None if theirs is None else round(ours / theirs, 3),
        "reps": args.reps, "numpy": np.__version__, "torch": torch_version(), "python": platform.python_version(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
    }))


if __name__ == "__main__":
    main()
