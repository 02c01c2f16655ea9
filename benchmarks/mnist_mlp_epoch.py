"""W1: one epoch of the 784-512-512-10 MLP on the real MNIST train set, distgrad vs PyTorch.

Prints one JSON line: seconds per epoch, samples/s and test accuracy for each framework.
Usage: python benchmarks/mnist_mlp_epoch.py [--device cpu|cuda] [--data-dir ROOT] [--skip-torch]
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from common import environment, sync

MEAN, STD = 0.1307, 0.3081


def load(root):
    from distgrad.data import MNIST
    train, test = MNIST(root, train=True), MNIST(root, train=False)
    to_np = lambda ds: ((ds.data.numpy().astype(np.float32) / 255 - MEAN) / STD, ds.targets.numpy())
    return to_np(train), to_np(test)


def run_distgrad(data, device: str, seed: int = 0) -> dict:
    import distgrad as dg
    import distgrad.nn.functional as F
    from distgrad import nn
    (xtr, ytr), (xte, yte) = data
    dg.manual_seed(seed)
    model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10)).to(device)
    opt = dg.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x_all = dg.tensor(xtr.reshape(-1, 784), device=device)
    y_all = dg.tensor(ytr, device=device)
    order = np.random.default_rng(seed).permutation(len(ytr))
    sync(device)
    start = time.perf_counter()
    for i in range(0, len(order), 64):
        idx = dg.tensor(order[i:i + 64], device=device)
        loss = F.cross_entropy(model(x_all[idx]), y_all[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    sync(device)
    seconds = time.perf_counter() - start
    with dg.no_grad():
        pred = model(dg.tensor(xte.reshape(-1, 784), device=device)).argmax(dim=1)
        acc = float((pred == dg.tensor(yte, device=device)).double().mean().item())
    return {"seconds": seconds, "samples_per_s": len(ytr) / seconds, "test_accuracy": acc}


def run_torch(data, device: str, seed: int = 0) -> dict | None:
    try:
        import torch
    except ImportError:
        return None
    (xtr, ytr), (xte, yte) = data
    torch.manual_seed(seed)
    nn = torch.nn
    model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10)).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x_all = torch.tensor(xtr.reshape(-1, 784), device=device)
    y_all = torch.tensor(ytr, device=device)
    order = np.random.default_rng(seed).permutation(len(ytr))
    sync_t = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    sync_t()
    start = time.perf_counter()
    for i in range(0, len(order), 64):
        idx = torch.tensor(order[i:i + 64], device=device)
        loss = torch.nn.functional.cross_entropy(model(x_all[idx]), y_all[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    sync_t()
    seconds = time.perf_counter() - start
    with torch.no_grad():
        pred = model(torch.tensor(xte.reshape(-1, 784), device=device)).argmax(dim=1)
        acc = float((pred == torch.tensor(yte, device=device)).double().mean())
    return {"seconds": seconds, "samples_per_s": len(ytr) / seconds, "test_accuracy": acc}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--skip-torch", action="store_true")
    args = p.parse_args()
    data = load(args.data_dir)
    ours = run_distgrad(data, args.device)
    theirs = None if args.skip_torch else run_torch(data, args.device)
    print(json.dumps({"workload": "W1", "device": args.device, **environment(), "distgrad": ours, "torch_run": theirs,
                      "epoch_time_ratio_distgrad_over_torch": None if not theirs else
                      round(ours["seconds"] / theirs["seconds"], 3)}))


if __name__ == "__main__":
    main()
