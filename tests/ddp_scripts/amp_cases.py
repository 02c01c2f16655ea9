"""Mixed precision on real ranks: every case runs on each rank of ``mpiexec -n N``.

Run as ``amp_cases.py REPORT_DIR`` (``tests/test_amp_distributed.py`` runs it for N = 2 and 3); each
rank writes ``REPORT_DIR/rank<r>.json`` as ``ddp_cases.py`` does.
"""
from __future__ import annotations

import os
import sys

import numpy as np

import distgrad as dg
import distgrad.distributed as dist
from distgrad.distributed import DistributedDataParallel as DDP
from distgrad.distributed import comm_hooks

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "distributed_scripts"))
from ddp_models import global_batches, loss_of, max_difference, mlp, shard  # noqa: E402
from runner import run_cases, write_report  # noqa: E402

B, STEPS = 4, 4


def _same_on_every_rank(value) -> None:
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    assert all(g == gathered[0] for g in gathered), gathered


def _parameters_identical_across_ranks(model) -> None:
    for name, p in model.named_parameters():
        mine = p.detach().float()
        theirs = mine.clone()
        dist.broadcast(theirs, src=0)
        assert np.array_equal(mine.array, theirs.array), f"{name} differs from rank 0's"


def an_overflow_on_one_rank_skips_the_step_on_every_rank(r, n):
    model = DDP(mlp(dg.float32))
    optimizer = dg.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scaler = dg.amp.GradScaler("cpu", init_scale=2.0 ** 8, growth_interval=2)
    xs, ys = global_batches(STEPS + 2, n, B, dtype=np.float32)
    scales, skipped = [], []
    for step, (x, y) in enumerate(zip(xs, ys)):
        optimizer.zero_grad()
        scaler.scale(loss_of(model, shard(x, r, B), shard(y, r, B))).backward()
        if step == 2 and r == n - 1:  # after the all-reduce: only the last rank sees it
            model.module[0].weight.grad.array[0, 0] = np.inf
        result_before = [p.detach().clone() for p in model.parameters()]
        scaler.step(optimizer)
        scaler.update()
        if all(np.array_equal(p.array, q.array) for p, q in zip(model.parameters(), result_before)):
            skipped.append(step)
        scales.append(scaler.get_scale())
    assert skipped == [2], skipped
    assert scales == [256.0, 512.0, 256.0, 256.0, 512.0, 512.0], scales
    _same_on_every_rank((skipped, scales))
    _parameters_identical_across_ranks(model)


def autocast_and_grad_scaler_keep_the_ranks_identical(r, n):
    model = DDP(mlp(dg.float32))
    optimizer = dg.optim.AdamW(model.parameters(), lr=1e-2)
    scaler = dg.amp.GradScaler("cpu")
    xs, ys = global_batches(STEPS, n, B, dtype=np.float32)
    for x, y in zip(xs, ys):
        optimizer.zero_grad()
        with dg.autocast("cpu"):
            loss = loss_of(model, shard(x, r, B), shard(y, r, B))
        assert loss.dtype == dg.float32
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        dg.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(optimizer)
        scaler.update()
    assert all(p.grad.dtype == dg.float32 for p in model.parameters())
    _parameters_identical_across_ranks(model)


def _bf16_training(r, n, **ddp_options):
    """A bfloat16 model (float32 master weights) trained by DDP against the same trained on the global
    batch in one process; the gradients cross ranks in bfloat16 (summed in float32 on MPI)."""
    xs, ys = global_batches(STEPS, n, B, dtype=np.float32)
    reference = mlp(dg.bfloat16)
    ddp = DDP(mlp(dg.bfloat16), **ddp_options)
    for model, forward, rows in ((reference, reference, slice(None)), (ddp.module, ddp, slice(r * B, (r + 1) * B))):
        optimizer = dg.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, master_weights=True)
        for x, y in zip(xs, ys):
            optimizer.zero_grad()
            loss_of(forward, x[rows].astype(dg.bfloat16), y[rows]).backward()
            optimizer.step()
    assert all(p.dtype == dg.bfloat16 for p in ddp.parameters())
    difference = max_difference(ddp.module, reference)
    assert difference <= 0.05, f"parameters differ from one process by {difference:g}"
    _parameters_identical_across_ranks(ddp.module)
    return ddp


def a_bfloat16_model_trains_like_one_process(r, n):
    _bf16_training(r, n)


def a_bfloat16_model_with_the_bf16_compress_hook_trains_like_one_process(r, n):
    ddp = DDP(mlp(dg.bfloat16))
    ddp.register_comm_hook(None, comm_hooks.bf16_compress_hook)
    x, y = global_batches(1, n, B, dtype=np.float32)
    loss_of(ddp, shard(x[0], r, B).astype(dg.bfloat16), shard(y[0], r, B)).backward()
    reference = mlp(dg.bfloat16)
    loss_of(reference, x[0].astype(dg.bfloat16), y[0]).backward()
    for p, q in zip(ddp.module.parameters(), reference.parameters()):
        assert p.grad.dtype == dg.bfloat16
        np.testing.assert_allclose(p.grad.float().array, q.grad.float().array, rtol=0.05, atol=0.02)


def the_bf16_hook_all_reduces_bfloat16_where_the_communicator_sums_it(r, n):
    """NCCL's path (a bfloat16 all-reduce), taken here on MPI, which then sums through float32."""
    native = comm_hooks._sums_bfloat16
    comm_hooks._sums_bfloat16 = lambda group, array: True
    try:
        ddp = DDP(mlp(dg.float32))
        ddp.register_comm_hook(None, comm_hooks.bf16_compress_hook)
        x, y = global_batches(1, n, B, dtype=np.float32)
        loss_of(ddp, shard(x[0], r, B), shard(y[0], r, B)).backward()
    finally:
        comm_hooks._sums_bfloat16 = native
    assert not native(None, ddp.module[0].weight.array)  # MPI itself has no bfloat16 sum
    reference = mlp(dg.float32)
    loss_of(reference, x[0], y[0]).backward()
    for p, q in zip(ddp.module.parameters(), reference.parameters()):
        assert p.grad.dtype == dg.float32
        np.testing.assert_allclose(p.grad.array, q.grad.array, rtol=0.02, atol=0.005)


def bfloat16_collectives_sum_in_float32_and_move_bits_unchanged(r, n):
    # 256 + 1 + 1 ...: bfloat16 running sums would stop at 256; one float32 sum rounds once.
    values = dg.tensor([256.0 if r == 0 else 1.0, 3.0 + r], dtype=dg.bfloat16)
    dist.all_reduce(values)
    expected = np.array([256.0 + (n - 1), sum(3.0 + k for k in range(n))], dtype=np.float32).astype(dg.bfloat16)
    assert np.array_equal(values.array, expected), values
    dist.all_reduce(values, op=dist.ReduceOp.AVG)
    assert values.dtype == dg.bfloat16
    odd = dg.tensor(np.array([1.0 + 2.0 ** -7 * (r + 1), -3.5], dtype=np.float32)).to(dg.bfloat16)  # exact bits
    gathered = [dg.zeros(2, dtype=dg.bfloat16) for _ in range(n)]
    dist.all_gather(gathered, odd)
    for k, g in enumerate(gathered):
        assert g.array.view(np.uint16).tolist() == dg.tensor(np.array([1.0 + 2.0 ** -7 * (k + 1), -3.5],
                                                                      dtype=np.float32)).to(dg.bfloat16).array.view(
            np.uint16).tolist()
    dist.broadcast(odd, src=0)
    assert odd.array.astype(np.float32).tolist() == [1.0 + 2.0 ** -7, -3.5]
    out = dg.zeros(1, dtype=dg.bfloat16)
    dist.reduce_scatter_tensor(out, dg.ones(n, dtype=dg.bfloat16))
    assert out.array.astype(np.float32).tolist() == [float(n)]


CASES = [an_overflow_on_one_rank_skips_the_step_on_every_rank, autocast_and_grad_scaler_keep_the_ranks_identical,
         a_bfloat16_model_trains_like_one_process, a_bfloat16_model_with_the_bf16_compress_hook_trains_like_one_process,
         the_bf16_hook_all_reduces_bfloat16_where_the_communicator_sums_it,
         bfloat16_collectives_sum_in_float32_and_move_bits_unchanged]
CASE_NAMES = [case.__name__ for case in CASES]


def main() -> None:
    report_dir = sys.argv[1]
    dist.init_process_group(backend="mpi", timeout=20)
    r, n = dist.get_rank(), dist.get_world_size()
    write_report(report_dir, r, {"world_size": n, **run_cases(CASES, r, n)})
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
