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
"""
from __future__ import annotations

import time

import numpy as np

from distgrad.bench.metrics import hidden_fraction, median, scaling_efficiency
from distgrad.bench.workloads import build_model, parameter_count, synthetic_batch

__all__ = ["plan", "worker", "median_run", "scaling_rows", "bucket_rows", "DEFAULT_BUCKET_CAP_MB"]

DEFAULT_BUCKET_CAP_MB = 25.0
PHASES = ("forward_ms", "backward_ms", "comm_wait_ms", "optimizer_ms", "step_ms", "plain_forward_ms",
          "plain_backward_ms", "plain_optimizer_ms", "allreduce_ms")


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
    from distgrad import backend

    dist.init_process_group(params["backend"])
    device = params["device"]
    if device == "cuda":
        device = f"cuda:{dist.get_local_rank() % backend.cuda_device_count()}"
    rows = []
    for config in params["configs"]:
        rows.append(_run_config(config, device, params["steps"], params["warmup"]))
        progress(f"{config['model']} batch {config['per_rank_batch']}, cap {config['bucket_cap_mb']:g} MiB, "
                 f"on {dist.get_world_size()} rank(s)")
    return {"rows": rows}


def _run_config(config: dict, device: str, steps: int, warmup: int) -> dict:
    import distgrad.distributed as dist
    import distgrad.nn.functional as F
    from distgrad import backend, optim
    from distgrad.distributed import ReduceOp
    from mpi4py import MPI

    world, rank = dist.get_world_size(), dist.get_rank()
    synchronize = backend.synchronize if device != "cpu" else (lambda: None)
    model = build_model(config["model"], config["params"], device)
    grad_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    clock = _WaitClock(synchronize)
    if world > 1:
        trained = dist.DistributedDataParallel(model, bucket_cap_mb=config["bucket_cap_mb"])
        trained.register_comm_hook(None, clock.hook)
        plain = build_model(config["model"], config["params"], device)
    else:
        trained, plain = model, None
    optimizer = optim.SGD(trained.parameters(), lr=0.01, momentum=0.9)
    plain_optimizer = optim.SGD(plain.parameters(), lr=0.01, momentum=0.9) if plain is not None else None
    x, y = synthetic_batch(config["per_rank_batch"], seed=rank, device=device)

    def now() -> float:
        synchronize()
        return time.perf_counter()

    def measure_step() -> list[float]:
        dist.barrier()
        clock.seconds = 0.0
        t0 = now()
        loss = F.cross_entropy(trained(x), y)
        t1 = now()
        optimizer.zero_grad()
        t2 = now()
        loss.backward()
        t3 = now()
        optimizer.step()
        t4 = now()
        figures = [t1 - t0, t3 - t2, clock.seconds, (t2 - t1) + (t4 - t3), t4 - t0, 0.0, 0.0, 0.0, 0.0]
        if plain is not None:
            dist.barrier()
            t5 = now()
            plain_loss = F.cross_entropy(plain(x), y)
            t6 = now()
            plain_optimizer.zero_grad()
            t7 = now()
            plain_loss.backward()
            t8 = now()
            plain_optimizer.step()
            t9 = now()
            figures[5:8] = [t6 - t5, t8 - t7, (t7 - t6) + (t9 - t8)]
            dist.barrier()
            t10 = now()
            works = [dist.all_reduce(b.buffer(), op=ReduceOp.AVG, async_op=True) for b in trained.reducer.buckets]
            for work in works:
                work.wait()
            figures[8] = now() - t10
        slowest = np.empty(len(figures))
        MPI.COMM_WORLD.Allreduce(np.array(figures), slowest, op=MPI.MAX)
        return [1000 * s for s in slowest]

    for _ in range(warmup):
        measure_step()
    samples = [measure_step() for _ in range(steps)]
    row = {**{k: v for k, v in config.items() if k != "params"}, "world_size": world,
           "parameters": parameter_count(model), "grad_bytes": grad_bytes, "steps": steps}
    row.update({name: median(s[i] for s in samples) for i, name in enumerate(PHASES)})
    row["backward_compute_ms"] = row["backward_ms"] - row["comm_wait_ms"]
    row["samples_per_s"] = world * config["per_rank_batch"] * 1000 / row["step_ms"]
    if plain is not None:
        row["buckets"] = [b.nbytes() for b in trained.reducer.buckets]
        row["hidden_fraction"] = hidden_fraction(row["plain_backward_ms"], row["allreduce_ms"], row["backward_ms"])
    else:
        row.update(buckets=[], hidden_fraction=None, plain_forward_ms=None, plain_backward_ms=None,
                   plain_optimizer_ms=None, allreduce_ms=None)
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
