"""W9: optimizer-state memory and step time of ZeRO against plain DDP, distgrad's and PyTorch's, on N ranks.

The model is a square MLP: ``width`` inputs, ``layers`` hidden ``Linear(width, width)`` layers with
ReLUs, then a classifier of 10 classes, float32, trained with Adam (lr 1e-4) on a synthetic batch per
rank. W9 is width 2048, 6 layers, batch 32 (25.2M parameters). The configurations, on the same model:

- ``ddp``: DDP + Adam; every rank holds the whole optimizer state;
- ``zero1``: ZeRO-1, DDP + ``ZeroRedundancyOptimizer(Adam)``: each rank keeps the state of its shard of
  the parameters (balanced by size) and the updated shards are broadcast after the step;
- ``zero1_bucket_view``: the same with ``parameters_as_bucket_view=True`` (one all-gather of flat buffers);
- ``zero2``: ZeRO-2, ``DistributedDataParallel(..., gradient_sharding=zero)``: the buckets are
  reduce-scattered and each rank keeps only its shard's gradients;
- ``torch_ddp``, ``torch_zero1``: PyTorch's DDP + Adam and DDP + its ``ZeroRedundancyOptimizer``
  (gloo), where PyTorch is installed.

Per configuration and world size, the largest value over the ranks (the memory a rank needs, the time
of the slowest) of: optimizer-state bytes (the tensors in the local optimizer's state; Adam's step
counter is no memory to speak of), gradient bytes held after backward (``p.grad``), bytes that DDP's
gradient buffers keep between steps (distgrad's DDP; PyTorch's does not say), parameter bytes, and the
median step time (barrier before and after each step). One job per world size runs the
configurations one after another in fresh processes (``ranks.run_task``). The CPU only: state bytes
do not depend on the device, and the step times here are of ranks sharing a machine's cores.
Bytes do not drift from run to run; times do (read them as ratios within one world size).
"""
from __future__ import annotations

import importlib.util

import numpy as np

from distgrad.bench import frameworks
from distgrad.bench.ranks import join_torch_gloo, run_task
from distgrad.bench.timing import median_seconds

__all__ = ["CONFIGS", "LABELS", "W9", "layer_sizes", "runnable_configs", "worker", "measure", "add_ratios"]

CONFIGS = ("ddp", "zero1", "zero1_bucket_view", "zero2", "torch_ddp", "torch_zero1")
LABELS = {"ddp": "DDP + Adam", "zero1": "ZeRO-1", "zero1_bucket_view": "ZeRO-1, bucket view", "zero2": "ZeRO-2",
          "torch_ddp": "PyTorch DDP + Adam", "torch_zero1": "PyTorch DDP + ZeroRedundancyOptimizer"}
W9 = {"width": 2048, "layers": 6, "batch": 32}
CLASSES = 10
LR = 1e-4
FIGURES = ("optimizer_state_bytes", "grad_bytes", "bucket_bytes", "param_bytes", "step_ms")


def layer_sizes(width: int, layers: int) -> list[int]:
    """Features in and out of each Linear: ``width`` inputs, ``layers`` hidden width x width layers, 10 classes."""
    return [width] * (layers + 1) + [CLASSES]


def plain_config(config: str) -> str:
    """The configuration a ZeRO one is compared with: its framework's DDP + Adam."""
    return "torch_ddp" if config.startswith("torch") else "ddp"


def runnable_configs(configs) -> tuple[list[str], list[str]]:
    """``(configurations to run, notes on those left out)``: PyTorch's need PyTorch installed."""
    if importlib.util.find_spec("torch") is not None:
        return list(configs), []
    theirs = [c for c in configs if c.startswith("torch")]
    return [c for c in configs if c not in theirs], [f"{c}: PyTorch is not installed" for c in theirs]


def _tensor_bytes(t) -> int:
    return t.numel() * t.element_size()


def _state_bytes(optimizer) -> int:
    """Bytes of the tensors in ``optimizer.state`` (0-d ones, such as PyTorch's Adam step, left out)."""
    return sum(_tensor_bytes(v) for state in optimizer.state.values() for v in state.values()
               if hasattr(v, "dim") and v.dim() > 0)


def _build(fw, width: int, layers: int):
    fw.lib.manual_seed(0)  # the same model on every rank
    sizes = layer_sizes(width, layers)
    modules = []
    for a, b in zip(sizes, sizes[1:]):
        modules += [fw.nn.Linear(a, b), fw.nn.ReLU()]
    return fw.nn.Sequential(*modules[:-1])


def _distributed(fw):
    """``(DistributedDataParallel, ZeroRedundancyOptimizer, barrier)`` of ``fw``."""
    if fw.name == "torch":
        import torch.distributed as tdist
        from torch.distributed.optim import ZeroRedundancyOptimizer
        return fw.nn.parallel.DistributedDataParallel, ZeroRedundancyOptimizer, tdist.barrier
    import distgrad.distributed as dist
    from distgrad.distributed.optim import ZeroRedundancyOptimizer
    return dist.DistributedDataParallel, ZeroRedundancyOptimizer, dist.barrier


def _measure(fw, config: str, params: dict, rank: int) -> dict:
    """This rank's figures of one configuration."""
    DDP, ZeRO, barrier = _distributed(fw)
    model = _build(fw, params["width"], params["layers"])
    if config in ("ddp", "torch_ddp"):
        ddp = DDP(model)
        optimizer = local = fw.optim.Adam(model.parameters(), lr=LR)
    else:
        optimizer = ZeRO(model.parameters(), fw.optim.Adam, lr=LR,
                         parameters_as_bucket_view=config == "zero1_bucket_view")
        ddp = DDP(model, gradient_sharding=optimizer) if config == "zero2" else DDP(model)
        local = optimizer.optim
    rng = np.random.default_rng(rank)
    x = fw.lib.tensor(rng.standard_normal((params["batch"], params["width"])).astype(np.float32))
    y = fw.lib.tensor(rng.integers(0, CLASSES, params["batch"]))
    grad_bytes = []

    def step():
        optimizer.zero_grad()
        fw.F.cross_entropy(ddp(x), y).backward()
        grad_bytes.append(sum(_tensor_bytes(p.grad) for p in model.parameters() if p.grad is not None))
        optimizer.step()
    seconds = median_seconds(step, params["steps"], params["warmup"], synchronize=barrier)  # the slowest rank's
    return {"optimizer_state_bytes": _state_bytes(local), "grad_bytes": grad_bytes[-1],
            "bucket_bytes": ddp.reducer.held_bytes() if fw.name == "distgrad" else None,
            "param_bytes": sum(_tensor_bytes(p) for p in model.parameters()), "step_ms": seconds * 1e3}


def worker(params: dict, progress) -> dict:
    """One job of N ranks (``params``: ``configs``, ``width``, ``layers``, ``batch``, ``steps``, ``warmup``):
    a row per configuration, each figure the largest over the ranks."""
    import distgrad.distributed as dist
    dist.init_process_group("mpi")  # left by the worker's exit (distgrad.bench.worker)
    world, rank = dist.get_world_size(), dist.get_rank()
    rows, torch_joined = [], False
    for config in params["configs"]:
        fw = frameworks.load("torch" if config.startswith("torch") else "distgrad")
        if fw.name == "torch" and not torch_joined:
            join_torch_gloo()
            torch_joined = True
        everyone = [None] * world
        dist.all_gather_object(everyone, _measure(fw, config, params, rank))
        rows.append({"world_size": world, "config": config, "framework": fw.name,
                     **{key: None if everyone[0][key] is None else max(r[key] for r in everyone) for key in FIGURES}})
        progress(f"{world} rank(s): {config}")
    if torch_joined:
        import torch.distributed as tdist
        tdist.destroy_process_group()
    return {"rows": rows}


def add_ratios(rows: list[dict]) -> list[dict]:
    """Adds to each row ``state_vs_plain_n1`` (its optimizer-state bytes over plain Adam's, its framework's
    DDP at the smallest world size measured, normally 1) and ``step_vs_plain_ddp`` (its step time over its
    framework's DDP at the same world size); None where that configuration was not run."""
    smallest = min(r["world_size"] for r in rows)
    by_key = {(r["world_size"], r["config"]): r for r in rows}
    for r in rows:
        plain = plain_config(r["config"])
        alone, beside = by_key.get((smallest, plain)), by_key.get((r["world_size"], plain))
        r["state_vs_plain_n1"] = None if alone is None else r["optimizer_state_bytes"] / alone["optimizer_state_bytes"]
        r["step_vs_plain_ddp"] = None if beside is None else r["step_ms"] / beside["step_ms"]
    return rows


def measure(ranks: list[int], threads: int, configs=CONFIGS, width: int = W9["width"], layers: int = W9["layers"],
            batch: int = W9["batch"], steps: int = 5, warmup: int = 2, on_progress=None) -> dict:
    """Every configuration on every world size of ``ranks``, ``threads`` threads per rank: the section of
    ``results.json`` (``rows``, ``skipped``, ``settings``)."""
    run, skipped = runnable_configs(configs)
    params = {"configs": run, "width": width, "layers": layers, "batch": batch, "steps": steps, "warmup": warmup}
    rows = []
    for world in ranks:
        rows += run_task("zero", params, world, threads, on_progress)["rows"]
    sizes = layer_sizes(width, layers)
    return {"rows": add_ratios(rows), "skipped": skipped,
            "settings": {"model": f"MLP {'-'.join(map(str, sizes))}, float32",
                         "parameters": sum((a + 1) * b for a, b in zip(sizes, sizes[1:])), "width": width,
                         "layers": layers, "per_rank_batch": batch, "optimizer": f"Adam, lr {LR:g}", "steps": steps,
                         "warmup": warmup, "configs": run, "threads_per_rank": threads, "device": "cpu"}}
