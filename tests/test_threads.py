"""BLAS threads: dg.set_num_threads / get_num_threads, and each rank's share of its node's cores."""
import os

import pytest

import distgrad as dg
from distgrad import threads


@pytest.fixture
def restore_threads():
    before, chosen = dg.get_num_threads(), threads._chosen_by_user
    yield
    dg.set_num_threads(before)
    threads._chosen_by_user = chosen


def test_set_num_threads_reaches_the_blas(restore_threads):
    dg.set_num_threads(1)
    assert dg.get_num_threads() == 1


def test_the_count_kept_for_every_op_follows_set_num_threads(restore_threads):
    dg.set_num_threads(2)
    assert threads.cached_num_threads() == dg.get_num_threads()
    dg.set_num_threads(1)
    assert threads.cached_num_threads() == 1


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "2"])
def test_set_num_threads_wants_a_positive_int(bad):
    with pytest.raises(ValueError, match="set_num_threads expects a positive integer"):
        dg.set_num_threads(bad)


@pytest.mark.parametrize("mine, masks, expected", [
    ({0, 1}, [[0, 1], [0, 1]], 1),                     # mpirun: 2 ranks on the same 2 cores
    ({0, 1, 2, 3}, [[0, 1, 2, 3]] * 2, 2),             # 4 cores, 2 ranks
    ({0, 1}, [[0, 1]] * 3, 1),                         # more ranks than cores: one thread each
    ({0, 1}, [[0, 1], [2, 3]], 2),                     # bound to disjoint cores (srun --cpu-bind)
    ({0, 1, 2, 3, 4, 5, 6, 7}, [list(range(8))], 8),   # alone on the node
])
def test_a_ranks_share_is_its_cores_over_the_ranks_sharing_them(mine, masks, expected):
    assert threads.threads_per_rank(mine, masks) == expected


pytest.importorskip("mpi4py")
from distributed_scripts import runner  # noqa: E402


def test_ranks_started_by_plain_mpiexec_share_the_cores(tmp_path):
    env = {k: "" for k in threads.USER_VARIABLES}
    finished = runner.run_ranks(2, "report_world.py", str(tmp_path), env=env, limit_s=60)
    assert finished.returncode == 0, finished.stderr
    cores = len(os.sched_getaffinity(0))
    assert {r["blas_threads"] for r in runner.read_reports(str(tmp_path)).values()} == {max(1, cores // 2)}


def test_omp_num_threads_overrides_the_share(tmp_path):
    cores = len(os.sched_getaffinity(0))
    if cores < 2:
        pytest.skip("one core: the share and the override are the same")
    finished = runner.run_ranks(2, "report_world.py", str(tmp_path), env={"OMP_NUM_THREADS": str(cores)}, limit_s=60)
    assert finished.returncode == 0, finished.stderr
    assert {r["blas_threads"] for r in runner.read_reports(str(tmp_path)).values()} == {cores}
