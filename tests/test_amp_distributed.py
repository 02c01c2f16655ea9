"""Mixed precision under data parallelism on real ranks (``mpiexec -n 2`` and ``-n 3``): an overflow that
one rank alone sees makes every rank skip the step; bfloat16 gradients cross ranks summed in float32.
The cases live in ``ddp_scripts/amp_cases.py``; one job per world size runs them all."""
import os

import pytest

pytest.importorskip("mpi4py")

from ddp_scripts import amp_cases  # noqa: E402
from distributed_scripts import runner  # noqa: E402
from helpers import expect_case_ok  # noqa: E402


@pytest.fixture(scope="module", params=(2, 3), ids=lambda n: f"world{n}")
def ranks(request, tmp_path_factory):
    report_dir = str(tmp_path_factory.mktemp(f"amp_world{request.param}"))
    return runner.reports_of_ranks(request.param, os.path.relpath(amp_cases.__file__, runner.SCRIPTS), report_dir,
                                   limit_s=120)


@pytest.mark.parametrize("case", amp_cases.CASE_NAMES)
def test_amp_on_ranks(ranks, case):
    expect_case_ok(ranks, case)
