"""W3: autograd engine overhead per recorded op (forward + backward), distgrad vs PyTorch eager.

Prints one JSON line. Usage: python benchmarks/autograd_overhead.py [--device cpu|cuda] [--reps 20]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import numpy as np

import distgrad as dg

STEPS = 500
OPS = 3 * STEPS


def time_distgrad(device: str, reps: int) -> float:
    x = dg.randn(16, device=device, requires_grad=True)
    times = []
    for _ in range(reps + 2):
        dg.cuda.synchronize() if device != "cpu" else None
        start = time.perf_counter()
        y = x
        for _ in range(STEPS):
            y = (y * 1.0001 + 0.001).tanh()
        y.sum().backward()
        dg.cuda.synchronize() if device != "cpu" else None
        times.append(time.perf_counter() - start)
        x.grad = None
    return statistics.median(times[2:]) / OPS * 1e6


def time_torch(device: str, reps: int):
    try:
        import torch
    except ImportError:
        return None, None
    torch.set_num_threads(1)
    x = torch.randn(16, device=device, requires_grad=True)
    sync = torch.cuda.synchronize if device != "cpu" else (lambda: None)
    times = []
    for _ in range(reps + 2):
        sync()
        start = time.perf_counter()
        y = x
        for _ in range(STEPS):
            y = (y * 1.0001 + 0.001).tanh()
        y.sum().backward()
        sync()
        times.append(time.perf_counter() - start)
        x.grad = None
    return statistics.median(times[2:]) / OPS * 1e6, torch.__version__


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--reps", type=int, default=20)
    args = parser.parse_args()
    ours = time_distgrad(args.device, args.reps)
    theirs, torch_version = time_torch(args.device, args.reps)
    print(json.dumps({
        "workload": "W3", "device": args.device,
        "distgrad_us_per_op": round(ours, 3),
        "torch_us_per_op": None if theirs is None else round(theirs, 3),
        "ratio_distgrad_over_torch": None if theirs is None else round(ours / theirs, 3),
        "reps": args.reps, "numpy": np.__version__, "torch": torch_version, "python": platform.python_version(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
    }))


if __name__ == "__main__":
    main()
