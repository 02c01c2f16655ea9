"""The hierarchical all-reduce on real ranks, with nodes assigned by ``DISTGRAD_RANKS_PER_NODE``.

Run as ``hierarchical_cases.py REPORT_DIR`` under ``mpiexec -n N`` (``tests/test_hierarchical.py``:
4 ranks as 2 nodes of 2, and 3 ranks as nodes of 2 and 1). Every result is compared with the flat
all-reduce's on the same inputs, and DDP with the hierarchical all-reduce with one process on the
global batch.
"""
from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "distributed_scripts"))

import numpy as np  # noqa: E402

import distgrad as dg  # noqa: E402
import distgrad.distributed as dist  # noqa: E402
from ddp_models import global_batches, max_difference, mlp, shard, train  # noqa: E402
from distgrad import envvars  # noqa: E402
from distgrad.distributed import DistributedDataParallel as DDP  # noqa: E402
from distgrad.distributed import ReduceOp, comm_hooks, world  # noqa: E402
from distgrad.distributed.hierarchical import hierarchy_of  # noqa: E402
from runner import run_cases_on_the_mpi_world  # noqa: E402

B, STEPS = 4, 3


def the_nodes_are_the_blocks_of_ranks_per_node(r, n):
    per_node = int(os.environ[envvars.FAKE_RANKS_PER_NODE])
    x = dg.tensor(np.ones(3))
    dist.hierarchical_all_reduce(x)  # the first call makes the hierarchy
    h = hierarchy_of(world._default_group())
    assert h.nodes == -(-n // per_node), h.nodes
    assert h.is_leader == (r % per_node == 0)
    assert h.node_size == min(per_node, n - r + r % per_node)
    return {"nodes": h.nodes, "leader": h.is_leader, "node_size": h.node_size}


def every_op_and_dtype_equals_the_flat_all_reduce(r, n):
    rng = np.random.default_rng(r)
    for dtype in (np.float64, np.float32, np.int64):
        for op in (ReduceOp.SUM, ReduceOp.AVG, ReduceOp.MIN, ReduceOp.MAX, ReduceOp.PRODUCT):
            for shape in ((7,), (3, 5), (), (0,)):
                values = (rng.integers(1, 4, shape) if dtype == np.int64 else rng.standard_normal(shape)).astype(dtype)
                flat, hierarchical = dg.tensor(values.copy()), dg.tensor(values.copy())
                dist.all_reduce(flat, op=op)
                dist.hierarchical_all_reduce(hierarchical, op=op)
                # the sums are taken in another order: equal to round-off in floats, exactly in integers
                tolerance = 0 if dtype == np.int64 else 1e-5 if dtype == np.float32 else 1e-12
                assert np.allclose(flat.array, hierarchical.array, rtol=tolerance, atol=tolerance), (dtype, op, shape)


def many_asynchronous_all_reduces_in_flight_finish_in_any_order(r, n):
    """DDP's pattern: several buckets started before any is waited for (each stage keeps the order)."""
    tensors = [dg.tensor(np.full(100 * (k + 1) ** 3, float(r + k))) for k in range(8)]
    works = [dist.hierarchical_all_reduce(t, op=ReduceOp.SUM, async_op=True) for t in tensors]
    for w in works[::3]:  # poll some first, as DDP's hooks do
        w.is_completed()
    for k in (5, 0, 7, 2, 1, 6, 3, 4):  # then wait out of order
        works[k].wait()
    for k, t in enumerate(tensors):
        assert np.all(t.array == sum(q + k for q in range(n))), k


def a_group_on_real_nodes_has_one_node_here(r, n):
    """Without the variable, nodes are the ranks sharing memory: this machine is one node."""
    saved = os.environ.pop(envvars.FAKE_RANKS_PER_NODE)
    try:
        group = dist.new_group()
        x = dg.tensor(np.full(4, float(r)))
        dist.hierarchical_all_reduce(x, group=group)
        assert np.all(x.array == n * (n - 1) / 2)
        assert hierarchy_of(group).nodes == 1 and hierarchy_of(group).node_size == n
    finally:
        os.environ[envvars.FAKE_RANKS_PER_NODE] = saved


def _ddp_matches_one_process(r, n, **ddp_options):
    xs, ys = global_batches(STEPS, n, B)
    reference = mlp(depth=5, hidden=24)
    train(reference, xs, ys)
    ddp = DDP(mlp(depth=5, hidden=24), bucket_cap_mb=0.004, **ddp_options)  # several buckets in flight
    return ddp, xs, ys, reference


def ddp_with_the_hierarchical_hook_equals_one_process(r, n):
    ddp, xs, ys, reference = _ddp_matches_one_process(r, n)
    ddp.register_comm_hook(None, comm_hooks.hierarchical_allreduce_hook)
    train(ddp.module, [shard(x, r, B) for x in xs], [shard(y, r, B) for y in ys], wrapper=ddp)
    difference = max_difference(ddp.module, reference)
    assert difference <= 1e-12, f"parameters differ by {difference:g}"
    return {"difference": difference, "buckets": len(ddp.reducer.buckets)}


def ddp_with_the_environment_variable_equals_one_process(r, n):
    os.environ[envvars.HIERARCHICAL_ALLREDUCE] = "1"
    try:
        ddp, xs, ys, reference = _ddp_matches_one_process(r, n)
    finally:
        del os.environ[envvars.HIERARCHICAL_ALLREDUCE]
    assert ddp.reducer.comm_hook is comm_hooks.hierarchical_allreduce_hook
    train(ddp.module, [shard(x, r, B) for x in xs], [shard(y, r, B) for y in ys], wrapper=ddp)
    difference = max_difference(ddp.module, reference)
    assert difference <= 1e-12, f"parameters differ by {difference:g}"


CASES = [the_nodes_are_the_blocks_of_ranks_per_node, every_op_and_dtype_equals_the_flat_all_reduce,
         many_asynchronous_all_reduces_in_flight_finish_in_any_order, a_group_on_real_nodes_has_one_node_here,
         ddp_with_the_hierarchical_hook_equals_one_process, ddp_with_the_environment_variable_equals_one_process]
CASE_NAMES = [case.__name__ for case in CASES]


if __name__ == "__main__":
    run_cases_on_the_mpi_world(CASES, timeout=20)
