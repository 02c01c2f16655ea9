"""Failure, never a hang: each broken job below must end within seconds, non-zero, saying why."""
import pytest

pytest.importorskip("mpi4py")

from distributed_scripts import runner  # noqa: E402

DETAIL = {"DISTGRAD_DISTRIBUTED_DEBUG": "DETAIL"}


def run_failing(n: int, case: str, *args: str, env=None) -> runner.Finished:
    finished = runner.run_ranks(n, "failures.py", case, *args, env=env, limit_s=30)
    assert finished.returncode != 0, finished.stdout + finished.stderr
    assert "[killed after" not in finished.stderr, finished.stderr
    return finished


@pytest.mark.parametrize("n", [2, 3])
def test_an_exception_on_rank_1_aborts_the_job_naming_rank_1(n):
    finished = run_failing(n, "exception_on_rank_1")
    assert finished.seconds < 10
    assert "ValueError: rank 1 fails on purpose" in finished.stderr
    assert f"rank 1 of {n} raised an uncaught ValueError" in finished.stderr


@pytest.mark.parametrize("n", [2, 3])
def test_a_skipped_collective_times_out_naming_it_and_the_missing_rank(n):
    finished = run_failing(n, "rank_1_skips_an_all_reduce", "1.5")
    assert finished.seconds < 10
    assert "collective #2 (all_reduce) of group WORLD did not complete within the timeout of 1.5 s" in finished.stderr
    assert "Ranks that did not arrive: [1]" in finished.stderr
    assert "rank 1 last entered #1 (barrier)" in finished.stderr


def test_an_async_work_that_never_completes_times_out():
    finished = run_failing(2, "rank_1_waits_forever_on_async_work", "1.5")
    assert finished.seconds < 10
    assert "collective #1 (all_reduce)" in finished.stderr
    assert "Ranks that did not arrive: [1]" in finished.stderr


def test_debug_detail_reports_different_shapes_instead_of_hanging():
    finished = run_failing(3, "shapes_differ", env=DETAIL)
    assert finished.seconds < 10
    assert ("Detected mismatch between collectives on ranks: collective #1 of group WORLD is "
            "all_reduce(float32[4] on cpu, op=SUM) on ranks [0] but all_reduce(float32[5] on cpu, op=SUM) "
            "on ranks [1] but all_reduce(float32[6] on cpu, op=SUM) on ranks [2]") in finished.stderr


def test_debug_detail_reports_different_collectives():
    finished = run_failing(3, "collectives_differ", env=DETAIL)
    assert finished.seconds < 10
    assert ("all_reduce(float32[4] on cpu, op=SUM) on ranks [0, 2] but "
            "broadcast(float32[4] on cpu, src=0) on ranks [1]") in finished.stderr
