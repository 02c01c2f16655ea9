"""An alpha-beta model of data-parallel training: what a step costs on p devices.

A message of n bytes over a link costs ``alpha + n / beta`` (alpha: latency per step, beta:
bandwidth). A ring all-reduce over p ranks takes 2(p-1) steps, each moving n/p bytes per rank:

    T_ring(n, p) = 2(p-1) alpha + 2(p-1)/p * n / beta

Across nodes of g devices the *hierarchical* variant reduce-scatters inside each node, all-reduces
each device's 1/g shard across the N nodes (the g shards share the node's network bandwidth), and
all-gathers inside the node again: the latency term grows with N instead of p. distgrad's own
hierarchical all-reduce (``distributed/hierarchical.py``) is the *leader* variant: it reduces the
whole message to one rank per node, all-reduces among those leaders, and broadcasts in the node. A
large reduce or broadcast costs a ring all-reduce's time (a reduce-scatter then a gather; a scatter
then an all-gather), so that variant pays the node's all-reduce twice:

    T_leader(n) = 2 T_ring(n, g, node) + T_ring(n, N, network)

A ring all-reduce is a reduce-scatter followed by an all-gather, each half of T_ring. ZeRO moves the
same bytes in other places: stage 1 all-reduces the gradients as DDP does and all-gathers the
updated parameters after the optimizer step; stage 2 reduce-scatters the gradient buckets instead of
all-reducing them, then all-gathers the parameters. Both update 1/p of the parameters per device.

A DDP step on one device costs forward + backward + optimizer (measured); data parallelism adds the
all-reduce of every gradient bucket. Without overlap the buckets are reduced after backward; with
overlap bucket i can start once backward has produced its gradients (taken as proportional to its
bytes) and the previous bucket's all-reduce is done, so only what outlasts backward is exposed.
Every time here is in seconds, every size in bytes, every bandwidth in bytes per second.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from distgrad.distributed.buckets import FIRST_BUCKET_BYTES

__all__ = ["Link", "PRESETS", "ring_allreduce_s", "ring_reduce_scatter_s", "hierarchical_allreduce_s",
           "leader_allreduce_s",
           "cluster_allreduce_s", "ddp_bucket_bytes", "StepCompute", "StepPrediction", "predict_step",
           "predict_zero_step", "fit_link"]


@dataclass(frozen=True)
class Link:
    """A network: ``alpha_s`` seconds of latency per message, ``beta_Bps`` bytes per second."""
    alpha_s: float
    beta_Bps: float
    description: str = ""

    @classmethod
    def from_units(cls, alpha_us: float, beta_GBps: float, description: str = "") -> "Link":
        return cls(alpha_us * 1e-6, beta_GBps * 1e9, description)


# Effective per-node figures (about 90% of line rate; latency of one NCCL/MPI message). Assumptions,
# not measurements: override with --alpha-us/--beta-GBps, or fit them with `distgrad-bench allreduce`.
PRESETS = {
    "nvlink": Link.from_units(2, 150, "NVLink/NVSwitch inside a node (A100 class; H100 about twice)"),
    "pcie3": Link.from_units(5, 10, "PCIe 3.0 x16 between GPUs of one node, no NVLink"),
    "ib56": Link.from_units(5, 6, "InfiniBand FDR 56 Gb/s, one NIC per node"),
    "ib100": Link.from_units(5, 11, "InfiniBand EDR 100 Gb/s, one NIC per node"),
    "ib200": Link.from_units(5, 22, "InfiniBand HDR 200 Gb/s, one NIC per node"),
    "ib400": Link.from_units(5, 44, "InfiniBand NDR 400 Gb/s, one NIC per node"),
    "eth25": Link.from_units(25, 2.8, "25 Gb Ethernet (TCP or RoCE), one NIC per node"),
    "eth100": Link.from_units(20, 11, "100 Gb Ethernet (TCP or RoCE), one NIC per node"),
}


def ring_allreduce_s(nbytes: float, p: int, link: Link) -> float:
    """2(p-1) alpha + 2(p-1)/p n / beta; nothing to do on one rank."""
    if p <= 1:
        return 0.0
    return 2 * (p - 1) * link.alpha_s + 2 * (p - 1) / p * nbytes / link.beta_Bps


def ring_reduce_scatter_s(nbytes: float, p: int, link: Link) -> float:
    """(p-1) alpha + (p-1)/p n / beta: half a ring all-reduce; an all-gather of n bytes costs the same."""
    return ring_allreduce_s(nbytes, p, link) / 2


def hierarchical_allreduce_s(nbytes: float, nodes: int, per_node: int, intra: Link, inter: Link) -> float:
    """Reduce-scatter in the node, all-reduce of the 1/g shards across nodes, all-gather in the node.

    = 2(g-1) a_intra + 2(g-1)/g n / b_intra + 2(N-1) a_inter + 2(N-1)/N n / b_inter, with g devices
    per node and N nodes: the g shards of n/g bytes cross the node's network link side by side.
    """
    g, N = per_node, nodes
    inside = 2 * (g - 1) * intra.alpha_s + 2 * (g - 1) / g * nbytes / intra.beta_Bps if g > 1 else 0.0
    across = 2 * (N - 1) * inter.alpha_s + 2 * (N - 1) / N * nbytes / inter.beta_Bps if N > 1 else 0.0
    return inside + across


def leader_allreduce_s(nbytes: float, nodes: int, per_node: int, intra: Link, inter: Link) -> float:
    """Reduce to each node's leader, all-reduce among the N leaders, broadcast in the node (distgrad's
    ``hierarchical_all_reduce``): 2 T_ring(n, g, intra) + T_ring(n, N, inter)."""
    return 2 * ring_allreduce_s(nbytes, per_node, intra) + ring_allreduce_s(nbytes, nodes, inter)


def cluster_allreduce_s(nbytes: float, devices: int, per_node: int, intra: Link, inter: Link,
                        hierarchical: bool) -> float:
    """All-reduce over ``devices`` filling nodes of ``per_node``: a ring inside one node; across nodes
    the hierarchical variant or a flat ring whose every step is paced by the network link."""
    if devices <= per_node:
        return ring_allreduce_s(nbytes, devices, intra)
    nodes = math.ceil(devices / per_node)
    if hierarchical:
        return hierarchical_allreduce_s(nbytes, nodes, per_node, intra, inter)
    return ring_allreduce_s(nbytes, devices, inter)


def ddp_bucket_bytes(grad_bytes: int, bucket_cap_bytes: int | None,
                     first_bucket_bytes: int = FIRST_BUCKET_BYTES) -> list[int]:
    """Bucket sizes in reduction order, as DDP lays them out for finely divisible gradients: the first
    at most ``min(first_bucket_bytes, cap)``, then ``cap`` each, the remainder last. No cap: one bucket."""
    if bucket_cap_bytes is None or grad_bytes <= 0:
        return [grad_bytes]
    first = min(first_bucket_bytes, bucket_cap_bytes, grad_bytes)
    sizes, rest = [first], grad_bytes - first
    while rest > 0:
        sizes.append(min(bucket_cap_bytes, rest))
        rest -= sizes[-1]
    return sizes


@dataclass(frozen=True)
class StepCompute:
    """One device's training step without communication, split as DDP's timeline needs it."""
    forward_s: float
    backward_s: float
    optimizer_s: float

    @property
    def total_s(self) -> float:
        return self.forward_s + self.backward_s + self.optimizer_s

    @classmethod
    def from_total(cls, step_s: float, backward_share: float = 2 / 3, optimizer_s: float = 0.0) -> "StepCompute":
        """From a forward+backward time alone, backward taken as ``backward_share`` of it (2/3: backward
        costs about twice forward, two matrix products per layer instead of one)."""
        return cls(step_s * (1 - backward_share), step_s * backward_share, optimizer_s)


@dataclass(frozen=True)
class StepPrediction:
    step_s: float
    compute_s: float
    allreduce_s: float  # all buckets' all-reduces back to back (with ZeRO: its collectives)
    exposed_s: float  # what the step waits for beyond compute

    @property
    def efficiency(self) -> float:
        """compute / step: the weak-scaling efficiency (per-device batch fixed)."""
        return self.compute_s / self.step_s


def predict_step(compute: StepCompute, buckets: list[int], allreduce_s, overlap: bool) -> StepPrediction:
    """Step time when the buckets (bytes, in reduction order) are all-reduced by ``allreduce_s(nbytes)``
    one after another on one channel, after backward or overlapped with it."""
    costs = [allreduce_s(b) for b in buckets]
    total_bytes = float(sum(buckets)) or 1.0
    if overlap:
        finish, produced = 0.0, 0.0
        for nbytes, cost in zip(buckets, costs):
            produced += nbytes
            ready = compute.backward_s * produced / total_bytes
            finish = max(ready, finish) + cost
        exposed = max(0.0, finish - compute.backward_s)
    else:
        exposed = sum(costs)
    return StepPrediction(compute.total_s + exposed, compute.total_s, sum(costs), exposed)


def predict_zero_step(compute: StepCompute, buckets: list[int], allreduce_s, world_size: int, stage: int,
                      overlap: bool) -> StepPrediction:
    """Step time of DDP with ZeRO ``stage`` 1 or 2 over ``world_size`` devices.

    The optimizer updates 1/world_size of the parameters. Stage 1 all-reduces the buckets (as
    ``predict_step``), stage 2 reduce-scatters them (half of ``allreduce_s``, overlapped alike); both
    then all-gather the updated parameters (as many bytes as the gradients: half of ``allreduce_s``),
    after the optimizer step, where nothing hides it. ``compute_s`` stays one device's whole step, so
    the efficiency can exceed DDP's when the optimizer's share outweighs the all-gather.
    """
    if stage not in (1, 2):
        raise ValueError(f"ZeRO stage must be 1 or 2, got {stage}")
    sharded = StepCompute(compute.forward_s, compute.backward_s, compute.optimizer_s / world_size)
    reduce_s = allreduce_s if stage == 1 else (lambda nbytes: allreduce_s(nbytes) / 2)
    step = predict_step(sharded, buckets, reduce_s, overlap)
    gather_s = allreduce_s(sum(buckets)) / 2 if world_size > 1 else 0.0
    return StepPrediction(step.step_s + gather_s, compute.total_s, step.allreduce_s + gather_s,
                          step.exposed_s + gather_s)


def fit_link(sizes, seconds, world_size: int, large_bytes: int = 2**20) -> Link:
    """alpha and beta of ``ring_allreduce_s`` estimated from measured all-reduce times on ``world_size`` ranks.

    alpha comes from the four smallest messages (latency-bound), beta from the messages of at least
    ``large_bytes`` (bandwidth-bound: the range of DDP's buckets), each after taking the other term
    off; beta by least squares on relative errors. A machine whose bandwidth depends on the size
    (caches) fits no straight line: this one is right where gradients travel. With fewer than two
    large messages, beta comes from the larger half.
    """
    if world_size < 2:
        raise ValueError(f"fit_link needs at least 2 ranks (one rank moves no bytes), got {world_size}")
    order = np.argsort(np.asarray(sizes, dtype=np.float64))
    n = np.asarray(sizes, dtype=np.float64)[order]
    t = np.asarray(seconds, dtype=np.float64)[order]
    steps, moved = 2 * (world_size - 1), 2 * (world_size - 1) / world_size * n
    latency_bound = slice(0, min(4, len(n)))
    bandwidth_bound = n >= large_bytes if np.count_nonzero(n >= large_bytes) >= 2 else np.arange(len(n)) >= len(n) // 2
    alpha, inverse_beta = 0.0, 0.0
    for _ in range(5):  # the two estimates barely depend on each other: a few rounds settle them
        alpha = max(0.0, float(np.median((t[latency_bound] - moved[latency_bound] * inverse_beta) / steps)))
        x, y, w = moved[bandwidth_bound], t[bandwidth_bound] - steps * alpha, 1 / t[bandwidth_bound] ** 2
        inverse_beta = max(0.0, float(np.sum(w * x * y) / np.sum(w * x * x)))
    beta = 1 / inverse_beta if inverse_beta > 0 else math.inf
    return Link(alpha, beta, f"fitted to {len(n)} all-reduce sizes on {world_size} ranks")
