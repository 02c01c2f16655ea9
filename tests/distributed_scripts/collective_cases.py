"""Every collective with known results, run on each rank of ``mpiexec -n N`` (or alone, N = 1).

Each case builds rank-dependent inputs and checks the result every rank must see. Run as
``collective_cases.py REPORT_DIR [BACKEND [DEVICE]]``, it runs every case (each for float32, float64
and int64) on tensors of DEVICE (cpu or cuda) and each rank writes ``REPORT_DIR/rank<r>.json``:
``{"rank": r, "world_size": n, "results": {case: "ok" or the failure}}``.
``tests/test_distributed_collectives.py`` runs it under ``mpiexec -n 2`` and ``-n 3``.
"""
from __future__ import annotations

import os
import sys
import traceback

import numpy as np

import distgrad as dg
import distgrad.distributed as dist
from distgrad import backend
from distgrad.distributed import ReduceOp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from runner import write_report  # noqa: E402

DTYPES = ("float32", "float64", "int64")
DEVICE = "cpu"  # set from the command line


def full(value, dtype, n=3):
    return dg.tensor(np.full(n, value, dtype=dtype), device=DEVICE)


def expect(tensor, expected):
    got = backend.to_device(tensor.array, backend.CPU)
    np.testing.assert_array_equal(got, np.asarray(expected, dtype=got.dtype))


# Ranks are r = 0 .. n-1; most inputs are r + 1, so sums are n (n + 1) / 2.

def all_reduce_sum_adds_every_rank(r, n, dtype):
    t = full(r + 1, dtype)
    dist.all_reduce(t)
    expect(t, np.full(3, n * (n + 1) // 2))


def all_reduce_avg_divides_the_sum_by_the_world_size(r, n, dtype):
    t = full(3 * r + 1, dtype)  # average over ranks: 3 (n - 1) / 2 + 1
    dist.all_reduce(t, op=ReduceOp.AVG)
    total = sum(3 * q + 1 for q in range(n))
    expect(t, np.full(3, total / n if dtype != "int64" else total // n))


def all_reduce_max_min_product(r, n, dtype):
    biggest, smallest, product = full(r + 1, dtype), full(r + 1, dtype), full(r + 1, dtype)
    dist.all_reduce(biggest, op=ReduceOp.MAX)
    dist.all_reduce(smallest, op=ReduceOp.MIN)
    dist.all_reduce(product, op=ReduceOp.PRODUCT)
    expect(biggest, np.full(3, n))
    expect(smallest, np.full(3, 1))
    expect(product, np.full(3, np.prod(np.arange(1, n + 1))))


def all_reduce_async_returns_a_work_to_wait_on(r, n, dtype):
    t = full(r + 1, dtype, n=1000)
    work = dist.all_reduce(t, async_op=True)
    assert isinstance(work, dist.Work)
    assert work.wait() is True
    assert work.is_completed()
    expect(t, np.full(1000, n * (n + 1) // 2))


def async_all_reduces_overlap_and_finish_in_any_wait_order(r, n, dtype):
    tensors = [full((r + 1) * (k + 1), dtype) for k in range(4)]
    works = [dist.all_reduce(t, op=ReduceOp.AVG if k == 3 else ReduceOp.SUM, async_op=True)
             for k, t in enumerate(tensors)]
    for work in reversed(works):
        work.wait()
    for k, t in enumerate(tensors[:3]):
        expect(t, np.full(3, (k + 1) * n * (n + 1) // 2))
    total = sum(4 * (q + 1) for q in range(n))
    expect(tensors[3], np.full(3, total / n if dtype != "int64" else total // n))


def broadcast_copies_the_source_rank(r, n, dtype):
    t = dg.tensor(np.arange(5, dtype=dtype) * 7 if r == n - 1 else np.zeros(5, dtype), device=DEVICE)
    dist.broadcast(t, src=n - 1)
    expect(t, np.arange(5) * 7)


def broadcast_async(r, n, dtype):
    t = full(42 if r == 0 else -1, dtype)
    dist.broadcast(t, src=0, async_op=True).wait()
    expect(t, np.full(3, 42))


def reduce_gives_the_sum_to_dst_only(r, n, dtype):
    dst = n - 1
    t = full(r + 1, dtype)
    dist.reduce(t, dst=dst)
    expect(t, np.full(3, n * (n + 1) // 2 if r == dst else r + 1))


def all_gather_fills_the_list_in_rank_order(r, n, dtype):
    outputs = [full(-1, dtype, n=2) for _ in range(n)]
    work = dist.all_gather(outputs, full(r * 10, dtype, n=2), async_op=True)
    work.wait()
    for q, out in enumerate(outputs):
        expect(out, np.full(2, q * 10))


def reduce_scatter_gives_rank_i_the_sum_of_input_i(r, n, dtype):
    inputs = [full(10 * r + i, dtype, n=2) for i in range(n)]
    out = full(-1, dtype, n=2)
    dist.reduce_scatter(out, inputs)
    expect(out, np.full(2, sum(10 * q + r for q in range(n))))


def all_gather_into_tensor_fills_chunk_i_with_rank_i_even_in_place(r, n, dtype):
    flat = full(-1, dtype, n=2 * n)
    dist.all_gather_into_tensor(flat, full(r * 10, dtype, n=2))
    expect(flat, np.repeat(np.arange(n) * 10, 2))
    flat = full(-1, dtype, n=2 * n)
    mine = dg.Tensor(flat.array[2 * r:2 * r + 2])  # this rank's chunk of the output itself (ZeRO's layout)
    mine.array[...] = r + 1
    dist.all_gather_into_tensor(flat, mine, async_op=True).wait()
    expect(flat, np.repeat(np.arange(n) + 1, 2))


def reduce_scatter_tensor_gives_rank_i_the_reduction_of_chunk_i(r, n, dtype):
    flat = dg.tensor((np.arange(2 * n) + 10 * r).astype(dtype), device=DEVICE)  # chunk i: [2i, 2i+1] + 10 r
    out = full(-1, dtype, n=2)
    dist.reduce_scatter_tensor(out, flat, op=ReduceOp.SUM)
    offset = 10 * n * (n - 1) // 2
    expect(out, np.array([2 * r * n + offset, (2 * r + 1) * n + offset]))
    try:
        dist.reduce_scatter_tensor(out, full(0, dtype, n=2 * n + 1))
    except ValueError as e:
        assert "input tensor must be the same size as output size times world size" in str(e)
    else:
        raise AssertionError("a wrong input size did not raise")


def reduce_scatter_v_gives_rank_i_its_own_count(r, n, dtype):
    counts = [q % 3 for q in range(n)]  # 0, 1, 2: rank 0 receives nothing
    flat = dg.tensor((np.arange(sum(counts)) + 10 * r).astype(dtype), device=DEVICE)
    out = full(-1, dtype, n=counts[r])
    dist.reduce_scatter_v(out, flat, counts, op=ReduceOp.AVG, async_op=True).wait()
    start, total = sum(counts[:r]), sum(10 * q for q in range(n))
    expected = [(n * (start + k) + total) / n for k in range(counts[r])]
    expect(out, np.array(expected) if dtype != "int64" else np.array(expected).astype(np.int64))


def gather_object_collects_on_dst(r, n, dtype):
    gathered = [None] * n if r == n - 1 else None
    dist.gather_object({"rank": r}, gathered, dst=n - 1)
    if r == n - 1:
        assert gathered == [{"rank": q} for q in range(n)]


def gather_collects_on_dst(r, n, dtype):
    dst = n - 1
    outputs = [full(-1, dtype) for _ in range(n)] if r == dst else None
    dist.gather(full(r * r, dtype), outputs, dst=dst)
    if r == dst:
        for q, out in enumerate(outputs):
            expect(out, np.full(3, q * q))


def scatter_sends_piece_i_to_rank_i(r, n, dtype):
    pieces = [full(100 + q, dtype) for q in range(n)] if r == 0 else None
    out = full(-1, dtype)
    dist.scatter(out, pieces, src=0, async_op=True).wait()
    expect(out, np.full(3, 100 + r))


def collectives_bump_the_tensor_version(r, n, dtype):
    t = full(1, dtype)
    before = t._version[0]
    dist.all_reduce(t)
    assert t._version[0] == before + 1


def barrier_async_completes(r, n, dtype):
    work = dist.barrier(async_op=True)
    work.wait()
    assert work.is_completed()


def subgroup_of_first_and_last_rank(r, n, dtype):
    members = [0, n - 1]
    group = dist.new_group(members)  # every rank calls new_group, members or not
    if r not in members:
        assert group is dist.GroupMember.NON_GROUP_MEMBER
        assert dist.get_rank(group) == -1 and dist.get_world_size(group) == -1
        return
    assert dist.get_world_size(group) == len(set(members))
    assert dist.get_rank(group) == sorted(set(members)).index(r)
    t = full(r + 1, dtype)
    dist.all_reduce(t, group=group)
    expect(t, np.full(3, sum(q + 1 for q in set(members))))
    b = full(r, dtype)
    dist.broadcast(b, src=n - 1, group=group)
    expect(b, np.full(3, n - 1))
    dist.destroy_process_group(group)


def broadcast_object_list_replaces_the_list(r, n, dtype):
    objects = [{"from": r, "dtype": dtype}, (1, "two")] if r == 0 else [None, None]
    dist.broadcast_object_list(objects, src=0)
    assert objects == [{"from": 0, "dtype": dtype}, (1, "two")]


def all_gather_object_collects_every_rank(r, n, dtype):
    objects = [None] * n
    dist.all_gather_object(objects, {"rank": r, "square": r * r})
    assert objects == [{"rank": q, "square": q * q} for q in range(n)]


def zero_dim_tensors_reduce_like_any_other(r, n, dtype):
    t = dg.tensor(np.asarray(r + 1, dtype=dtype), device=DEVICE)  # 0-d: staged copies must keep the shape
    dist.all_reduce(t)
    assert t.shape == ()
    expect(t, n * (n + 1) // 2)


def float16_reduces_through_float32_where_mpi_has_no_float16(r, n, dtype):
    from distgrad.distributed.mpi_comm import MPICommunicator
    knows_dtype = MPICommunicator.knows_dtype
    MPICommunicator.knows_dtype = lambda self, d: False  # as with Open MPI 4, which lacks MPI_FLOAT16
    try:
        t = full(r + 1, "float16")
        dist.all_reduce(t, op=ReduceOp.AVG)
        work = dist.all_reduce(full(r + 1, "float16"), async_op=True)
        work.wait()
    finally:
        MPICommunicator.knows_dtype = knows_dtype
    assert t.dtype == np.float16
    expect(t, np.full(3, (n + 1) / 2))


CASES = [all_reduce_sum_adds_every_rank, zero_dim_tensors_reduce_like_any_other,
         float16_reduces_through_float32_where_mpi_has_no_float16, all_reduce_avg_divides_the_sum_by_the_world_size,
         all_reduce_max_min_product, all_reduce_async_returns_a_work_to_wait_on,
         async_all_reduces_overlap_and_finish_in_any_wait_order, broadcast_copies_the_source_rank, broadcast_async,
         reduce_gives_the_sum_to_dst_only, all_gather_fills_the_list_in_rank_order,
         reduce_scatter_gives_rank_i_the_sum_of_input_i, all_gather_into_tensor_fills_chunk_i_with_rank_i_even_in_place,
         reduce_scatter_tensor_gives_rank_i_the_reduction_of_chunk_i, reduce_scatter_v_gives_rank_i_its_own_count,
         gather_object_collects_on_dst,
         gather_collects_on_dst, scatter_sends_piece_i_to_rank_i,
         collectives_bump_the_tensor_version, barrier_async_completes, subgroup_of_first_and_last_rank,
         broadcast_object_list_replaces_the_list, all_gather_object_collects_every_rank]
CASE_NAMES = [f"{case.__name__}[{dtype}]" for case in CASES for dtype in DTYPES]


def main() -> None:
    global DEVICE
    report_dir = sys.argv[1]
    DEVICE = sys.argv[3] if len(sys.argv) > 3 else "cpu"
    dist.init_process_group(backend=sys.argv[2] if len(sys.argv) > 2 else "auto", timeout=30)
    r, n = dist.get_rank(), dist.get_world_size()
    results = {}
    for case in CASES:
        for dtype in DTYPES:
            try:
                case(r, n, dtype)
                results[f"{case.__name__}[{dtype}]"] = "ok"
            except Exception:
                results[f"{case.__name__}[{dtype}]"] = traceback.format_exc()
    write_report(report_dir, r, {"world_size": n, "backend": dist.get_backend(), "device": DEVICE,
                                 "local_rank": dist.get_local_rank(), "local_world_size": dist.get_local_world_size(),
                                 "results": results})
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
