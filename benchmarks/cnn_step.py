"""W2: training-step time of the MNIST CNN (batch 64, float32), distgrad vs PyTorch, synthetic inputs.

Prints one JSON line: ms per step (median over 200 steps after 10 warm-ups) and samples/s.
Usage: python benchmarks/cnn_step.py [--device cpu|cuda] [--steps 200]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

from common import environment, sync


def step_times(step, steps: int, warmup: int, synchronize) -> list:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        synchronize()
        t = time.perf_counter()
        step()
        synchronize()
        times.append(time.perf_counter() - t)
    return times


def run_distgrad(x, y, device, steps, warmup):
    import distgrad as dg
    import distgrad.nn.functional as F
    from distgrad import nn
    dg.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(9216, 128), nn.ReLU(), nn.Linear(128, 10)).to(device)
    opt = dg.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    xb, yb = dg.tensor(x, device=device), dg.tensor(y, device=device)

    def step():
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step_times(step, steps, warmup, lambda: sync(device))


def run_torch(x, y, device, steps, warmup):
    try:
        import torch
    except ImportError:
        return None
    nn = torch.nn
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(9216, 128), nn.ReLU(), nn.Linear(128, 10)).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    xb, yb = torch.tensor(x, device=device), torch.tensor(y, device=device)

    def step():
        loss = nn.functional.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    sync_t = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    return step_times(step, steps, warmup, sync_t)


def summary(times, batch):
    if times is None:
        return None
    ms = statistics.median(times) * 1e3
    return {"ms_per_step": round(ms, 3), "samples_per_s": round(batch / ms * 1e3, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--skip-torch", action="store_true")
    args = p.parse_args()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 64)
    ours = summary(run_distgrad(x, y, args.device, args.steps, args.warmup), 64)
    theirs = None if args.skip_torch else summary(run_torch(x, y, args.device, args.steps, args.warmup), 64)
    print(json.dumps({"workload": "W2", "device": args.device, **environment(), "distgrad": ours, "torch_run": theirs,
                      "step_time_ratio_distgrad_over_torch": None if not theirs else
                      round(ours["ms_per_step"] / theirs["ms_per_step"], 3)}))


if __name__ == "__main__":
    main()
