"""``distgrad-bench model``: the alpha-beta model checked against this machine and against published runs,
then asked what 8 to 1024 GPUs would do.

- Validation: alpha and beta are fitted to the all-reduce sweep (one fit per world size); every
  all-reduce point and every DDP step measured at more than one rank is then predicted from the
  single-rank compute times and the fit, and the relative error is reported.
- Anchors: published scaling results, recomputed from the models' parameter counts and assumed
  per-GPU step times and networks (each assumption is a field of ``ANCHORS``).
- Predictions: step time and efficiency at 8..1024 GPUs for each workload (measured here or given)
  on each network, for DDP's default (hierarchical all-reduce, 25 MiB buckets, overlap) and for the
  plain worst case (flat ring, one all-reduce after backward).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from distgrad.bench.costmodel import (PRESETS, Link, StepCompute, cluster_allreduce_s, ddp_bucket_bytes, fit_link,
                                      leader_allreduce_s, predict_step, predict_zero_step, ring_allreduce_s)

__all__ = ["GPU_COUNTS", "ANCHORS", "Anchor", "fit_networks", "validate_allreduce", "hierarchical_comparison",
           "validate_ddp", "anchor_rows",
           "measured_workloads", "prediction_rows", "DDP_DEFAULT", "WORST_CASE", "ZERO_1", "ZERO_2", "CONFIGURATIONS",
           "VALIDATION_VARIANTS"]

GPU_COUNTS = (8, 16, 32, 64, 128, 256, 512, 1024)
MIB = 2**20
DDP_DEFAULT = {"label": "hierarchical, 25 MiB buckets, overlap", "hierarchical": True, "bucket_cap_bytes": 25 * MIB,
               "overlap": True}
WORST_CASE = {"label": "flat ring, one all-reduce after backward", "hierarchical": False, "bucket_cap_bytes": None,
              "overlap": False}
ZERO_1 = {"label": "ZeRO-1: DDP's default, optimizer on 1/N, all-gather after it", "hierarchical": True,
          "bucket_cap_bytes": 25 * MIB, "overlap": True, "zero_stage": 1}
ZERO_2 = {"label": "ZeRO-2: reduce-scatter buckets, optimizer on 1/N, all-gather after it", "hierarchical": True,
          "bucket_cap_bytes": 25 * MIB, "overlap": True, "zero_stage": 2}
CONFIGURATIONS = (DDP_DEFAULT, WORST_CASE, ZERO_1, ZERO_2)


@dataclass(frozen=True)
class Anchor:
    """A published scaling result and the assumptions under which the model recomputes it."""
    name: str
    source: str
    model: str
    params: int
    per_gpu_batch: int
    per_gpu_step_s: float  # forward + backward on one GPU: an assumption, see ``notes``
    gpus: int
    gpus_per_node: int
    intra: str  # a PRESETS name
    inter: str
    hierarchical: bool
    overlap: bool
    bucket_bytes: int | None
    published_efficiency: float
    notes: str


ANCHORS = (
    Anchor("Horovod", "Sergeev & Del Balso, Horovod, arXiv:1802.05799 (2018)", "ResNet-101", 44_500_000, 64, 0.50,
           512, 4, "pcie3", "eth25", hierarchical=False, overlap=True, bucket_bytes=64 * MIB,
           published_efficiency=0.90,
           notes="about 90% at 512 GPUs; 128 servers x 4 Pascal GPUs on a RoCE-capable 25 Gb/s network, as we "
                 "read the paper; PCIe inside the servers and a per-GPU step of 0.50 s (about 130 images/s at "
                 "batch 64 on a P100 in TensorFlow) assumed; NCCL ring across all GPUs; tensor fusion in 64 MiB "
                 "buffers reduced while backward runs"),
    Anchor("ChainerMN", "Akiba, Fukuda & Suzuki, ChainerMN, arXiv:1710.11351 (2017)", "ResNet-50", 25_600_000, 32,
           0.15, 128, 4, "pcie3", "ib56", hierarchical=True, overlap=False, bucket_bytes=None,
           published_efficiency=0.90,
           notes="about 90% parallel efficiency at 128 GPUs; 32 nodes x 4 P100 on PCIe with InfiniBand FDR, and "
                 "a per-GPU step of 0.15 s (about 210 images/s at batch 32) assumed; NCCL inside nodes and MPI "
                 "across them; one all-reduce of all gradients after backward (no overlap in that version)"),
)


def fit_networks(allreduce_rows: list[dict]) -> dict[int, Link]:
    """One alpha-beta fit per world size above 1, on the host MPI float32 points (the DDP gradient case)
    of the flat all-reduce."""
    by_world = {}
    for row in allreduce_rows:
        if row["world_size"] > 1 and row["dtype"] == "float32" and row["device"] == "cpu" and row["correct"] \
                and row.get("algorithm", "flat") == "flat":
            by_world.setdefault(row["world_size"], []).append(row)
    return {world: fit_link([r["bytes"] for r in rows], [r["time_us"] * 1e-6 for r in rows], world)
            for world, rows in by_world.items() if len(rows) >= 2}


def validate_allreduce(allreduce_rows: list[dict], fits: dict[int, Link]) -> list[dict]:
    """Each fitted point beside its prediction (an in-sample check of the ring formula's shape)."""
    out = []
    for row in allreduce_rows:
        link = fits.get(row["world_size"])
        flat = row.get("algorithm", "flat") == "flat"
        if link is None or row["dtype"] != "float32" or row["device"] != "cpu" or not flat:
            continue
        predicted = ring_allreduce_s(row["bytes"], row["world_size"], link) * 1e6
        out.append({"world_size": row["world_size"], "bytes": row["bytes"], "measured_us": row["time_us"],
                    "predicted_us": predicted, "error": predicted / row["time_us"] - 1})
    return out


def hierarchical_comparison(allreduce_rows: list[dict]) -> list[dict]:
    """Each hierarchical all-reduce measured beside the flat one of the same size and world, and both
    beside the model: the flat ring with the link fitted at its world size, the leader variant
    (``leader_allreduce_s``) with the links fitted at g ranks (inside a node) and at N ranks (across)."""
    fits = fit_networks(allreduce_rows)
    flat = {(r["backend"], r["device"], r["dtype"], r["world_size"], r["bytes"]): r for r in allreduce_rows
            if r.get("algorithm", "flat") == "flat"}
    out = []
    for row in allreduce_rows:
        if row.get("algorithm") != "hierarchical":
            continue
        world, per_node = row["world_size"], row.get("ranks_per_node") or row["world_size"]
        nodes = -(-world // per_node)
        twin = flat.get((row["backend"], row["device"], row["dtype"], world, row["bytes"]))
        entry = {"world_size": world, "ranks_per_node": per_node, "nodes": nodes, "dtype": row["dtype"],
                 "bytes": row["bytes"], "hierarchical_us": row["time_us"],
                 "flat_us": twin["time_us"] if twin else None,
                 "ratio": row["time_us"] / twin["time_us"] if twin else None}
        intra, inter, ring = fits.get(per_node), fits.get(nodes), fits.get(world)
        if row["dtype"] == "float32" and row["device"] == "cpu":
            if intra is not None and (inter is not None or nodes == 1):
                entry["model_hierarchical_us"] = leader_allreduce_s(row["bytes"], nodes, per_node, intra,
                                                                    inter or intra) * 1e6
            if ring is not None:
                entry["model_flat_us"] = ring_allreduce_s(row["bytes"], world, ring) * 1e6
        out.append(entry)
    return out


def _compute_of(row: dict) -> StepCompute:
    return StepCompute(row["forward_ms"] / 1e3, row["backward_compute_ms"] / 1e3, row["optimizer_ms"] / 1e3)


def validate_ddp(ddp_rows: list[dict], fits: dict[int, Link]) -> list[dict]:
    """Every DDP step measured on several ranks against the model, with and without overlap, its bucket
    sizes as measured and the all-reduce fit for its world size, from two computes:

    - *alone*: the one-rank step at the same per-rank batch (the model's premise: devices do not slow
      each other down);
    - *loaded*: the plain model's step measured on every rank at once in the same run (ranks sharing
      one machine's cores and memory bandwidth slow each other down; GPUs in a cluster do not).

    ``ddp_extra_backward_ms`` is what DDP's backward cost beyond the plain one besides waiting (copies
    into the buckets, hooks): a cost the model leaves out.
    """
    single = {(r["model"], r["per_rank_batch"]): r for r in ddp_rows if r["world_size"] == 1}
    out = []
    for row in ddp_rows:
        base, link = single.get((row["model"], row["per_rank_batch"])), fits.get(row["world_size"])
        if row["world_size"] == 1 or base is None or link is None:
            continue

        def cost(nbytes, p=row["world_size"], link=link):
            return ring_allreduce_s(nbytes, p, link)
        loaded = StepCompute(row["plain_forward_ms"] / 1e3, row["plain_backward_ms"] / 1e3,
                             row["plain_optimizer_ms"] / 1e3)
        entry = {"model": row["model"], "world_size": row["world_size"], "per_rank_batch": row["per_rank_batch"],
                 "bucket_cap_mb": row["bucket_cap_mb"], "measured_step_ms": row["step_ms"],
                 "single_rank_step_ms": base["step_ms"], "loaded_compute_ms": loaded.total_s * 1e3,
                 "ddp_extra_backward_ms": row["backward_compute_ms"] - row["plain_backward_ms"],
                 "measured_allreduce_ms": row["allreduce_ms"]}
        for compute_name, compute in (("alone", _compute_of(base)), ("loaded", loaded)):
            for overlap in (True, False):
                prediction = predict_step(compute, row["buckets"], cost, overlap)
                key = f"{compute_name}_{'overlap' if overlap else 'serial'}"
                entry[f"predicted_{key}_ms"] = prediction.step_s * 1e3
                entry[f"error_{key}"] = prediction.step_s * 1e3 / row["step_ms"] - 1
                entry["predicted_allreduce_ms"] = prediction.allreduce_s * 1e3
        out.append(entry)
    return out


VALIDATION_VARIANTS = {"alone_overlap": "one-rank compute, overlap", "alone_serial": "one-rank compute, no overlap",
                       "loaded_overlap": "loaded compute, overlap", "loaded_serial": "loaded compute, no overlap"}


def anchor_rows(anchors=ANCHORS) -> list[dict]:
    """Each anchor's prediction beside its published efficiency, and the per-GPU step time at which the
    model would give the published figure."""
    out = []
    for anchor in anchors:
        intra, inter = PRESETS[anchor.intra], PRESETS[anchor.inter]
        grad_bytes = 4 * anchor.params

        def predict(step_s):
            buckets = [grad_bytes] if anchor.bucket_bytes is None else \
                ddp_bucket_bytes(grad_bytes, anchor.bucket_bytes, first_bucket_bytes=anchor.bucket_bytes)
            return predict_step(StepCompute.from_total(step_s), buckets,
                                lambda n: cluster_allreduce_s(n, anchor.gpus, anchor.gpus_per_node, intra, inter,
                                                              anchor.hierarchical), anchor.overlap)
        prediction = predict(anchor.per_gpu_step_s)
        out.append({**asdict(anchor), "predicted_efficiency": prediction.efficiency,
                    "predicted_allreduce_ms": prediction.allreduce_s * 1e3,
                    "error_points": 100 * (prediction.efficiency - anchor.published_efficiency),
                    "step_s_matching_published": _step_for_efficiency(predict, anchor.published_efficiency)})
    return out


def _step_for_efficiency(predict, target: float) -> float | None:
    """The per-GPU step time whose predicted efficiency is ``target`` (bisection; efficiency rises with it)."""
    low, high = 1e-4, 100.0
    if predict(high).efficiency < target:
        return None
    for _ in range(80):
        middle = (low * high) ** 0.5
        low, high = (middle, high) if predict(middle).efficiency < target else (low, middle)
    return high


def measured_workloads(ddp_rows: list[dict]) -> dict[str, dict]:
    """Single-rank weak-scaling rows as model inputs: name -> {compute, grad_bytes, batch}."""
    return {f"{r['model']} ({r['parameters'] / 1e6:.2f}M params, batch {r['per_rank_batch']}, measured)":
            {"compute": _compute_of(r), "grad_bytes": r["grad_bytes"], "batch": r["per_rank_batch"]}
            for r in ddp_rows if r["world_size"] == 1 and "weak" in r["tags"]}


def prediction_rows(workloads: dict, networks: dict[str, tuple[Link, Link]], gpus_per_node: int,
                    gpu_counts=GPU_COUNTS, configurations=CONFIGURATIONS) -> list[dict]:
    """Predicted step time and efficiency for every workload x network x configuration x GPU count."""
    out = []
    for workload, spec in workloads.items():
        for network, (intra, inter) in networks.items():
            for config in configurations:
                buckets = ddp_bucket_bytes(spec["grad_bytes"], config["bucket_cap_bytes"])
                for gpus in gpu_counts:
                    def allreduce_s(n, g=gpus, config=config):
                        return cluster_allreduce_s(n, g, gpus_per_node, intra, inter, config["hierarchical"])
                    if config.get("zero_stage"):
                        prediction = predict_zero_step(spec["compute"], buckets, allreduce_s, gpus,
                                                       config["zero_stage"], config["overlap"])
                    else:
                        prediction = predict_step(spec["compute"], buckets, allreduce_s, config["overlap"])
                    out.append({"workload": workload, "network": network, "configuration": config["label"],
                                "gpus": gpus, "gpus_per_node": gpus_per_node, "step_ms": prediction.step_s * 1e3,
                                "compute_ms": prediction.compute_s * 1e3, "exposed_comm_ms": prediction.exposed_s * 1e3,
                                "efficiency": prediction.efficiency,
                                "samples_per_s": gpus * spec["batch"] / prediction.step_s if "batch" in spec else None})
    return out
