"""DDP training steps on N ranks: throughput, scaling efficiency, and where a step's time goes.

Each step is timed in four phases: forward (model and loss), backward (until every gradient is
averaged), of which *communication wait* is the time the end of backward spends waiting for bucket
all-reduces (timed by a communication hook around DDP's own all-reduce), and the optimizer
(``zero_grad`` and ``step``). To see how much communication overlapping hid, each step is followed
by a step of an identical plain model (no DDP; its phases are the compute of every rank when all
ranks compute at once) and by the same buckets' all-reduces alone:
``hidden = (plain backward + all-reduces - DDP backward) / all-reduces``. Ranks start each
measurement together (barrier); every figure is the median over steps of the slowest rank's value,
taken from the run whose step time is the median of ``--repeats`` runs in fresh processes.
World size 1 trains the plain model in one process (no DDP): the baseline of the efficiencies.
This is the one measurement of the hidden fraction: ``distgrad-bench ddp`` and
``benchmarks/ddp_overlap.py`` (which adds the no-overlap reference, ``no_overlap: true``) both run it.
"""
from __future__ import annotations

import time

import numpy as np

from distgrad.bench import frameworks
from distgrad.bench.metrics import hidden_fraction, median, scaling_efficiency
from distgrad.bench.ranks import rank_device
from distgrad.bench.timing import synchronized_clock
from distgrad.bench.workloads import build_model, parameter_count, sgd, synthetic_batch

__all__ = ["plan", "worker", "median_run", "scaling_rows", "bucket_rows", "DEFAULT_BUCKET_CAP_MB"]

DEFAULT_BUCKET_CAP_MB = 25.0


def plan(models: dict, ranks: list[int], modes: list[str], bucket_caps: list[float],
         bucket_model: str | None) -> dict[int, list[dict]]:
    """The configurations to run at each world size.

    ``models`` maps a model name to ``{"batch": per-rank batch of weak scaling, "params": ...}``.
    Weak scaling keeps the per-rank batch; strong scaling keeps the global batch (the weak batch)
    and gives each rank its share. World size 1 also times the per-rank batches of strong scaling
    (tag ``compute``), the single-device inputs of the scale model. ``bucket_model`` is also run
    with every cap of ``bucket_caps`` at each world size above 1 (tag ``bucket``).
    """
    configs = {}

    def add(world, model, batch, cap, tag):
        key = (world, model, batch, cap)
        entry = configs.setdefault(key, {"model": model, "params": models[model].get("params"),
                                         "per_rank_batch": batch, "bucket_cap_mb": cap, "tags": []})
        if tag not in entry["tags"]:
            entry["tags"].append(tag)

    for world in ranks:
        for model, spec in models.items():
            batch = spec["batch"]
            for mode in modes:
                add(world, model, batch if mode == "weak" else max(1, batch // world), DEFAULT_BUCKET_CAP_MB, mode)
            if world == 1 and "strong" in modes:
                for other in ranks:
                    add(1, model, max(1, batch // other), DEFAULT_BUCKET_CAP_MB, "compute")
        if world > 1 and bucket_model is not None:
            for cap in bucket_caps:
                add(world, bucket_model, models[bucket_model]["batch"], cap, "bucket")
    by_world = {world: [] for world in ranks}
    for (world, *_), entry in configs.items():
        by_world[world].append(entry)
    return by_world


class _WaitClock:
    """Seconds spent in ``wait()`` of the bucket futures: the end of backward waiting for communication."""

    def __init__(self, synchronize):
        self.seconds = 0.0
        self._synchronize = synchronize

    def hook(self, state, bucket):
        from distgrad.distributed.comm_hooks import allreduce_hook
        return _TimedFuture(allreduce_hook(None, bucket), self)


class _TimedFuture:
    """DDP's all-reduce future, its ``wait()`` timed (on a GPU: until the reduction has finished)."""

    def __init__(self, future, clock: _WaitClock):
        self._future, self._clock = future, clock

    def wait(self):
        start = time.perf_counter()
        result = self._future.wait()
        self._clock._synchronize()
        self._clock.seconds += time.perf_counter() - start
        return result

    def poll(self) -> bool:
        return self._future.poll()


def worker(params: dict, progress) -> dict:
    """One rank (started by ``distgrad-bench ddp``): every configuration of ``params['configs']``."""
    import distgrad.distributed as dist

    dist.init_process_group(params["backend"])
    device = rank_device(params["device"])
    rows = []
    for config in params["configs"]:
        rows.append(_run_config(config, device, params["steps"], params["warmup"]))
        progress(f"{config['model']} batch {config['per_rank_batch']}, cap {config['bucket_cap_mb']:g} MiB, "
                 f"on {dist.get_world_size()} rank(s)")
    return {"rows": rows}


def _deferred_allreduce(state, bucket):
    """A comm hook that starts a bucket's all-reduce only when the end of backward waits for it: DDP
    with every all-reduce after the whole backward (no overlap), the reference of ``no_overlap_*``."""
    from distgrad.distributed.comm_hooks import CommFuture, allreduce_hook
    return CommFuture(None, then=lambda: allreduce_hook(state, bucket).wait())


def _timed_step(fw, model, optimizer, x, y, clock) -> dict:
    """One training step's phases in seconds: forward (model and loss), backward, optimizer (``zero_grad``
    and ``step``) and the whole step."""
    t0 = clock()
    loss = fw.F.cross_entropy(model(x), y)
    t1 = clock()
    optimizer.zero_grad()
    t2 = clock()
    loss.backward()
    t3 = clock()
    optimizer.step()
    t4 = clock()
    return {"forward": t1 - t0, "backward": t3 - t2, "optimizer": (t2 - t1) + (t4 - t3), "step": t4 - t0}


def _run_config(config: dict, device: str, steps: int, warmup: int) -> dict:
    """One configuration's row. Each measured step times, ranks aligned by a barrier before each: the DDP
    step (comm wait timed by a hook), then on several ranks the plain model's step (``plain_*``), the
    same buckets' all-reduces alone, and with ``config['no_overlap']`` a DDP step whose all-reduces
    wait for the end of backward (``no_overlap_*``). Interleaved step by step, so that drifts in the
    machine's load hit all alike."""
    import distgrad.distributed as dist
    from distgrad.distributed import ReduceOp
    from mpi4py import MPI

    world, rank = dist.get_world_size(), dist.get_rank()
    fw = frameworks.load("distgrad")
    synchronize = fw.synchronizer(device)
    clock = synchronized_clock(synchronize)

    def fresh_model():
        return build_model(config["model"], config.get("params"), device, width=config.get("width"),
                           depth=config.get("depth"))
    model = fresh_model()
    grad_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    wait = _WaitClock(synchronize)
    runs = {"": model}  # prefix of the figures -> the model trained in each measured step
    if world > 1:
        runs[""] = dist.DistributedDataParallel(model, bucket_cap_mb=config["bucket_cap_mb"])
        runs[""].register_comm_hook(None, wait.hook)
        runs["plain_"] = fresh_model()
        if config.get("no_overlap"):
            runs["no_overlap_"] = dist.DistributedDataParallel(fresh_model(), bucket_cap_mb=config["bucket_cap_mb"])
            runs["no_overlap_"].register_comm_hook(None, _deferred_allreduce)
    optimizers = {prefix: sgd(fw, trained) for prefix, trained in runs.items()}
    x, y = synthetic_batch(config["per_rank_batch"], seed=rank, device=device)

    def allreduce_alone() -> float:
        start = clock()
        works = [dist.all_reduce(b.buffer(), op=ReduceOp.AVG, async_op=True) for b in runs[""].reducer.buckets]
        for work in works:
            work.wait()
        return clock() - start

    def measure_step() -> dict:
        """Milliseconds of every figure, each the slowest rank's."""
        wait.seconds, figures = 0.0, {}
        for prefix, trained in runs.items():
            dist.barrier()
            phases = _timed_step(fw, trained, optimizers[prefix], x, y, clock)
            figures.update({prefix + phase: seconds for phase, seconds in phases.items()})
        figures["comm_wait"] = wait.seconds
        if world > 1:
            dist.barrier()
            figures["allreduce"] = allreduce_alone()
        slowest = np.empty(len(figures))
        MPI.COMM_WORLD.Allreduce(np.array(list(figures.values())), slowest, op=MPI.MAX)
        return {f"{name}_ms": 1000 * s for name, s in zip(figures, slowest)}

    for _ in range(warmup):
        measure_step()
    samples = [measure_step() for _ in range(steps)]
    row = {**{k: v for k, v in config.items() if k != "params"}, "world_size": world,
           "parameters": parameter_count(model), "grad_bytes": grad_bytes, "steps": steps}
    row.update({name: median(s[name] for s in samples) for name in samples[0]})
    row["backward_compute_ms"] = row["backward_ms"] - row["comm_wait_ms"]
    row["samples_per_s"] = world * config["per_rank_batch"] * 1000 / row["step_ms"]
    if world > 1:
        row["buckets"] = [b.nbytes() for b in runs[""].reducer.buckets]
        row["hidden_fraction"] = hidden_fraction(row["plain_backward_ms"], row["allreduce_ms"], row["backward_ms"])
    else:
        row.update(buckets=[], hidden_fraction=None, plain_forward_ms=None, plain_backward_ms=None,
                   plain_optimizer_ms=None, plain_step_ms=None, allreduce_ms=None)
    return row


def median_run(rows: list[dict]) -> dict:
    """Of one configuration's rows from repeated runs, the run with the median step time (whole, so that
    its figures stay consistent with each other), with every run's step time beside it."""
    ranked = sorted(rows, key=lambda r: r["step_ms"])
    return {**ranked[(len(ranked) - 1) // 2], "repeats_step_ms": [r["step_ms"] for r in rows]}


def _single_rank_throughput(rows: list[dict], model: str, batch: int) -> float | None:
    for row in rows:
        if row["world_size"] == 1 and row["model"] == model and row["per_rank_batch"] == batch:
            return row["samples_per_s"]
    return None


def scaling_rows(rows: list[dict], mode: str) -> list[dict]:
    """Rows of ``mode`` ('strong' or 'weak') with their scaling efficiency against one rank."""
    out = []
    for row in rows:
        if mode not in row["tags"]:
            continue
        weak_batch = next((r["per_rank_batch"] for r in rows if r["model"] == row["model"] and r["world_size"] == 1
                           and "weak" in r["tags"]), None)
        base = _single_rank_throughput(rows, row["model"], weak_batch)
        efficiency = scaling_efficiency(row["samples_per_s"], row["world_size"], base) if base else None
        out.append({**row, "mode": mode, "efficiency": efficiency})
    return sorted(out, key=lambda r: (r["model"], r["world_size"]))


def bucket_rows(rows: list[dict]) -> list[dict]:
    """The bucket-size sweep: same model and batch, one row per world size and cap."""
    return sorted((r for r in rows if "bucket" in r["tags"]), key=lambda r: (r["world_size"], r["bucket_cap_mb"]))
