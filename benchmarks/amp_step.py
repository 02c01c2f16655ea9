"""W8: training-step time under autocast (bfloat16 by default) against float32, for W2 (the MNIST CNN,
batch 64) and W7-full (the GPT, 6 layers, width 384, context 256, batch 64), distgrad and PyTorch in one run.

Prints one JSON line: per workload and library the float32 and mixed-precision ms per step (medians),
the speed-up float32 / mixed and the mixed-precision ratio distgrad / PyTorch; for W2 also the loss of
each run's last step (same batch, same number of steps: float32 and mixed side by side). W7's twins
run alternately in rounds (``distgrad.bench.gpt_runs.step_times``); ``--skip-torch`` skips PyTorch in W2.
Written for a GPU (``--device cuda``, the default); ``--device cpu --preset tiny`` runs it small on the CPU.
Usage: python benchmarks/amp_step.py [--device cuda] [--amp bf16|fp16] [--preset full] [--skip-torch]
"""
from __future__ import annotations

import argparse
import json
import statistics

from distgrad.bench import frameworks
from distgrad.bench.autograd_overhead import w2_step
from distgrad.bench.gpt import PRESETS, preset
from distgrad.bench.gpt_runs import step_times
from distgrad.bench.machine import environment
from distgrad.bench.timing import median_seconds

SHAKESPEARE_VOCAB = 84  # the distinct characters of ../shared/data/shakespeare/shakespeare.txt


def w2(fw, args, amp):
    step = w2_step(fw, args.device, amp=amp)
    losses = []
    ms = median_seconds(lambda: losses.append(step()), args.w2_steps, args.warmup, fw.synchronizer(args.device)) * 1e3
    return {"ms_per_step": round(ms, 3), "last_loss": float(losses[-1].item())}


def compare(float32: dict, mixed: dict) -> dict:
    return {"float32": float32, "mixed": mixed,
            "speedup_float32_over_mixed": round(float32["ms_per_step"] / mixed["ms_per_step"], 3)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--amp", choices=["bf16", "fp16"], default="bf16")
    p.add_argument("--preset", choices=sorted(PRESETS), default="full", help="W7's preset (full: W7-full)")
    p.add_argument("--w2-steps", type=int, default=50)
    p.add_argument("--w7-steps", type=int, default=10, help="timed W7 steps per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--skip-torch", action="store_true")
    args = p.parse_args()

    result = {"workload": "W8", "device": args.device, "amp": args.amp, **environment()}
    w2_runs = {amp: frameworks.measure_both(lambda fw: w2(fw, args, amp), args.skip_torch) for amp in (None, args.amp)}
    result["w2"] = {name: None if w2_runs[None][i] is None else compare(w2_runs[None][i], w2_runs[args.amp][i])
                    for i, name in enumerate(("distgrad", "torch"))}

    config, recipe = preset(args.preset, SHAKESPEARE_VOCAB)
    w7 = {}
    for amp in (None, args.amp):
        times = step_times(config, recipe, args.w7_steps, args.warmup, args.rounds, args.device, amp=amp)
        w7[amp] = {name: {"ms_per_step": round(statistics.median(t) * 1e3, 2)} for name, t in times.items()}
    result["w7_preset"] = args.preset
    result["w7"] = {name: compare(w7[None][name], w7[args.amp][name]) for name in w7[None]}

    for section in ("w2", "w7"):
        ours, theirs = result[section]["distgrad"], result[section].get("torch")
        result[section]["mixed_ratio_distgrad_over_torch"] = None if not theirs else round(
            ours["mixed"]["ms_per_step"] / theirs["mixed"]["ms_per_step"], 3)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
