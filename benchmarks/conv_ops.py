"""W2's convolution and pooling ops, forward + backward, distgrad vs PyTorch (batch 64, float32).

Times conv(1->32, 3x3), conv(32->64, 3x3), max-pool 2 on W2's activation sizes, and the three chained
with ReLUs (the convolutional part of a W2 step). Prints one JSON line of ms per call: the median over
``--repeats`` after warm-ups. Each case runs distgrad, then torch, back to back; calls are not interleaved
one by one, because OpenBLAS's and torch's idle threads spin for a while after each call and would
slow the other library down. The single-op cases feed contiguous (N, C, H, W) inputs and gradients
(``ones_like``), which distgrad first copies into its batch-last layout (see ``distgrad/ops/conv.py``);
in the chain, as in a W2 step, activations and gradients stay batch-last from op to op.
Usage: python benchmarks/conv_ops.py [--device cpu|cuda] [--repeats 30]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

from common import environment, sync


def cases(ops, tensor, ones_like, arrays) -> dict:
    """The timed calls, each a forward and a backward, with ``ops`` providing conv2d, relu and max_pool2d."""
    x, w1, b1, h1, w2, b2, h2 = (tensor(a) for a in arrays)
    for t in (w1, b1, h1, w2, b2, h2):
        t.requires_grad_()

    def backward(y):
        y.backward(ones_like(y))

    def chain():
        h = ops.relu(ops.conv2d(ops.relu(ops.conv2d(x, w1, b1)), w2, b2))
        backward(ops.max_pool2d(h, 2))
    return {"conv1": lambda: backward(ops.conv2d(x, w1, b1)), "conv2": lambda: backward(ops.conv2d(h1, w2, b2)),
            "max_pool": lambda: backward(ops.max_pool2d(h2, 2)), "conv_relu_pool_chain": chain}


def distgrad_cases(arrays, device) -> dict:
    import distgrad as dg  # the ops themselves (distgrad.nn.functional re-exports them)
    return cases(dg, lambda a: dg.tensor(a, device=device), dg.ones_like, arrays)


def torch_cases(arrays, device) -> dict:
    import torch
    return cases(torch.nn.functional, lambda a: torch.tensor(a, device=device), torch.ones_like, arrays)


def median_ms(fn, warmup: int, repeats: int, synchronize) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        synchronize()
        start = time.perf_counter()
        fn()
        synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    args = p.parse_args()
    rng = np.random.default_rng(0)
    shapes = [(64, 1, 28, 28), (32, 1, 3, 3), (32,), (64, 32, 26, 26), (64, 32, 3, 3), (64,), (64, 64, 24, 24)]
    arrays = [(rng.standard_normal(s) * 0.1).astype(np.float32) for s in shapes]
    ours = distgrad_cases(arrays, args.device)
    try:
        theirs = torch_cases(arrays, args.device)
        import torch
        torch_sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    except ImportError:
        theirs = torch_sync = None
    result = {}
    for name, fn in ours.items():
        ms_ours = median_ms(fn, args.warmup, args.repeats, lambda: sync(args.device))
        ms_theirs = median_ms(theirs[name], args.warmup, args.repeats, torch_sync) if theirs else None
        result[name] = {"distgrad_ms": round(ms_ours, 3), "torch_ms": None if not theirs else round(ms_theirs, 3),
                        "ratio_distgrad_over_torch": None if not theirs else round(ms_ours / ms_theirs, 3)}
    print(json.dumps({"benchmark": "conv_ops", "device": args.device, "batch": 64, "dtype": "float32",
                      "forward_backward": result, **environment()}))


if __name__ == "__main__":
    main()
