"""CUDA graphs: W3 and W1's training step captured with ``dg.cuda.make_graphed_step``, against the same work
eager in distgrad and eager in PyTorch, in one run. Prints one JSON line.

- W3 graphed: the 500-step tanh chain and its backward (docs/benchmarks.md), captured as one step on a
  static x; microseconds per recorded op = replay time / 1500. ``w3_graphed_ratio`` divides it by PyTorch's
  eager W3 (the issue's target: <= 0.3).
- W1 step: the 784-512-512-10 MLP, batch 64, SGD with momentum; eager and graphed distgrad, eager PyTorch.
  With ``--ddp nccl|mpi`` the model is wrapped in DistributedDataParallel (run it under ``mpiexec -n 1`` or
  ``distgrad-launch``): NCCL's all-reduces are captured; MPI's are not, so that step runs eagerly (the
  JSON says which). ``w1_graphed_speedup`` = eager ms / graphed ms (target: >= 2 for the DDP step).

On the CPU the graphed step is make_graphed_step's CPU stand-in (eager, on static buffers): the figures
then only show that the script works.
Usage: python benchmarks/graphed_step.py [--device cuda] [--reps 20] [--ddp nccl]
"""
from __future__ import annotations

import argparse
import json
import warnings

import numpy as np

from distgrad.bench import frameworks
from distgrad.bench.autograd_overhead import SIZES, W3_OPS, W3_STEPS, w3_us
from distgrad.bench.machine import environment
from distgrad.bench.timing import median_seconds
from distgrad.bench.workloads import BATCH, build_model, sgd, train_step


def w3_graphed_us(device: str, reps: int) -> float:
    import distgrad as dg
    x = dg.randn(16, device=device, requires_grad=True)

    def chain(_):
        y = x
        for _ in range(W3_STEPS):
            y = (y * 1.0001 + 0.001).tanh()
        y.sum().backward()
        x.grad = None
        return y
    marker = dg.zeros(1, device=device)  # make_graphed_step keys on its inputs; W3 has none but x
    step = dg.cuda.make_graphed_step(chain, (marker,), warmup=2)
    sync = frameworks.load("distgrad").synchronizer(device)
    return median_seconds(lambda: step(marker), reps, 4, sync) / W3_OPS * 1e6


def w1_steps(device: str, reps: int, ddp: str | None) -> dict:
    import distgrad as dg
    fw = frameworks.load("distgrad")
    rng = np.random.default_rng(0)
    x = dg.tensor(rng.standard_normal((BATCH, SIZES[0])).astype(np.float32), device=device)
    y = dg.tensor(rng.integers(0, SIZES[-1], BATCH), device=device)
    result = {}
    for mode in ("eager", "graphed"):
        model = build_model("mlp", device=device, fw=fw)
        if ddp:
            model = dg.distributed.DistributedDataParallel(model)
        optimizer = sgd(fw, model)

        def step(xb, yb):
            return train_step(fw, model, optimizer, xb, yb)
        if mode == "graphed":
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                step = dg.cuda.make_graphed_step(step, (x, y), optimizer=optimizer, model=model)
                step(x, y)
            result["eager_because"] = str(caught[0].message) if caught else None
        result[f"w1_step_{mode}_ms"] = median_seconds(lambda: step(x, y), reps, 5, fw.synchronizer(device)) * 1e3
    torch = frameworks.load("torch")
    if torch is not None and not ddp:
        from distgrad.bench.autograd_overhead import w1_step
        result["w1_step_torch_ms"] = median_seconds(w1_step(torch, device, x.cpu().numpy(), y.cpu().numpy()), reps, 5,
                                                    torch.synchronizer(device)) * 1e3
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--ddp", choices=("nccl", "mpi"), help="wrap W1's model in DDP over this backend")
    args = parser.parse_args()
    if args.ddp:
        import distgrad as dg
        dg.distributed.init_process_group(args.ddp)
    eager, torch_w3 = frameworks.measure_both(lambda fw: w3_us(fw, args.device, args.reps))
    graphed = w3_graphed_us(args.device, args.reps)
    steps = w1_steps(args.device, args.reps, args.ddp)
    out = {"workload": "graphs", "device": args.device, "ddp": args.ddp, "w3_eager_us_per_op": round(eager, 3),
           "w3_graphed_us_per_op": round(graphed, 3), "w3_torch_us_per_op": None if torch_w3 is None else round(torch_w3, 3),
           "w3_graphed_ratio": None if torch_w3 is None else round(graphed / torch_w3, 3),
           **{k: round(v, 4) if isinstance(v, float) else v for k, v in steps.items()},
           "w1_graphed_speedup": round(steps["w1_step_eager_ms"] / steps["w1_step_graphed_ms"], 3), **environment()}
    if "w1_step_torch_ms" in steps:
        out["w1_graphed_ratio"] = round(steps["w1_step_graphed_ms"] / steps["w1_step_torch_ms"], 3)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
