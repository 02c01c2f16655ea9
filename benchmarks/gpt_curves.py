"""The PyTorch twin of examples/gpt.py on the same recipe, batches and initial weights, for the side-by-side
loss curves of docs/gpt.md; and the figure of both runs.

    python benchmarks/gpt_curves.py --preset tiny --steps 2000 --out torch.json     # train the twin
    python benchmarks/gpt_curves.py --plot distgrad.json torch.json --png curves.png

``distgrad.json`` is the ``metrics.json`` that ``examples/gpt.py --out DIR`` writes. The run prints one
JSON line: final train and validation losses, tokens/s. Text: ``--data FILE``, else the Shakespeare text
under ``$DISTGRAD_DATA`` (see distgrad/data/shakespeare.py).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from distgrad.bench.machine import environment

from distgrad.bench.gpt import PRESETS, CharData, preset
from distgrad.bench.gpt_runs import plot_curves, twin_curve
from distgrad.data.shakespeare import shakespeare_path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--data", default=None)
    p.add_argument("--own-init", action="store_true", help="PyTorch's own initial weights, not distgrad's")
    p.add_argument("--out", default=None, help="write the run's metrics here (JSON)")
    p.add_argument("--plot", nargs="+", default=None, help="metrics files to draw instead of training")
    p.add_argument("--png", default="curves.png")
    args = p.parse_args()
    if args.plot:
        runs = {}
        for path in args.plot:
            with open(path) as f:
                run = json.load(f)
            runs[run["framework"]] = run["history"]
        plot_curves(runs, args.png)
        return
    data = CharData.from_file(args.data or shakespeare_path())
    history = twin_curve(data, args.preset, args.steps, args.seed, args.device,
                         log=lambda line: print(line, file=sys.stderr, flush=True), own_init=args.own_init)
    config, recipe = preset(args.preset, data.vocab_size)
    run = {"framework": "torch" + (" (own initial weights)" if args.own_init else ""), "preset": args.preset, "world": 1, "config": config.as_dict(),
           "recipe": dataclasses.asdict(recipe), "environment": environment(), "history": history}
    if args.out:
        with open(args.out, "w") as f:
            json.dump(run, f, indent=1)
    last = history[-1]
    print(json.dumps({"workload": "W7-curve", "framework": run["framework"], "preset": args.preset, "steps": args.steps,
                      "train_loss": round(last["train_loss"], 4), "val_loss": round(last["val_loss"], 4),
                      "tokens_per_s": round(last["tokens_per_s"], 1)}))


if __name__ == "__main__":
    main()
