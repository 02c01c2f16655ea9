"""What each rank runs: ``python -m distgrad.bench.worker TASK '<json params>'`` (started by ``ranks.run_task``)."""
from __future__ import annotations

import json
import sys

from distgrad.bench import allreduce, autograd_overhead, ddp, mnist
from distgrad.bench.ranks import Reporter

TASKS = {"allreduce": allreduce.worker, "ddp": ddp.worker, "autograd": autograd_overhead.worker,
         "mnist": mnist.worker}


def main(argv=None) -> None:
    task, params = (argv if argv is not None else sys.argv[1:])[:2]
    import distgrad.distributed as dist

    def is_rank_zero() -> bool:
        return not dist.is_initialized() or dist.get_rank() == 0
    reporter = Reporter(is_rank_zero)
    result = TASKS[task](json.loads(params), reporter.progress)
    reporter.result(result)
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
