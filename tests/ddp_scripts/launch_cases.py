"""Worlds formed the PyTorch way, without ``mpiexec``: the same DDP cases as under MPI.

    launch_cases.py REPORT_DIR                          # a rank started by torchrun, or by hand with
                                                        # MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE
    launch_cases.py --spawn N INIT_METHOD REPORT_DIR    # dg.multiprocessing.spawn starts N ranks, each
                                                        # init_process_group("gloo", INIT_METHOD, rank, N)

Each rank writes ``REPORT_DIR/rank<r>.json`` (``runner.write_report``). ``tests/test_rendezvous.py``
runs it for 2 and 3 ranks both ways.
"""
from __future__ import annotations

import os
import socket
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "distributed_scripts"))

import numpy as np  # noqa: E402

import distgrad as dg  # noqa: E402
import distgrad.distributed as dist  # noqa: E402
import ddp_cases  # noqa: E402
from distgrad.distributed import world  # noqa: E402
from runner import run_cases, write_report  # noqa: E402


def the_world_is_the_rendezvous_world(r, n):
    assert dist.get_world_size() == n and dist.get_rank() == r
    assert dist.get_backend() == "mpi"  # "gloo" runs on MPI
    assert dist.get_local_world_size() == n and dist.get_local_rank() == r  # one machine: one node
    return {"pid": os.getpid(), "host": socket.gethostname()}


def collectives_and_objects_reach_every_rank(r, n):
    x = dg.tensor(np.full(5, float(r + 1)))
    dist.all_reduce(x)
    assert np.all(x.array == n * (n + 1) / 2), x
    y = dg.tensor(np.arange(3.0) + 10 * r)
    dist.broadcast(y, src=n - 1)
    assert np.array_equal(y.array, np.arange(3.0) + 10 * (n - 1))
    gathered = [None] * n
    dist.all_gather_object(gathered, {"rank": r})
    assert gathered == [{"rank": q} for q in range(n)]


def the_rendezvous_store_is_shared(r, n):
    store = world._world.store
    store.set(f"test/rank{r}", str(r * r))
    store.wait([f"test/rank{q}" for q in range(n)])
    assert [int(store.get(f"test/rank{q}")) for q in range(n)] == [q * q for q in range(n)]
    assert store.add("test/counter", 1) <= n


CASES = [the_world_is_the_rendezvous_world, collectives_and_objects_reach_every_rank,
         the_rendezvous_store_is_shared,
         ddp_cases.mlp_float64_matches_one_process_with_the_global_batch,
         ddp_cases.many_buckets_match_one_process_and_are_rebuilt_in_ready_order,
         ddp_cases.no_sync_accumulates_locally_then_averages_the_sum,
         ddp_cases.find_unused_parameters_reduces_zeros_for_unused_and_leaves_globally_unused_alone]
CASE_NAMES = [case.__name__ for case in CASES]


def run_rank(report_dir: str) -> None:
    r, n = dist.get_rank(), dist.get_world_size()
    write_report(report_dir, r, {"world_size": n, **run_cases(CASES, r, n)})
    dist.destroy_process_group()


def spawned(rank: int, world_size: int, init_method: str, report_dir: str) -> None:
    """Process ``rank`` of ``dg.multiprocessing.spawn``, as PyTorch's DDP tutorial writes it."""
    dist.init_process_group("gloo", init_method=init_method, rank=rank, world_size=world_size, timeout=30)
    run_rank(report_dir)


def main() -> None:
    if sys.argv[1] == "--spawn":
        n, init_method, report_dir = int(sys.argv[2]), sys.argv[3], sys.argv[4]
        dg.multiprocessing.spawn(spawned, args=(n, init_method, report_dir), nprocs=n)
    else:
        dist.init_process_group(backend="gloo", timeout=30)  # init_method="env://", PyTorch's default
        run_rank(sys.argv[1])


if __name__ == "__main__":
    main()
