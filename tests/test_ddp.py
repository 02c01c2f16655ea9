"""DistributedDataParallel on real ranks (``mpiexec -n 2`` and ``-n 3``) and alone (a world of one).

The cases live in ``ddp_scripts/ddp_cases.py``: one job per world size runs them all on every
rank (a few seconds); each test below reports one case, or compares what the ranks reported.
"""
import sys

import pytest

pytest.importorskip("mpi4py")

from ddp_scripts import ddp_cases  # noqa: E402
from distributed_scripts import runner  # noqa: E402

from distgrad.launch import mpi  # noqa: E402

WORLD_SIZES = (1, 2, 3)


@pytest.fixture(scope="module", params=WORLD_SIZES, ids=lambda n: f"world{n}")
def ranks(request, tmp_path_factory):
    n, report_dir = request.param, str(tmp_path_factory.mktemp(f"ddp_world{request.param}"))
    program = [sys.executable, ddp_cases.__file__, report_dir]
    if n == 1:  # no launcher at all: mpi4py's singleton world
        finished = runner.run(program)
    else:
        mpiexec = mpi.find_mpiexec()
        finished = runner.run(mpi.mpiexec_command(n, program, mpiexec, mpi.mpiexec_flavour(mpiexec)))
    assert finished.returncode == 0, finished.stdout + finished.stderr
    reports = runner.read_reports(report_dir)
    assert sorted(reports) == list(range(n)), finished.stdout + finished.stderr
    return reports


@pytest.mark.parametrize("case", ddp_cases.CASE_NAMES)
def test_ddp(ranks, case):
    for rank, report in ranks.items():
        result = report["results"][case]
        if result.startswith("skipped:"):
            pytest.skip(result)
        assert result == "ok", f"rank {rank} of {len(ranks)}:\n{result}"


def test_every_rank_has_the_same_buckets_before_and_after_the_rebuild(ranks):
    layouts = [report["data"]["many_buckets_match_one_process_and_are_rebuilt_in_ready_order"]
               for report in ranks.values()]
    assert all(layout == layouts[0] for layout in layouts)
    initial, rebuilt = layouts[0]["initial"], layouts[0]["rebuilt"]
    assert sorted(sum(initial, [])) == sorted(sum(rebuilt, []))  # every parameter in exactly one bucket
