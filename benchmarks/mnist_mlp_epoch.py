"""W1: one epoch of the 784-512-512-10 MLP on the real MNIST train set, distgrad vs PyTorch.

Prints one JSON line: seconds per epoch, samples/s and test accuracy for each framework. The
measurement is ``distgrad.bench.mnist.w1_epoch`` (docs/benchmarks.md defines W1).
With ``--flat``, distgrad's model is flattened (``nn.utils.flatten_parameters``) so that its SGD takes the
foreach path: one update over the flat buffer (PyTorch keeps its default, per-parameter SGD on the CPU).
Usage: python benchmarks/mnist_mlp_epoch.py [--device cpu|cuda] [--data-dir ROOT] [--skip-torch] [--flat]
"""
from __future__ import annotations

import argparse
import json

from distgrad.bench import frameworks, mnist, workloads
from distgrad.bench.machine import environment


def _flat_sgd(fw, model, lr: float = 0.01):
    """The workloads' SGD, over distgrad parameters flattened first (PyTorch's model is left as it is)."""
    if fw.name == "distgrad":
        fw.nn.utils.flatten_parameters(model)
    return workloads.sgd(fw, model, lr)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--data-dir", default=None, help="folder holding mnist/ (default $DISTGRAD_DATA, then a download)")
    p.add_argument("--skip-torch", action="store_true")
    p.add_argument("--flat", action="store_true", help="distgrad: flat parameters and the foreach SGD")
    args = p.parse_args()
    if args.flat:
        mnist.sgd = _flat_sgd
    arrays = mnist.w1_arrays(args.data_dir)
    mine, torch_run = frameworks.measure_both(lambda fw: mnist.w1_epoch(fw, arrays, args.device), args.skip_torch)
    print(json.dumps({"workload": "W1", "device": args.device, **environment(), "distgrad": mine, "torch_run": torch_run,
                      "flat": args.flat,
                      "epoch_time_ratio_distgrad_over_torch": None if torch_run is None else
                      round(mine["seconds"] / torch_run["seconds"], 3)}))


if __name__ == "__main__":
    main()
