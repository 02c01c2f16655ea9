"""DistributedDataParallel on real ranks (``mpiexec -n 2`` and ``-n 3``) and alone (a world of one).

The cases live in ``ddp_scripts/ddp_cases.py``: one job per world size runs them all on every
rank (a few seconds); each test below reports one case, or compares what the ranks reported.
"""
import sys

import pytest

pytest.importorskip("mpi4py")

from ddp_scripts import ddp_cases  # noqa: E402
from distributed_scripts import runner  # noqa: E402
from helpers import expect_case_ok  # noqa: E402

WORLD_SIZES = (1, 2, 3)


@pytest.fixture(scope="module", params=WORLD_SIZES, ids=lambda n: f"world{n}")
def ranks(request, tmp_path_factory):
    n, report_dir = request.param, str(tmp_path_factory.mktemp(f"ddp_world{request.param}"))
    finished = runner.run(runner.world_command(n, [sys.executable, ddp_cases.__file__, report_dir]))
    return runner.reports_of(finished, report_dir, n)


@pytest.mark.parametrize("case", ddp_cases.CASE_NAMES)
def test_ddp(ranks, case):
    expect_case_ok(ranks, case)


def test_every_rank_has_the_same_buckets_before_and_after_the_rebuild(ranks):
    layouts = [report["data"]["many_buckets_match_one_process_and_are_rebuilt_in_ready_order"]
               for report in ranks.values()]
    assert all(layout == layouts[0] for layout in layouts)
    initial, rebuilt = layouts[0]["initial"], layouts[0]["rebuilt"]
    assert sorted(sum(initial, [])) == sorted(sum(rebuilt, []))  # every parameter in exactly one bucket
