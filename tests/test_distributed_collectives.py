"""Every collective on real ranks (``mpiexec -n 2`` and ``-n 3``) and alone without a launcher; on a
GPU also NCCL with one rank and MPI with two ranks sharing the GPU (device buffers through MPI).

The cases and their expected values live in ``distributed_scripts/collective_cases.py``: one run
per configuration executes them all on every rank; each test below reports one case.
"""
import sys

import pytest

pytest.importorskip("mpi4py")

from distgrad import backend  # noqa: E402
from distributed_scripts import collective_cases, runner  # noqa: E402
from helpers import expect_case_ok  # noqa: E402

CUDA = pytest.mark.skipif(not backend.cuda_is_available(), reason="needs CuPy and a GPU")
CONFIGURATIONS = [  # (world size, backend, device of the tensors)
    pytest.param((1, "mpi", "cpu"), id="world1-mpi-cpu"),
    pytest.param((2, "mpi", "cpu"), id="world2-mpi-cpu"),
    pytest.param((3, "mpi", "cpu"), id="world3-mpi-cpu"),
    pytest.param((1, "nccl", "cuda"), id="world1-nccl-cuda", marks=[pytest.mark.cuda, CUDA]),
    pytest.param((2, "mpi", "cuda"), id="world2-mpi-cuda", marks=[pytest.mark.cuda, CUDA]),
]


@pytest.fixture(scope="module", params=CONFIGURATIONS)
def ranks(request, tmp_path_factory):
    n, backend_name, device = request.param
    report_dir = str(tmp_path_factory.mktemp(f"world{n}"))
    args = (report_dir, backend_name, device)
    finished = runner.run(runner.world_command(n, [sys.executable, f"{runner.SCRIPTS}/collective_cases.py", *args]))
    reports = runner.reports_of(finished, report_dir, n)
    assert {report["backend"] for report in reports.values()} == {backend_name}
    return reports


def test_every_rank_sees_the_whole_world(ranks):
    n = len(ranks)
    for rank, report in ranks.items():
        assert report["world_size"] == n
        assert report["local_world_size"] == n  # one machine: every rank is local
    assert sorted(report["local_rank"] for report in ranks.values()) == list(range(n))


@pytest.mark.parametrize("case", collective_cases.CASE_NAMES)
def test_collective(ranks, case):
    expect_case_ok(ranks, case)
