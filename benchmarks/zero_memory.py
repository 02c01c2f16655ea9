"""W9: optimizer-state memory and step time of ZeRO on 1, 2, 3 ranks, against plain DDP, and PyTorch's.

A 25.2M-parameter MLP (2048 wide, 6 hidden layers, float32) trained with Adam on a synthetic batch of
32 per rank, one thread per rank. For each world size N the configurations are: plain DDP + Adam,
ZeRO-1 (``ZeroRedundancyOptimizer``), ZeRO-1 with ``parameters_as_bucket_view``, and ZeRO-2
(``DistributedDataParallel(..., gradient_sharding=zero)``); PyTorch's DDP + Adam and DDP +
``ZeroRedundancyOptimizer`` (gloo) run beside them unless ``--skip-torch``. Per configuration: the
largest per-rank optimizer-state bytes, gradient bytes held after backward (``p.grad``), bytes DDP's
gradient buffers keep between steps (distgrad only), and the median step time of the slowest rank.
Runs itself under ``mpiexec -n N``; prints one JSON line.
Usage: python benchmarks/zero_memory.py [--ranks 1,2,3] [--steps 5] [--warmup 2] [--skip-torch]
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

from distgrad.bench import machine, ranks
from distgrad.bench.threads import thread_env

WIDTH, HIDDEN_LAYERS, INPUTS, CLASSES, BATCH = 2048, 6, 2048, 10, 32
ONE_THREAD = thread_env(1)
OURS = ("ddp", "zero1", "zero1_bucket_view", "zero2")
THEIRS = ("torch_ddp", "torch_zero1")


def _sizes():
    return [INPUTS] + [WIDTH] * HIDDEN_LAYERS + [CLASSES]


def _median_step_ms(step, steps: int, warmup: int, barrier) -> float:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        barrier()
        start = time.perf_counter()
        step()
        barrier()  # the slowest rank's step
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def worker_distgrad(config: str, steps: int, warmup: int) -> dict:
    import distgrad as dg
    import distgrad.distributed as dist
    import distgrad.nn.functional as F
    import distgrad.optim  # noqa: F401
    from distgrad import nn
    from distgrad.distributed.optim import ZeroRedundancyOptimizer
    dg.manual_seed(0)
    sizes = _sizes()
    layers = []
    for a, b in zip(sizes, sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    model = nn.Sequential(*layers[:-1])
    if config == "ddp":
        ddp = dist.DistributedDataParallel(model)
        optimizer = dg.optim.Adam(model.parameters(), lr=1e-4)
    else:
        optimizer = ZeroRedundancyOptimizer(model.parameters(), dg.optim.Adam, lr=1e-4,
                                            parameters_as_bucket_view=config == "zero1_bucket_view")
        ddp = dist.DistributedDataParallel(model, gradient_sharding=optimizer if config == "zero2" else None)
    rng = np.random.default_rng(dist.get_rank())
    x = dg.tensor(rng.standard_normal((BATCH, INPUTS)).astype(np.float32))
    y = dg.tensor(rng.integers(0, CLASSES, BATCH))
    grad_bytes = []

    def step():
        optimizer.zero_grad()
        F.cross_entropy(ddp(x), y).backward()
        grad_bytes.append(sum(p.grad.array.nbytes for p in model.parameters() if p.grad is not None))
        optimizer.step()
    ms = _median_step_ms(step, steps, warmup, dist.barrier)
    local = optimizer.optim if config != "ddp" else optimizer
    state_bytes = sum(v.array.nbytes for s in local.state.values() for v in s.values() if hasattr(v, "array"))
    return _slowest({"step_ms": ms, "optimizer_state_bytes": state_bytes, "grad_bytes": grad_bytes[-1],
                     "bucket_bytes": ddp.reducer.held_bytes(),
                     "param_bytes": sum(p.array.nbytes for p in model.parameters())}, dist.all_gather_object,
                    dist.get_world_size())


def worker_torch(config: str, steps: int, warmup: int) -> dict:
    import torch
    import torch.distributed as tdist
    from torch.distributed.optim import ZeroRedundancyOptimizer
    import distgrad.distributed as dist
    torch.set_num_threads(1)
    world, rank = dist.get_world_size(), dist.get_rank()  # the job's MPI world, made by the worker
    if not tdist.is_initialized():
        tdist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(0)
    sizes = _sizes()
    layers = []
    for a, b in zip(sizes, sizes[1:]):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers[:-1])
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    if config == "torch_ddp":
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    else:
        optimizer = ZeroRedundancyOptimizer(model.parameters(), optimizer_class=torch.optim.Adam, lr=1e-4)
    gen = torch.Generator().manual_seed(rank)
    x, y = torch.randn(BATCH, INPUTS, generator=gen), torch.randint(0, CLASSES, (BATCH,), generator=gen)
    grad_bytes = []

    def step():
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(ddp(x), y).backward()
        grad_bytes.append(sum(p.grad.nbytes for p in model.parameters() if p.grad is not None))
        optimizer.step()
    ms = _median_step_ms(step, steps, warmup, tdist.barrier)
    local = optimizer.optim if config != "torch_ddp" else optimizer
    state_bytes = sum(v.nbytes for s in local.state.values() for v in s.values()
                      if torch.is_tensor(v) and v.dim() > 0)  # Adam's 0-d "step" is not state memory
    return _slowest({"step_ms": ms, "optimizer_state_bytes": state_bytes, "grad_bytes": grad_bytes[-1],
                     "param_bytes": sum(p.nbytes for p in model.parameters())},
                    lambda out, obj: tdist.all_gather_object(out, obj), world)


def _slowest(mine: dict, all_gather_object, world: int) -> dict:
    """Every figure's largest value over the ranks (the memory a rank needs, the time of the slowest)."""
    everyone = [None] * world
    all_gather_object(everyone, mine)
    return {key: max(r[key] for r in everyone) for key in mine}


def run_world(world: int, configs, steps: int, warmup: int) -> dict:
    """One job of ``world`` ranks (fresh processes) that runs ``configs`` one after the other."""
    program = [sys.executable, os.path.abspath(__file__), "--worker", ",".join(configs), "--steps", str(steps),
               "--warmup", str(warmup)]
    env = {**os.environ, **ONE_THREAD, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port())}
    command = program if world == 1 else ranks.launch_command(world, program)
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"world {world} failed:\n{done.stderr[-3000:]}")
    return json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][0])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ranks", default="1,2,3")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--skip-torch", action="store_true")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        import distgrad.distributed as dist
        dist.init_process_group("mpi")
        results = {}
        for config in args.worker.split(","):
            work = worker_torch if config.startswith("torch") else worker_distgrad
            results[config] = work(config, args.steps, args.warmup)
        if dist.get_rank() == 0:
            print(json.dumps(results), flush=True)
        dist.destroy_process_group()
        return
    configs = OURS + (() if args.skip_torch else THEIRS)
    worlds = {int(n): run_world(int(n), configs, args.steps, args.warmup) for n in args.ranks.split(",")}
    first = min(worlds)
    summary = {}
    for n, rows in worlds.items():
        for config, row in rows.items():
            plain = "torch_ddp" if config.startswith("torch") else "ddp"
            baseline = worlds[first][plain]["optimizer_state_bytes"]
            row["state_bytes_vs_plain_at_n1"] = row["optimizer_state_bytes"] / baseline
            row["step_time_vs_plain_ddp"] = row["step_ms"] / rows[plain]["step_ms"]
        summary[f"world{n}"] = rows
    print(json.dumps({"workload": "W9", "model": f"MLP {'-'.join(map(str, _sizes()))}, float32",
                      "parameters": worlds[first]["ddp"]["param_bytes"] // 4, "per_rank_batch": BATCH,
                      "steps": args.steps, "warmup": args.warmup, "results": summary,
                      "machine": machine.machine_facts(), "threads": ONE_THREAD}))


if __name__ == "__main__":
    main()
