"""Join (uneven inputs) on real ranks: rank 0 has 10 batches, rank 1 13 (rank 2, if any, 12).

PyTorch's semantics, computed here by one process: in iteration t the ranks that still have a batch
t compute their gradients, the ranks that joined count as zeros, and the sum is divided by the
world size (``divide_by_initial_world_size=True``) or by the number of ranks still training; after
the loop every rank holds the model of the last rank to join, which stepped in every iteration.
``join_gives_what_pytorchs_join_gives`` runs PyTorch's own DDP and Join (gloo) beside distgrad's.
"""
from __future__ import annotations

import os
import sys

import numpy as np

import distgrad as dg
from distgrad import nn
from distgrad.distributed import DistributedDataParallel as DDP
from distgrad.distributed.algorithms import Join
from distgrad.distributed.optim import ZeroRedundancyOptimizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # run as a script under mpiexec, or imported
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "distributed_scripts"))
from ddp_models import IN, OUT, global_batches, loss_of, max_difference, mlp, sgd, shard  # noqa: E402
from runner import Skip  # noqa: E402

B, LR, TOLERANCE = 4, 0.01, 1e-10
BATCHES = {1: [13], 2: [10, 13], 3: [10, 13, 12]}


def _adam(model):
    return dg.optim.Adam(model.parameters(), lr=LR)


def _reference(n: int, make_optimizer, divide_by_initial_world_size: bool):
    """The last joiner's run, in one process; returns the model and its last averaged gradients."""
    counts = BATCHES[n]
    xs, ys = global_batches(max(counts), n, B)
    model, probe = mlp(), mlp()
    optimizer = make_optimizer(model)
    for t in range(max(counts)):
        active = [q for q in range(n) if counts[q] > t]
        probe.load_state_dict(model.state_dict())
        total = [np.zeros_like(p.array) for p in model.parameters()]
        for q in active:
            probe.zero_grad()
            loss_of(probe, shard(xs[t], q, B), shard(ys[t], q, B)).backward()
            for g, p in zip(total, probe.parameters()):
                g += p.grad.array
        divisor = n if divide_by_initial_world_size else len(active)
        for p, g in zip(model.parameters(), total):
            p.grad = dg.tensor(g / divisor)
        optimizer.step()
    return model, [p.grad.array for p in model.parameters()]


def _train_joined(r: int, n: int, divide_by_initial_world_size: bool, zero_stage: int = 0, **ddp_options):
    counts = BATCHES[n]
    xs, ys = global_batches(max(counts), n, B)
    model = mlp()
    if zero_stage:
        optimizer = ZeroRedundancyOptimizer(model.parameters(), dg.optim.Adam, lr=LR)
        ddp = DDP(model, gradient_sharding=optimizer if zero_stage == 2 else None, **ddp_options)
        joinables = [ddp, optimizer]
    else:
        optimizer, ddp = sgd(model), DDP(model, **ddp_options)
        joinables = [ddp]
    with Join(joinables, divide_by_initial_world_size=divide_by_initial_world_size):
        for t in range(counts[r]):
            optimizer.zero_grad()
            loss_of(ddp, shard(xs[t], r, B), shard(ys[t], r, B)).backward()
            optimizer.step()
    return model, optimizer


def ddp_join_with_10_and_13_batches_matches_pytorchs_semantics(r, n):
    largest = 0.0
    for divide in (True, False):
        reference, last_grads = _reference(n, sgd, divide)
        for options in ({}, {"find_unused_parameters": True}, {"bucket_cap_mb": 0.001}):
            model, _ = _train_joined(r, n, divide, **options)
            difference = max_difference(model, reference)
            largest = max(largest, difference)
            assert difference <= TOLERANCE, f"divide_by_initial_world_size={divide}, {options}: {difference:g}"
            for p, g in zip(model.parameters(), last_grads):  # joined ranks too: their shadow's averages
                np.testing.assert_allclose(p.grad.array, g, rtol=0, atol=TOLERANCE)
    return {"batches": BATCHES[n], "largest_difference": largest}


def join_with_zero1_and_zero2_matches_pytorchs_semantics(r, n):
    largest = 0.0
    for divide in (True, False):
        reference, _ = _reference(n, _adam, divide)
        for stage in (1, 2):
            model, zero = _train_joined(r, n, divide, zero_stage=stage, bucket_cap_mb=0.001)
            difference = max_difference(model, reference)
            largest = max(largest, difference)
            assert difference <= TOLERANCE, f"ZeRO-{stage}, divide_by_initial_world_size={divide}: {difference:g}"
    return {"batches": BATCHES[n], "largest_difference": largest}


def throw_on_early_termination_raises_on_every_rank(r, n):
    if n == 1:
        raise Skip("needs two ranks")
    counts = BATCHES[n]
    xs, ys = global_batches(max(counts), n, B)
    ddp = DDP(mlp())
    optimizer, done = sgd(ddp.module), 0
    try:
        with ddp.join(throw_on_early_termination=True):
            for t in range(counts[r]):
                loss_of(ddp, shard(xs[t], r, B), shard(ys[t], r, B)).backward()
                optimizer.step()
                done += 1
    except RuntimeError as e:
        message = str(e)
    else:
        raise AssertionError("no rank raised")
    expected = f"Rank {r} exhausted all inputs." if counts[r] == min(counts) else "Detected at least one rank"
    assert message.startswith(expected), message
    assert done == min(counts), done
    assert not ddp._join_config.enable  # the context is left: DDP announces no iterations any more


def join_gives_what_pytorchs_join_gives(r, n):
    if n != 3:
        raise Skip("runs at 3 ranks only: importing PyTorch on every rank costs seconds")
    try:
        import torch
        import torch.distributed as tdist
    except ImportError:
        raise Skip("PyTorch is not installed") from None
    if "MASTER_PORT" not in os.environ:
        raise Skip("MASTER_ADDR/MASTER_PORT not set (the test sets them)")
    torch.set_num_threads(1)
    if not tdist.is_initialized():
        tdist.init_process_group("gloo", rank=r, world_size=n)
    counts = BATCHES[n]
    xs, ys = global_batches(max(counts), n, B)
    largest = 0.0

    def ours():
        dg.manual_seed(0)
        return nn.Sequential(nn.Linear(IN, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, OUT)).double()

    for divide in (True, False):
        model = ours()
        theirs = torch.nn.Sequential(torch.nn.Linear(IN, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU(),
                                     torch.nn.Linear(8, OUT)).double()
        theirs.load_state_dict({k: torch.from_numpy(v.array.copy()) for k, v in model.state_dict().items()})
        ddp, tddp = DDP(model), torch.nn.parallel.DistributedDataParallel(theirs)
        optimizer = sgd(model)
        toptimizer = torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=0.9)
        with ddp.join(divide_by_initial_world_size=divide):
            for t in range(counts[r]):
                optimizer.zero_grad()
                loss_of(ddp, shard(xs[t], r, B), shard(ys[t], r, B)).backward()
                optimizer.step()
        with tddp.join(divide_by_initial_world_size=divide):
            for t in range(counts[r]):
                toptimizer.zero_grad()
                torch.nn.functional.cross_entropy(tddp(torch.from_numpy(shard(xs[t], r, B))),
                                                  torch.from_numpy(shard(ys[t], r, B))).backward()
                toptimizer.step()
        for name, value in model.state_dict().items():
            np.testing.assert_allclose(value.array, theirs.state_dict()[name].numpy(), rtol=0, atol=TOLERANCE,
                                       err_msg=f"divide_by_initial_world_size={divide}: {name}")
            largest = max(largest, float(np.abs(value.array - theirs.state_dict()[name].numpy()).max()))
        if counts[r] == max(counts):  # PyTorch's joined ranks keep stale gradients; the last joiner's are final
            for p, q in zip(model.parameters(), theirs.parameters()):
                np.testing.assert_allclose(p.grad.array, q.grad.numpy(), rtol=0, atol=TOLERANCE)
    tdist.destroy_process_group()
    return {"batches": counts, "largest_difference_to_pytorch": largest}


CASES = [ddp_join_with_10_and_13_batches_matches_pytorchs_semantics,
         join_with_zero1_and_zero2_matches_pytorchs_semantics, throw_on_early_termination_raises_on_every_rank,
         join_gives_what_pytorchs_join_gives]
