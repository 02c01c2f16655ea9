"""W1: one epoch of the 784-512-512-10 MLP on the real MNIST train set, distgrad vs PyTorch.

Prints one JSON line: seconds per epoch, samples/s and test accuracy for each framework. The
measurement is ``distgrad.bench.mnist.w1_epoch`` (docs/benchmarks.md defines W1).
Usage: python benchmarks/mnist_mlp_epoch.py [--device cpu|cuda] [--data-dir ROOT] [--skip-torch]
"""
from __future__ import annotations

import argparse
import json

from distgrad.bench import frameworks, mnist
from distgrad.bench.machine import environment


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--data-dir", default=None, help="folder holding mnist/ (default $DISTGRAD_DATA, then a download)")
    p.add_argument("--skip-torch", action="store_true")
    args = p.parse_args()
    arrays = mnist.w1_arrays(args.data_dir)
    mine, torch_run = frameworks.measure_both(lambda fw: mnist.w1_epoch(fw, arrays, args.device), args.skip_torch)
    print(json.dumps({"workload": "W1", "device": args.device, **environment(), "distgrad": mine, "torch_run": torch_run,
                      "epoch_time_ratio_distgrad_over_torch": None if torch_run is None else
                      round(mine["seconds"] / torch_run["seconds"], 3)}))


if __name__ == "__main__":
    main()
