"""ZeroRedundancyOptimizer, SyncBatchNorm and Join on real ranks: one job runs every case of
``zero_cases``, ``sync_batchnorm_cases`` and ``join_cases`` on each rank of ``mpiexec -n N``.

Run as ``scale_out_cases.py REPORT_DIR``; each rank writes ``REPORT_DIR/rank<r>.json`` with
``{"results": {case: "ok" | "skipped: why" | the failure}, "data": {case: what it returned}}``.
``tests/conftest.py`` (fixture ``scale_out_ranks``) runs it for N = 2 and 3.
"""
from __future__ import annotations

import os
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "distributed_scripts"))

import distgrad.distributed as dist  # noqa: E402
import join_cases  # noqa: E402
import sync_batchnorm_cases  # noqa: E402
import zero_cases  # noqa: E402
from runner import Skip, write_report  # noqa: E402

MODULES = {"zero": zero_cases, "sync_batchnorm": sync_batchnorm_cases, "join": join_cases}
CASE_NAMES = {area: [case.__name__ for case in module.CASES] for area, module in MODULES.items()}


def main() -> None:
    report_dir = sys.argv[1]
    dist.init_process_group(backend="mpi", timeout=20)  # a desynchronised case ends the job, not hangs
    r, n = dist.get_rank(), dist.get_world_size()
    results, data, seconds = {}, {}, {}
    for module in MODULES.values():
        for case in module.CASES:
            start = time.perf_counter()
            try:
                data[case.__name__] = case(r, n)
                results[case.__name__] = "ok"
            except Skip as why:
                results[case.__name__] = f"skipped: {why}"
            except Exception:
                results[case.__name__] = traceback.format_exc()
            seconds[case.__name__] = round(time.perf_counter() - start, 3)
    write_report(report_dir, r, {"world_size": n, "results": results, "data": data, "seconds": seconds})
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
