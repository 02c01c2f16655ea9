"""W2: training-step time of the MNIST CNN (batch 64, float32), distgrad vs PyTorch, synthetic inputs.

Prints one JSON line: ms per step (median over 200 steps after 10 warm-ups) and samples/s. The
measurement is ``distgrad.bench.autograd_overhead.w2_step`` (docs/benchmarks.md defines W2).
Usage: python benchmarks/cnn_step.py [--device cpu|cuda] [--steps 200] [--skip-torch]
"""
from __future__ import annotations

import argparse
import json

from distgrad.bench import frameworks
from distgrad.bench.autograd_overhead import step_ms, w2_step
from distgrad.bench.machine import environment
from distgrad.bench.workloads import BATCH


def summary(fw, args) -> dict:
    ms = step_ms(fw, w2_step(fw, args.device), args.device, args.steps, args.warmup)
    return {"ms_per_step": round(ms, 3), "samples_per_s": round(BATCH / ms * 1e3, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--skip-torch", action="store_true")
    args = p.parse_args()
    ours, theirs = frameworks.measure_both(lambda fw: summary(fw, args), args.skip_torch)
    print(json.dumps({"workload": "W2", "device": args.device, **environment(), "distgrad": ours, "torch_run": theirs,
                      "step_time_ratio_distgrad_over_torch": None if not theirs else
                      round(ours["ms_per_step"] / theirs["ms_per_step"], 3)}))


if __name__ == "__main__":
    main()
