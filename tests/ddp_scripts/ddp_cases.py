"""DistributedDataParallel on real ranks: every case runs on each rank of ``mpiexec -n N`` (or alone).

Run as ``ddp_cases.py REPORT_DIR``; each rank writes ``REPORT_DIR/rank<r>.json`` with
``{"results": {case: "ok" | "skipped: why" | the failure}, "data": {case: what it returned}}``.
``tests/test_ddp.py`` runs it for N = 1, 2, 3. The reference for "N ranks x batch b" is one plain
model trained on the whole global batch of N x b samples, computed on every rank.
"""
from __future__ import annotations

import os
import sys

import numpy as np

import distgrad as dg
import distgrad.nn.functional as F
from distgrad import nn
from distgrad.distributed import DistributedDataParallel as DDP
from distgrad.distributed import comm_hooks

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "distributed_scripts"))
from ddp_models import Chain, Heads, global_batches, loss_of, max_difference, mlp, shard, train  # noqa: E402
from runner import Skip, run_cases_on_the_mpi_world  # noqa: E402

B, STEPS = 4, 4  # per-rank batch, optimizer steps


def _matches_one_process(r, n, dtype, tolerance, **ddp_options):
    xs, ys = global_batches(STEPS, n, B, dtype=dtype)
    reference = mlp(dtype)
    train(reference, xs, ys)
    ddp = DDP(mlp(dtype), **ddp_options)
    train(ddp.module, [shard(x, r, B) for x in xs], [shard(y, r, B) for y in ys], wrapper=ddp)
    difference = max_difference(ddp.module, reference)
    assert difference <= tolerance, f"parameters differ by {difference:g} > {tolerance:g}"
    return ddp


def mlp_float64_matches_one_process_with_the_global_batch(r, n):
    _matches_one_process(r, n, dg.float64, 1e-12)


def mlp_float32_matches_one_process_within_float32_tolerance(r, n):
    _matches_one_process(r, n, dg.float32, 1e-5)


def many_buckets_match_one_process_and_are_rebuilt_in_ready_order(r, n):
    xs, ys = global_batches(STEPS, n, B)
    reference = mlp(depth=6, hidden=24)
    train(reference, xs, ys)
    ddp = DDP(mlp(depth=6, hidden=24), bucket_cap_mb=0.004)  # 4 KiB: about one weight matrix per bucket
    initial = ddp.bucket_layout()
    assert len(initial) >= 4, initial
    assert initial[0][0] == "10.bias", initial  # reverse registration order: the last layer first
    train(ddp.module, [shard(x, r, B) for x in xs], [shard(y, r, B) for y in ys], wrapper=ddp)
    assert ddp.reducer.has_rebuilt_buckets
    difference = max_difference(ddp.module, reference)
    assert difference <= 1e-12, f"parameters differ by {difference:g}"
    return {"initial": initial, "rebuilt": ddp.bucket_layout()}


def gradient_as_bucket_view_matches_and_gradients_live_in_the_buckets(r, n):
    ddp = _matches_one_process(r, n, dg.float64, 1e-12, gradient_as_bucket_view=True, bucket_cap_mb=0.001)
    buffers = [bucket.buffer().array for bucket in ddp.reducer.buckets]
    for name, p in ddp.module.named_parameters():
        assert any(np.shares_memory(p.grad.array, buf) for buf in buffers), f"{name}.grad is not a bucket view"


def no_sync_accumulates_locally_then_averages_the_sum(r, n):
    xs, ys = global_batches(3, n, B)
    reference = mlp()
    for x, y in zip(xs, ys):  # one process: gradients of three global micro-batches, summed
        loss_of(reference, x, y).backward()
    ddp, local = DDP(mlp()), mlp()
    with ddp.no_sync():
        for x, y in zip(xs[:2], ys[:2]):
            loss_of(ddp, shard(x, r, B), shard(y, r, B)).backward()
            loss_of(local, shard(x, r, B), shard(y, r, B)).backward()
    for p, q in zip(ddp.module.parameters(), local.parameters()):  # nothing was averaged yet
        np.testing.assert_allclose(p.grad.array, q.grad.array, rtol=0, atol=1e-15)
    loss_of(ddp, shard(xs[2], r, B), shard(ys[2], r, B)).backward()
    for p, q in zip(ddp.module.parameters(), reference.parameters()):
        np.testing.assert_allclose(p.grad.array, q.grad.array, rtol=0, atol=1e-12)


def _local_gradients(head: str, x, y) -> dict:
    model = Heads()
    loss_of(lambda t: model(t, head), x, y).backward()
    return {name: p.grad.array for name, p in model.named_parameters() if p.grad is not None}


def find_unused_parameters_reduces_zeros_for_unused_and_leaves_globally_unused_alone(r, n):
    heads = ["head_a" if q % 2 == 0 else "head_b" for q in range(n)]  # head_never: unused everywhere
    ddp = DDP(Heads(), find_unused_parameters=True)
    xs, ys = global_batches(2, n, B)
    for x, y in zip(xs, ys):
        ddp.module.zero_grad()
        loss_of(lambda t: ddp(t, heads[r]), shard(x, r, B), shard(y, r, B)).backward()
        expected = {}
        for q in range(n):  # every rank's local gradients, averaged, unused ones counting as zero
            for name, g in _local_gradients(heads[q], shard(x, q, B), shard(y, q, B)).items():
                expected[name] = expected.get(name, 0) + g / n
        for name, p in ddp.module.named_parameters():
            if name not in expected:  # head_never, and head_b in a world of one
                assert p.grad is None, f"{name} is unused on every rank, yet got a gradient"
            else:
                np.testing.assert_allclose(p.grad.array, expected[name], rtol=0, atol=1e-13, err_msg=name)


def an_unused_parameter_without_find_unused_parameters_raises_naming_it(r, n):
    ddp = DDP(Heads())
    x, y = global_batches(1, 1, B)
    try:
        loss_of(ddp, x[0], y[0]).backward()
    except RuntimeError as e:
        message = str(e)
    else:
        raise AssertionError("backward with unused parameters did not raise")
    for part in (f"did not receive a gradient on rank {r}", "head_b.weight, head_b.bias, head_never.weight",
                 "find_unused_parameters=True"):
        assert part in message, message


def a_parameter_used_outside_forward_with_find_unused_parameters_is_an_error(r, n):
    ddp = DDP(Heads(), find_unused_parameters=True)
    x, y = global_batches(1, 1, B)
    loss = loss_of(ddp, x[0], y[0]) + ddp.module.head_never.weight.sum()  # no output leads to head_never
    try:
        loss.backward()
    except RuntimeError as e:
        assert "parameter 'head_never.weight' was marked ready twice" in str(e), str(e)
    else:
        raise AssertionError("a parameter used outside forward did not raise")


def wrapping_copies_rank_0_parameters_to_every_rank(r, n):
    ddp = DDP(mlp(seed=100 + r))
    assert max_difference(ddp.module, mlp(seed=100)) == 0


def forward_copies_rank_0_buffers_unless_broadcast_buffers_is_false(r, n):
    for broadcast, expected in ((True, 0.0), (False, float(r))):
        model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
        ddp = DDP(model, broadcast_buffers=broadcast)
        model[1].running_mean.array[...] = r  # ranks drift apart, e.g. through different batches
        ddp.eval()
        ddp(dg.ones(2, 3))
        np.testing.assert_array_equal(model[1].running_mean.numpy(), [expected, expected])


def different_parameter_shapes_fail_at_wrap_naming_the_ranks(r, n):
    if n == 1:
        raise Skip("needs two ranks")
    model = mlp(hidden=17 if r == 1 else 16)
    try:
        DDP(model)
    except RuntimeError as e:
        message = str(e)
    else:
        raise AssertionError("wrapping different models did not raise")
    others = [q for q in range(n) if q != 1]
    expected = (f"DistributedDataParallel expects the same model on every rank, but parameter #0 differs: "
                f"'0.weight' of shape [16, 10] and dtype float64 on rank{'s' if len(others) > 1 else ''} {others}; "
                f"'0.weight' of shape [17, 10] and dtype float64 on rank [1]")
    assert message == expected, message


def _one_step_gradients(r, n, hook=None) -> list:
    ddp = DDP(mlp(dg.float32))
    if hook is not None:
        ddp.register_comm_hook(None, hook)
    xs, ys = global_batches(1, n, B, dtype=np.float32)
    loss_of(ddp, shard(xs[0], r, B), shard(ys[0], r, B)).backward()
    return [p.grad.array for p in ddp.module.parameters()]


def compression_hooks_give_gradients_close_to_float32(r, n):
    exact = _one_step_gradients(r, n)
    for hook, rtol in ((comm_hooks.fp16_compress_hook, 2e-3), (comm_hooks.bf16_compress_hook, 2e-2)):
        compressed = _one_step_gradients(r, n, hook)
        for e, c in zip(exact, compressed):
            np.testing.assert_allclose(c, e, rtol=rtol, atol=rtol * np.abs(e).max(), err_msg=hook.__name__)
        assert any(not np.array_equal(e, c) for e, c in zip(exact, compressed)), "no rounding at all?"


def register_comm_hook_twice_is_an_error(r, n):
    ddp = DDP(mlp())
    ddp.register_comm_hook(None, comm_hooks.allreduce_hook)
    try:
        ddp.register_comm_hook(None, comm_hooks.allreduce_hook)
    except RuntimeError as e:
        assert "can only be called once" in str(e)
    else:
        raise AssertionError("a second register_comm_hook did not raise")


def _recording(events: list):
    def hook(state, bucket):
        events.append(f"launch {bucket.index()}")
        return comm_hooks.allreduce_hook(state, bucket)
    return hook


def all_reduces_start_while_backward_still_runs(r, n):
    ddp = DDP(mlp(depth=4), bucket_cap_mb=1e-6)  # one parameter per bucket
    events = []
    ddp.register_comm_hook(None, _recording(events))
    x, y = global_batches(1, 1, B)
    inputs = dg.tensor(x[0], requires_grad=True)
    inputs.register_hook(lambda g: events.append("input gradient"))  # the very last node of backward
    F.cross_entropy(ddp(inputs), dg.tensor(y[0])).backward()
    launched_before_end = events.index("input gradient")
    # Only the first layer's buckets (its weight and bias) may wait for the last node.
    assert launched_before_end >= len(ddp.bucket_layout()) - 2, events
    assert events[:launched_before_end] == [f"launch {i}" for i in range(launched_before_end)], events


def buckets_launch_in_index_order_even_when_gradients_come_out_of_order(r, n):
    order = "cba" if r == 0 else "abc"  # ranks disagree on the order; buckets follow rank 0's
    model = Chain(order)
    ddp = DDP(model, bucket_cap_mb=1e-6)
    events = []
    ddp.register_comm_hook(None, _recording(events))
    for name in "abc":
        getattr(model, name).register_post_accumulate_grad_hook(lambda p, name=name: events.append(f"ready {name}"))
    x = dg.tensor(np.ones((2, 6)))
    ddp(x).sum().backward()
    assert ddp.bucket_layout() == [["c"], ["b"], ["a"]]
    assert [e for e in events if e.startswith("launch")] == ["launch 0", "launch 1", "launch 2"], events
    if order == "cba":  # c, the first bucket, is ready last: every launch waits for it
        assert events.index("ready a") < events.index("ready b") < events.index("launch 0"), events
    ddp.module.zero_grad()
    ddp(x).sum().backward()  # the forward rebuilds the buckets in rank 0's order of readiness
    assert ddp.bucket_layout() == [["a"], ["b"], ["c"]], ddp.bucket_layout()


def state_dict_and_parameters_pass_through_to_the_module(r, n):
    model = mlp()
    ddp = DDP(model)
    assert ddp.module is model
    assert all(p is q for p, q in zip(ddp.parameters(), model.parameters(), strict=True))
    assert list(ddp.state_dict()) == ["module." + key for key in model.state_dict()]


CASES = [mlp_float64_matches_one_process_with_the_global_batch,
         mlp_float32_matches_one_process_within_float32_tolerance,
         many_buckets_match_one_process_and_are_rebuilt_in_ready_order,
         gradient_as_bucket_view_matches_and_gradients_live_in_the_buckets,
         no_sync_accumulates_locally_then_averages_the_sum,
         find_unused_parameters_reduces_zeros_for_unused_and_leaves_globally_unused_alone,
         an_unused_parameter_without_find_unused_parameters_raises_naming_it,
         a_parameter_used_outside_forward_with_find_unused_parameters_is_an_error,
         wrapping_copies_rank_0_parameters_to_every_rank,
         forward_copies_rank_0_buffers_unless_broadcast_buffers_is_false,
         different_parameter_shapes_fail_at_wrap_naming_the_ranks,
         compression_hooks_give_gradients_close_to_float32,
         register_comm_hook_twice_is_an_error,
         all_reduces_start_while_backward_still_runs,
         buckets_launch_in_index_order_even_when_gradients_come_out_of_order,
         state_dict_and_parameters_pass_through_to_the_module]
CASE_NAMES = [case.__name__ for case in CASES]


if __name__ == "__main__":
    run_cases_on_the_mpi_world(CASES, timeout=10)
