"""ZeroRedundancyOptimizer (ZeRO-1) and DDP's gradient_sharding (ZeRO-2) on real ranks.

The reference is one plain Adam (or SGD) on the whole global batch, computed on every rank; the
sharded runs must reach the same parameters in float64 within 1e-10.
"""
from __future__ import annotations

import sys
import os
import shutil
import tempfile

import numpy as np

import distgrad as dg
import distgrad.distributed as dist
from distgrad import nn
from distgrad.distributed import DistributedDataParallel as DDP
from distgrad.distributed.optim import ZeroRedundancyOptimizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # run as a script under mpiexec, or imported
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "distributed_scripts"))
from ddp_models import Heads, global_batches, loss_of, max_difference, mlp, shard  # noqa: E402

B, STEPS, LR, TOLERANCE = 4, 4, 0.01, 1e-10


def _adam_reference(xs, ys, steps=None):
    """Plain Adam on the global batches; returns the model and the gradients of its last step."""
    model = mlp()
    optimizer = dg.optim.Adam(model.parameters(), lr=LR)
    for x, y in list(zip(xs, ys))[:steps]:
        optimizer.zero_grad()
        loss_of(model, x, y).backward()
        optimizer.step()
    return model, [p.grad.array.copy() for p in model.parameters()]


def _train_sharded(r, n, stage: int, bucket_view: bool, xs, ys):
    model = mlp()
    zero = ZeroRedundancyOptimizer(model.parameters(), dg.optim.Adam, parameters_as_bucket_view=bucket_view, lr=LR)
    ddp = DDP(model, gradient_sharding=zero if stage == 2 else None, bucket_cap_mb=0.001)  # several buckets
    for x, y in zip(xs, ys):
        zero.zero_grad()
        loss_of(ddp, shard(x, r, B), shard(y, r, B)).backward()
        zero.step()
    return model, zero


def zero1_and_zero2_match_one_process_adam_on_the_global_batch(r, n):
    xs, ys = global_batches(STEPS, n, B)
    reference, last_grads = _adam_reference(xs, ys)
    differences = {}
    for stage in (1, 2):
        for bucket_view in (False, True):
            model, zero = _train_sharded(r, n, stage, bucket_view, xs, ys)
            difference = max_difference(model, reference)
            differences[f"zero{stage}{'_bucket_view' if bucket_view else ''}"] = difference
            assert difference <= TOLERANCE, f"ZeRO-{stage}, bucket view {bucket_view}: differs by {difference:g}"
            for p, g in zip(model.parameters(), last_grads):
                mine = zero.owner_of(p) == r
                if stage == 2 and not mine:  # another rank keeps this gradient
                    assert p.grad is None, "ZeRO-2 kept a gradient of a parameter this rank does not own"
                else:
                    np.testing.assert_allclose(p.grad.array, g, rtol=0, atol=TOLERANCE)
    return differences  # the largest parameter difference to one-process Adam after 4 steps


def each_rank_keeps_adam_state_only_for_its_shard(r, n):
    xs, ys = global_batches(1, n, B)
    model, zero = _train_sharded(r, n, 1, False, xs, ys)
    params = list(model.parameters())
    mine = [p for p in params if zero.owner_of(p) == r]
    assert set(map(id, zero.optim.state)) == set(map(id, mine))
    assert [zero.owner_of(p) for p in params] == _greedy_owners(params, n)
    state_bytes = sum(v.array.nbytes for s in zero.optim.state.values() for v in s.values() if hasattr(v, "array"))
    everyone = [None] * n
    dist.all_gather_object(everyone, state_bytes)
    assert sum(everyone) == 2 * sum(p.array.nbytes for p in params)  # exp_avg and exp_avg_sq, once in all
    return everyone


def _greedy_owners(params, n):
    sizes, owners = [0] * n, {}
    for p in sorted(params, key=lambda t: t.numel(), reverse=True):
        owners[id(p)] = sizes.index(min(sizes))
        sizes[owners[id(p)]] += p.numel()
    return [owners[id(p)] for p in params]


def zero2_accumulates_like_ddp_over_no_sync_and_across_steps(r, n):
    xs, ys = global_batches(3, n, B)
    plain = mlp()
    ddp = DDP(plain)
    model = mlp()
    zero = ZeroRedundancyOptimizer(model.parameters(), dg.optim.Adam, lr=LR)
    sharded = DDP(model, gradient_sharding=zero)
    for net in (ddp, sharded):  # micro-batch 0 without sync, 1 synced, then 2 synced without zero_grad
        with net.no_sync():
            loss_of(net, shard(xs[0], r, B), shard(ys[0], r, B)).backward()
        for x, y in zip(xs[1:], ys[1:]):
            loss_of(net, shard(x, r, B), shard(y, r, B)).backward()
    for p, q in zip(plain.parameters(), model.parameters()):
        if zero.owner_of(q) == r:
            np.testing.assert_allclose(q.grad.array, p.grad.array, rtol=0, atol=1e-13)
        else:
            assert q.grad is None


def zero2_with_unused_parameters_gives_ddps_gradients_for_the_owned_shard(r, n):
    heads = ["head_a" if q % 2 == 0 else "head_b" for q in range(n)]  # head_never: unused everywhere
    xs, ys = global_batches(2, n, B)
    plain, model = Heads(), Heads()
    zero = ZeroRedundancyOptimizer(model.parameters(), dg.optim.Adam, lr=LR)
    ddp = DDP(plain, find_unused_parameters=True)
    sharded = DDP(model, find_unused_parameters=True, gradient_sharding=zero)
    for x, y in zip(xs, ys):
        for net in (ddp, sharded):
            net.module.zero_grad()
            loss_of(lambda t: net(t, heads[r]), shard(x, r, B), shard(y, r, B)).backward()
        for (name, p), q in zip(plain.named_parameters(), model.parameters()):
            if zero.owner_of(q) != r or p.grad is None:
                assert q.grad is None, name
            else:
                np.testing.assert_allclose(q.grad.array, p.grad.array, rtol=0, atol=1e-13, err_msg=name)


def checkpoint_saved_at_one_world_size_resumes_at_another(r, n):
    """N-1 ranks train 2 steps and save; N ranks load and train 2 more; one plain Adam loads that and
    takes a fifth step: all equal plain Adam's 5 steps. (Every rank computes the global batch's gradient.)"""
    xs, ys = global_batches(5, n, B)
    reference, _ = _adam_reference(xs, ys)
    folder = [tempfile.mkdtemp() if r == 0 else None]  # one machine: every rank reads rank 0's file
    dist.broadcast_object_list(folder, src=0)
    path = os.path.join(folder[0], "zero_checkpoint.dg")

    def steps(model, optimizer, batches):
        for t in batches:
            optimizer.zero_grad()
            loss_of(model, xs[t], ys[t]).backward()
            optimizer.step()

    first = list(range(max(n - 1, 1)))
    group = dist.new_group(first)
    if r in first:
        model = mlp()
        zero = ZeroRedundancyOptimizer(model.parameters(), dg.optim.Adam, process_group=group, lr=LR)
        steps(model, zero, [0, 1])
        zero.consolidate_state_dict(to=0)
        if r == 0:
            dg.save({"model": model.state_dict(), "optimizer": zero.state_dict()}, path)
    dist.barrier()
    checkpoint = dg.load(path)
    model = mlp(seed=7)
    model.load_state_dict(checkpoint["model"])
    zero = ZeroRedundancyOptimizer(model.parameters(), dg.optim.Adam, lr=0.5)  # lr comes from the checkpoint
    zero.load_state_dict(checkpoint["optimizer"])
    assert zero.param_groups[0]["lr"] == LR and zero.optim.param_groups[0]["lr"] == LR
    steps(model, zero, [2, 3])
    zero.consolidate_state_dict(to=n - 1)
    state = [zero.state_dict() if r == n - 1 else None]
    dist.broadcast_object_list(state, src=n - 1)
    alone = mlp(seed=8)
    alone.load_state_dict(model.state_dict())
    adam = dg.optim.Adam(alone.parameters(), lr=LR)
    adam.load_state_dict(state[0])
    steps(alone, adam, [4])
    difference = max_difference(alone, reference)
    assert difference <= TOLERANCE, f"resumed run differs by {difference:g}"
    result = {"saved_at": len(first), "resumed_at": n, "then_alone_difference": difference}
    if group is not dist.GroupMember.NON_GROUP_MEMBER:
        dist.destroy_process_group(group)
    if r == 0:
        shutil.rmtree(folder[0])
    return result


def state_dict_needs_consolidation_and_overlap_with_ddp_is_refused(r, n):
    zero = ZeroRedundancyOptimizer(mlp().parameters(), dg.optim.Adam, lr=LR)
    try:
        zero.state_dict()
    except RuntimeError as e:
        assert "consolidate_state_dict" in str(e)
    else:
        raise AssertionError("state_dict before consolidate_state_dict did not raise")
    zero.consolidate_state_dict(to=0)
    if r != 0:
        try:
            zero.state_dict()
        except RuntimeError:
            pass
        else:
            raise AssertionError("state_dict on a rank that did not gather did not raise")
    try:
        ZeroRedundancyOptimizer(mlp().parameters(), dg.optim.Adam, overlap_with_ddp=True, lr=LR)
    except NotImplementedError as e:
        assert "gradient_sharding" in str(e) and "overlap_with_ddp=False" in str(e), str(e)
    else:
        raise AssertionError("overlap_with_ddp=True did not raise")


def hyper_parameter_changes_and_new_groups_reach_the_shards(r, n):
    """An lr set on ``zero.param_groups`` (as schedulers do) is used; a group added later is partitioned."""
    xs, ys = global_batches(2, n, B)
    reference = mlp()
    extra_ref = nn.Parameter(dg.ones(5, dtype=dg.float64))
    adam = dg.optim.Adam(reference.parameters(), lr=LR)
    model = mlp()
    extra = nn.Parameter(dg.ones(5, dtype=dg.float64))
    zero = ZeroRedundancyOptimizer(model.parameters(), dg.optim.Adam, lr=LR)
    for optimizer, net, p in ((adam, reference, extra_ref), (zero, model, extra)):
        optimizer.add_param_group({"params": [p], "lr": 0.1})
        for x, y in zip(xs, ys):
            optimizer.param_groups[0]["lr"] = optimizer.param_groups[0]["lr"] / 2
            optimizer.zero_grad()
            (loss_of(net, x, y) + (p * p).sum()).backward()
            optimizer.step()
    assert max_difference(model, reference) <= TOLERANCE
    np.testing.assert_allclose(extra.array, extra_ref.array, rtol=0, atol=TOLERANCE)
    assert zero.owner_of(extra) in range(n) and len(zero.optim.param_groups) == 2


CASES = [zero1_and_zero2_match_one_process_adam_on_the_global_batch, each_rank_keeps_adam_state_only_for_its_shard,
         zero2_accumulates_like_ddp_over_no_sync_and_across_steps,
         zero2_with_unused_parameters_gives_ddps_gradients_for_the_owned_shard,
         checkpoint_saved_at_one_world_size_resumes_at_another,
         state_dict_needs_consolidation_and_overlap_with_ddp_is_refused,
         hyper_parameter_changes_and_new_groups_reach_the_shards]
