"""W7: training-step time of the character GPT (tiny preset: 4 layers, 4 heads, width 128, context 64,
batch 32, float32), distgrad vs its PyTorch twin built from the same source (``distgrad/bench/gpt.py``).

Prints one JSON line: ms per step (median; the twins alternate in rounds after 3 warm-up steps each),
tokens/s and the ratio distgrad / PyTorch. Usage: python benchmarks/gpt_step.py [--preset tiny] [--device cpu]
"""
from __future__ import annotations

import argparse
import json

from distgrad.bench.machine import environment

from distgrad.bench.gpt import PRESETS, preset
from distgrad.bench.gpt_runs import step_times, summary

SHAKESPEARE_VOCAB = 84  # the distinct characters of ../shared/data/shakespeare/shakespeare.txt


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    p.add_argument("--device", default="cpu")
    p.add_argument("--steps", type=int, default=10, help="timed steps per round")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    config, recipe = preset(args.preset, SHAKESPEARE_VOCAB)
    times = step_times(config, recipe, args.steps, rounds=args.rounds, device=args.device)
    tokens = recipe.batch_size * config.block_size
    ours, theirs = summary(times["distgrad"], tokens), summary(times["torch"], tokens)
    print(json.dumps({"workload": "W7", "preset": args.preset, "device": args.device, **environment(),
                      "distgrad": ours, "torch_run": theirs,
                      "step_time_ratio_distgrad_over_torch": round(ours["ms_per_step"] / theirs["ms_per_step"], 3)}))


if __name__ == "__main__":
    main()
