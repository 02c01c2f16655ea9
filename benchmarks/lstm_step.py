"""LSTM training step (forward + backward of nn.LSTM alone), distgrad vs PyTorch CPU, in one run.

Shapes in ``distgrad.bench.lstm.SHAPES``: ``word_lm`` (pytorch/examples' word_language_model: 2 layers,
200 wide, bptt 35, batch 20) and ``small`` (35 steps of a 32-wide layer on a batch of 4: nearly all
per-step overhead). Runs alternate between the frameworks ``--repeats`` times; each ratio (distgrad /
PyTorch, by wall clock and by process CPU time) is the median of the per-repeat ratios. Prints one
JSON line.
Usage: OMP_NUM_THREADS=1 python benchmarks/lstm_step.py [--steps 20] [--repeats 3]
"""
from __future__ import annotations

import argparse
import json
import statistics

from distgrad.bench.machine import environment

from distgrad.bench.lstm import SHAPES, lstm_step_ms


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    figures = {}
    for name, shape in SHAPES.items():
        runs = {"distgrad": [], "torch": []}
        for _ in range(args.repeats):
            for framework, times in runs.items():
                times.append(lstm_step_ms(framework, shape, args.steps))
        figures[name] = dict(shape)
        for clock in ("wall_ms", "cpu_ms"):
            ours = [r[clock] for r in runs["distgrad"]]
            figures[name][f"distgrad_{clock}"] = round(statistics.median(ours), 3)
            if None not in runs["torch"]:
                theirs = [r[clock] for r in runs["torch"]]
                figures[name][f"torch_{clock}"] = round(statistics.median(theirs), 3)
                figures[name][f"ratio_{clock.removesuffix('_ms')}"] = round(
                    statistics.median([a / b for a, b in zip(ours, theirs)]), 3)
    print(json.dumps({"benchmark": "lstm_step", "device": "cpu", **environment(), "shapes": figures}))


if __name__ == "__main__":
    main()
