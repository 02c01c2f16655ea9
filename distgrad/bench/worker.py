"""What each rank runs: ``python -m distgrad.bench.worker TASK '<json params>'`` (started by ``ranks.run_task``)."""
from __future__ import annotations

import json
import sys

from distgrad.bench import allreduce, autograd_overhead, ddp, mnist, throughput, zero
from distgrad.bench.ranks import Reporter

TASKS = {"allreduce": allreduce.worker, "ddp": ddp.worker, "autograd": autograd_overhead.worker,
         "mnist": mnist.worker, "w5": throughput.worker, "zero": zero.worker}


def is_rank_zero() -> bool:
    """Rank 0 of the job's MPI world, or the one process of a task that never started MPI (a task may
    use MPI without distgrad's process group: PyTorch's ranks in W5)."""
    MPI = sys.modules.get("mpi4py.MPI")
    return MPI is None or not MPI.Is_initialized() or MPI.Is_finalized() or MPI.COMM_WORLD.Get_rank() == 0


def main(argv=None) -> None:
    task, params = (argv if argv is not None else sys.argv[1:])[:2]
    import distgrad.distributed as dist

    reporter = Reporter(is_rank_zero)
    result = TASKS[task](json.loads(params), reporter.progress)
    reporter.result(result)
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
