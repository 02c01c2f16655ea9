"""W2's convolution and pooling ops, forward + backward, distgrad vs PyTorch (batch 64, float32).

Times conv(1->32, 3x3), conv(32->64, 3x3), max-pool 2 on W2's activation sizes, and the three chained
with ReLUs (the convolutional part of a W2 step): ``distgrad.bench.workloads.conv_calls``. Prints one
JSON line of ms per call: the median over ``--repeats`` after warm-ups. Each case runs distgrad, then
torch, back to back; calls are not interleaved one by one, because OpenBLAS's and torch's idle threads
spin for a while after each call and would slow the other library down. The single-op cases feed
contiguous (N, C, H, W) inputs and gradients (``ones_like``), which distgrad first copies into its
batch-last layout (see ``distgrad/ops/conv.py``); in the chain, as in a W2 step, activations and
gradients stay batch-last from op to op.
Usage: python benchmarks/conv_ops.py [--device cpu|cuda] [--repeats 30]
"""
from __future__ import annotations

import argparse
import json

from distgrad.bench import frameworks
from distgrad.bench.machine import environment
from distgrad.bench.timing import median_seconds
from distgrad.bench.workloads import BATCH, conv_calls


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    args = p.parse_args()
    ours, theirs = frameworks.load("distgrad"), frameworks.load("torch")
    our_calls = conv_calls(ours, args.device)
    their_calls = None if theirs is None else conv_calls(theirs, args.device)

    def ms(fw, call) -> float:
        return median_seconds(call, args.repeats, args.warmup, fw.synchronizer(args.device)) * 1e3
    result = {}
    for name, call in our_calls.items():
        ms_ours = ms(ours, call)
        ms_theirs = None if theirs is None else ms(theirs, their_calls[name])
        result[name] = {"distgrad_ms": round(ms_ours, 3), "torch_ms": None if theirs is None else round(ms_theirs, 3),
                        "ratio_distgrad_over_torch": None if theirs is None else round(ms_ours / ms_theirs, 3)}
    print(json.dumps({"benchmark": "conv_ops", "device": args.device, "batch": BATCH, "dtype": "float32",
                      "forward_backward": result, **environment()}))


if __name__ == "__main__":
    main()
