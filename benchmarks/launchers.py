"""2-rank MNIST (W1's model, one epoch) under ``distgrad-launch`` and under plain ``mpiexec``.

Plain mpiexec must be as fast as the launcher (ratio <= 1.1): the ranks choose their BLAS threads
themselves (``distgrad.threads``), whoever started them. The two launches take turns, each going
first in turn, ``--reps`` times; the figure is the epoch time the example prints (training only),
with the whole command's wall time beside it, as ratios of the medians and rep by rep. One JSON line.

    python benchmarks/launchers.py [--reps 3] [--limit-batches N] [--data-dir ROOT]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

from distgrad.bench.machine import environment
from distgrad.launch import mpi

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPOCH = re.compile(r"epoch 0: .*\(([0-9.]+) s\)")


def commands(example_args: list) -> dict:
    mpiexec = mpi.find_mpiexec()
    example = [sys.executable, os.path.join(ROOT, "examples", "mnist.py")] + example_args
    return {"distgrad-launch": [sys.executable, "-m", "distgrad.launch", "-n", "2"] + example[1:],
            "mpiexec": mpi.mpiexec_command(2, example, mpiexec, mpi.mpiexec_flavour(mpiexec))}


def timed(command: list) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                            "MKL_NUM_THREADS")}
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{command} failed:\n{done.stderr[-2000:]}")
    return {"epoch_s": float(EPOCH.search(done.stdout).group(1)), "wall_s": wall}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--limit-batches", type=int, default=None, help="per epoch (default: the whole epoch)")
    p.add_argument("--data-dir", default=None)
    args = p.parse_args()
    example_args = ["--model", "mlp", "--device", "cpu", "--epochs", "1"]
    example_args += ["--limit-batches", str(args.limit_batches)] if args.limit_batches else []
    example_args += ["--data-dir", args.data_dir] if args.data_dir else []
    runs = {name: [] for name in commands(example_args)}
    for rep in range(args.reps):
        order = list(commands(example_args).items())
        for name, command in order if rep % 2 == 0 else order[::-1]:
            runs[name].append(timed(command))
    median = {name: {key: statistics.median(r[key] for r in rs) for key in ("epoch_s", "wall_s")}
              for name, rs in runs.items()}
    print(json.dumps({
        "benchmark": "launchers", "workload": "W1 model, 2 ranks, batch 64 per rank, one epoch",
        "reps": args.reps, "runs": runs, "median": median,
        "epoch_ratio_mpiexec_over_launcher": round(median["mpiexec"]["epoch_s"] / median["distgrad-launch"]["epoch_s"], 3),
        # each rep's two runs ran back to back: their ratio sees the least drift in the machine's load
        "epoch_ratio_by_rep": [round(m["epoch_s"] / l["epoch_s"], 3) for m, l in zip(runs["mpiexec"], runs["distgrad-launch"])],
        "wall_ratio_mpiexec_over_launcher": round(median["mpiexec"]["wall_s"] / median["distgrad-launch"]["wall_s"], 3),
        **environment(),
    }))


if __name__ == "__main__":
    main()
