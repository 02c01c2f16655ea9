"""ZeroRedundancyOptimizer, SyncBatchNorm and Join on real ranks: one job runs every case of
``zero_cases``, ``sync_batchnorm_cases`` and ``join_cases`` on each rank of ``mpiexec -n N``.

Run as ``scale_out_cases.py REPORT_DIR``; each rank writes ``REPORT_DIR/rank<r>.json`` with
``{"results": {case: "ok" | "skipped: why" | the failure}, "data": {case: what it returned}}``.
``tests/conftest.py`` (fixture ``scale_out_ranks``) runs it for N = 2 and 3.
"""
from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "distributed_scripts"))

import join_cases  # noqa: E402
import sync_batchnorm_cases  # noqa: E402
import zero_cases  # noqa: E402
from runner import run_cases_on_the_mpi_world  # noqa: E402

MODULES = {"zero": zero_cases, "sync_batchnorm": sync_batchnorm_cases, "join": join_cases}
CASE_NAMES = {area: [case.__name__ for case in module.CASES] for area, module in MODULES.items()}


if __name__ == "__main__":
    run_cases_on_the_mpi_world([case for module in MODULES.values() for case in module.CASES], timeout=20)
