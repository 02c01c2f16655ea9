"""W5: data-parallel throughput of W1's MLP on one machine, distgrad DDP (MPI) against PyTorch DDP (gloo).

Per-rank batch 64 of synthetic inputs (a step's time does not depend on the values), one thread per
process, ``steps`` steps after ``warmup`` timed as one free-running loop between two barriers (as in
training, the ranks are not re-aligned every step). World size 1 is the plain model in one process
(no DDP, no launcher); world size 2 is DDP on 2 ranks started by ``ranks.run_task``. PyTorch's
ranks meet through gloo at an address and port that rank 0 picks and sends to the others over MPI.
Scaling efficiency = throughput(2) / (2 x throughput(1)); every world size runs ``repeats`` times in
fresh processes (the world sizes taking turns) and the medians are quoted.
"""
from __future__ import annotations

import statistics

from distgrad.bench import frameworks
from distgrad.bench.metrics import scaling_efficiency
from distgrad.bench.ranks import join_torch_gloo, run_task
from distgrad.bench.timing import no_sync, seconds_per_call
from distgrad.bench.workloads import BATCH, build_model, sgd, synthetic_batch, train_step

__all__ = ["worker", "measure", "WORLD_SIZES"]

WORLD_SIZES = (1, 2)


def worker(params: dict, progress) -> dict:
    """One process of a run (``params``: ``framework``, ``world``, ``steps``, ``warmup``): its ms per step."""
    fw = frameworks.load(params["framework"])
    model, rank, barrier, leave = build_model("mlp", fw=fw), 0, no_sync, no_sync
    if params["world"] > 1:
        rank, barrier, leave, model = _join(fw, model)
    optimizer = sgd(fw, model)
    x, y = synthetic_batch(BATCH, seed=rank, fw=fw)
    seconds = seconds_per_call(lambda i: train_step(fw, model, optimizer, x, y), params["steps"], params["warmup"],
                               barrier)
    leave()
    return {"ms_per_step": seconds * 1000}


def _join(fw, model):
    """Joins ``fw``'s process group of the job's ranks and wraps ``model`` in its DDP:
    ``(rank, barrier, leave, ddp_model)``."""
    if fw.name == "distgrad":
        import distgrad.distributed as dist
        dist.init_process_group("mpi")  # left by the worker's exit (distgrad.bench.worker)
        return dist.get_rank(), dist.barrier, no_sync, dist.DistributedDataParallel(model)
    import torch.distributed as tdist
    rank = join_torch_gloo()
    return rank, tdist.barrier, tdist.destroy_process_group, fw.nn.parallel.DistributedDataParallel(model)


def measure(framework: str, steps: int, warmup: int, repeats: int) -> dict:
    """W5's figures for ``framework`` ('distgrad' or 'torch'), each run in fresh processes."""
    runs = {world: [] for world in WORLD_SIZES}
    for _ in range(repeats):
        for world in WORLD_SIZES:
            params = {"framework": framework, "world": world, "steps": steps, "warmup": warmup}
            runs[world].append(run_task("w5", params, None if world == 1 else world, threads=1)["ms_per_step"])
    ms = {world: statistics.median(times) for world, times in runs.items()}
    throughput = {world: world * BATCH * 1000 / ms[world] for world in ms}
    return {"ms_per_step_world1": ms[1], "ms_per_step_world2": ms[2],
            "samples_per_s_world1": throughput[1], "samples_per_s_world2": throughput[2],
            "scaling_efficiency": scaling_efficiency(throughput[2], 2, throughput[1]),
            "runs_ms": {f"world{w}": t for w, t in runs.items()}}
