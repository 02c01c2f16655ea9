"""W5: data-parallel scaling of W1's MLP on one machine, distgrad DDP (MPI) vs PyTorch DDP (gloo).

Per-rank batch 64, one thread per process, 300 steps after 20 warm-ups; inputs are synthetic (the
step time does not depend on the pixel values). World size 1 is the plain model in one process (no
DDP, no launcher); world size 2 is DDP under ``mpiexec -n 2``. Scaling efficiency is
``throughput(2) / (2 x throughput(1))``. Each configuration runs ``--repeats`` times; medians are quoted.
Prints one JSON line. Usage: python benchmarks/ddp_scaling.py [--steps 300] [--repeats 3] [--skip-torch]
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time

import numpy as np

from common import environment

BATCH, SIZES = 64, (784, 512, 512, 10)
ONE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


def synthetic_batches(rank: int, count: int = 16):
    rng = np.random.default_rng(rank)
    return (rng.standard_normal((count, BATCH, SIZES[0])).astype(np.float32),
            rng.integers(0, SIZES[-1], (count, BATCH)))


def timed_loop(step, steps: int, warmup: int, barrier) -> float:
    """Milliseconds per step, between barriers so that every rank has finished."""
    for i in range(warmup):
        step(i)
    barrier()
    start = time.perf_counter()
    for i in range(steps):
        step(i)
    barrier()
    return (time.perf_counter() - start) * 1000 / steps


def worker_distgrad(world: int, steps: int, warmup: int) -> float:
    import distgrad as dg
    import distgrad.nn.functional as F
    import distgrad.optim  # noqa: F401
    from distgrad import nn
    dg.manual_seed(0)
    layers = [nn.Linear(SIZES[0], SIZES[1]), nn.ReLU(), nn.Linear(SIZES[1], SIZES[2]), nn.ReLU(),
              nn.Linear(SIZES[2], SIZES[3])]
    model = nn.Sequential(*layers)
    barrier, rank = (lambda: None), 0
    if world > 1:
        import distgrad.distributed as dist
        dist.init_process_group("mpi")
        rank, barrier = dist.get_rank(), dist.barrier
        model = dist.DistributedDataParallel(model)
    optimizer = dg.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    xs, ys = synthetic_batches(rank)
    xs, ys = [dg.tensor(x) for x in xs], [dg.tensor(y) for y in ys]

    def step(i):
        loss = F.cross_entropy(model(xs[i % len(xs)]), ys[i % len(ys)])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return timed_loop(step, steps, warmup, barrier)


def worker_torch(world: int, steps: int, warmup: int) -> float:
    import torch
    import torch.distributed as tdist
    torch.set_num_threads(1)
    torch.manual_seed(0)
    nn = torch.nn
    model = nn.Sequential(nn.Linear(SIZES[0], SIZES[1]), nn.ReLU(), nn.Linear(SIZES[1], SIZES[2]), nn.ReLU(),
                          nn.Linear(SIZES[2], SIZES[3]))
    barrier, rank = (lambda: None), 0
    if world > 1:
        rank = int(os.environ["PMI_RANK"])  # started by MPICH's mpiexec; gloo meets over TCP
        tdist.init_process_group("gloo", rank=rank, world_size=world)
        barrier = tdist.barrier
        model = nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    xs, ys = synthetic_batches(rank)
    xs, ys = torch.from_numpy(xs), torch.from_numpy(ys)

    def step(i):
        loss = nn.functional.cross_entropy(model(xs[i % len(xs)]), ys[i % len(ys)])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    ms = timed_loop(step, steps, warmup, barrier)
    if world > 1:
        tdist.destroy_process_group()
    return ms


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_once(framework: str, world: int, steps: int, warmup: int) -> float:
    """One run in fresh processes; returns rank 0's ms per step."""
    program = [sys.executable, os.path.abspath(__file__), "--worker", framework, "--world", str(world),
               "--steps", str(steps), "--warmup", str(warmup)]
    env = {**os.environ, **ONE_THREAD, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())}
    if world > 1:
        from distgrad.launch import mpi
        mpiexec = mpi.find_mpiexec()
        program = mpi.mpiexec_command(world, program, mpiexec, mpi.mpiexec_flavour(mpiexec))
    done = subprocess.run(program, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"{framework} world {world} failed:\n{done.stderr[-3000:]}")
    return json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][0])["ms_per_step"]


def measure(framework: str, steps: int, warmup: int, repeats: int) -> dict:
    runs = {world: [run_once(framework, world, steps, warmup) for _ in range(repeats)] for world in (1, 2)}
    ms = {world: statistics.median(times) for world, times in runs.items()}
    throughput = {world: world * BATCH * 1000 / ms[world] for world in ms}
    return {"ms_per_step_world1": ms[1], "ms_per_step_world2": ms[2],
            "samples_per_s_world1": throughput[1], "samples_per_s_world2": throughput[2],
            "scaling_efficiency": throughput[2] / (2 * throughput[1]),
            "runs_ms": {f"world{w}": t for w, t in runs.items()}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--skip-torch", action="store_true")
    p.add_argument("--worker", choices=("distgrad", "torch"), help=argparse.SUPPRESS)
    p.add_argument("--world", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        work = worker_distgrad if args.worker == "distgrad" else worker_torch
        ms = work(args.world, args.steps, args.warmup)
        if int(os.environ.get("PMI_RANK", "0")) == 0:
            print(json.dumps({"ms_per_step": ms}), flush=True)
        return
    ours = measure("distgrad", args.steps, args.warmup, args.repeats)
    theirs = None if args.skip_torch else measure("torch", args.steps, args.warmup, args.repeats)
    print(json.dumps({"workload": "W5", "per_rank_batch": BATCH, "steps": args.steps, "warmup": args.warmup,
                      "repeats": args.repeats, "world1": "plain model, one process", "world2": "DDP, mpiexec -n 2",
                      "distgrad": ours, "torch_gloo": theirs,
                      "efficiency_distgrad_minus_torch": None if not theirs else
                      ours["scaling_efficiency"] - theirs["scaling_efficiency"],
                      **environment(), "threads": ONE_THREAD}))


if __name__ == "__main__":
    main()
