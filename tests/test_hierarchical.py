"""The hierarchical all-reduce (reduce in the node, all-reduce among leaders, broadcast in the node) on
``mpiexec -n 4`` as 2 nodes of 2 and ``-n 3`` as nodes of 2 and 1 (``DISTGRAD_RANKS_PER_NODE=2``):
equal to the flat all-reduce, and DDP with it equal to one process (``ddp_scripts/hierarchical_cases.py``)."""
import pytest

pytest.importorskip("mpi4py")

from ddp_scripts import hierarchical_cases  # noqa: E402
from distributed_scripts import runner  # noqa: E402
from helpers import expect_case_ok  # noqa: E402

from distgrad import envvars  # noqa: E402
from distgrad.distributed.hierarchical import node_colors  # noqa: E402


@pytest.fixture(scope="module", params=(4, 3), ids=lambda n: f"world{n}")
def ranks(request, tmp_path_factory):
    n, report_dir = request.param, str(tmp_path_factory.mktemp(f"hierarchical{request.param}"))
    finished = runner.run_ranks(n, "../ddp_scripts/hierarchical_cases.py", report_dir,
                                env={envvars.FAKE_RANKS_PER_NODE: "2"}, limit_s=120)
    return runner.reports_of(finished, report_dir, n)


@pytest.mark.parametrize("case", hierarchical_cases.CASE_NAMES)
def test_hierarchical_all_reduce(ranks, case):
    expect_case_ok(ranks, case)


def test_one_leader_per_node(ranks):
    layout = [ranks[r]["data"]["the_nodes_are_the_blocks_of_ranks_per_node"] for r in sorted(ranks)]
    assert [entry["leader"] for entry in layout] == [r % 2 == 0 for r in range(len(ranks))]
    assert {entry["nodes"] for entry in layout} == {2}


def test_nodes_are_blocks_of_ranks_or_the_shared_memory_groups():
    assert [node_colors(r, 0, 2) for r in range(5)] == [0, 0, 2, 2, 4]
    assert [node_colors(r, leader, None) for r, leader in enumerate([0, 0, 2, 2])] == [0, 0, 2, 2]
