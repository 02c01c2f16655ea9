"""Running a benchmark task on N ranks and bringing rank 0's result back to the command line.

The command line never joins an MPI world itself: each task runs in fresh processes started by
``mpiexec`` (or ``srun`` inside a SLURM allocation, with the PMI mode distgrad-launch would use),
one thread count for every rank. Rank 0 prints progress and result lines on its standard output;
``run_task`` reads them as they come, so that the progress bar moves while the ranks work.
"""
from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import threading

from distgrad.bench.threads import THREAD_VARIABLES, thread_env
from distgrad.launch import mpi, slurm

RESULT_PREFIX = "distgrad-bench-result "
PROGRESS_PREFIX = "distgrad-bench-progress "


def launch_command(ranks: int, program: list) -> list:
    """``mpiexec -n N program`` here, ``srun --mpi=<mode> --ntasks=N --nodes=K program`` in an allocation.

    In an allocation the step spans as few nodes as ``$SLURM_NTASKS_PER_NODE`` allows, so that a sweep
    over world sizes inside one large allocation measures 1, 2, 4, ... nodes rather than thin slices of all.
    """
    if slurm.in_allocation():
        command = slurm.srun_command(ranks, program, slurm.SRUN_MPI_MODES[mpi.library_flavour()])
        per_node = os.environ.get("SLURM_NTASKS_PER_NODE", "").split("(")[0].split(",")[0]
        if per_node.isdigit():
            command.insert(-len(program), f"--nodes={math.ceil(ranks / int(per_node))}")
        return command
    mpiexec = mpi.find_mpiexec()
    return mpi.mpiexec_command(ranks, program, mpiexec, mpi.mpiexec_flavour(mpiexec), forward=THREAD_VARIABLES)


def run_task(task: str, params: dict, ranks: int | None, threads: int, on_progress=None,
             timeout_s: float = 3600) -> dict:
    """Runs ``task`` (a name in ``distgrad.bench.worker.TASKS``) with ``params`` and returns rank 0's result.

    ``ranks=None`` runs one plain process without MPI. ``on_progress(label)`` is called for each
    progress line. A failing rank raises ``RuntimeError`` with the end of the ranks' error output.
    """
    program = [sys.executable, "-m", "distgrad.bench.worker", task, json.dumps(params)]
    command = program if ranks is None else launch_command(ranks, program)
    env = {**os.environ, **thread_env(threads)}
    if ranks is not None:
        env[mpi.EXPECTED_WORLD_SIZE_ENV] = str(ranks)
    result = None
    with tempfile.TemporaryFile(mode="w+") as errors:
        child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=errors, text=True, bufsize=1)
        deadline = threading.Timer(timeout_s, child.kill)  # a hung rank must not hang the sweep
        deadline.start()
        try:
            for line in child.stdout:
                if line.startswith(PROGRESS_PREFIX) and on_progress is not None:
                    on_progress(json.loads(line[len(PROGRESS_PREFIX):]))
                elif line.startswith(RESULT_PREFIX):
                    result = json.loads(line[len(RESULT_PREFIX):])
            status = child.wait()
        except BaseException:
            child.kill()
            child.wait()
            raise
        finally:
            deadline.cancel()
        errors.seek(0)
        error_text = errors.read()
    where = "one process" if ranks is None else f"{ranks} rank(s)"
    if status != 0 or result is None:
        raise RuntimeError(f"distgrad-bench: task {task!r} on {where} failed (exit status {status}):\n"
                           f"{error_text[-4000:]}")
    return result


def rank_device(device: str) -> str:
    """The device this rank measures on: ``'cpu'``, or for ``'cuda'`` its own GPU of the node (local rank
    modulo the GPUs CuPy sees). Called on a rank, after ``init_process_group``."""
    if device != "cuda":
        return device
    import distgrad.distributed as dist
    from distgrad import backend
    return f"cuda:{dist.get_local_rank() % backend.cuda_device_count()}"


def join_torch_gloo() -> int:
    """Joins PyTorch's gloo process group of the job's MPI ranks and returns this rank: rank 0 picks an
    address and a free port and sends them to the others over MPI (no MASTER_ADDR needed). Called on a
    rank; ``torch.distributed.destroy_process_group()`` leaves the group."""
    import torch.distributed as tdist
    from distgrad.distributed import mpi_env
    comm = mpi_env.mpi().COMM_WORLD
    host, port = comm.bcast((socket.gethostname(), _free_port()) if comm.Get_rank() == 0 else None)
    address = "127.0.0.1" if host == socket.gethostname() else host  # one machine here; srun may spread ranks
    tdist.init_process_group("gloo", init_method=f"tcp://{address}:{port}", rank=comm.Get_rank(),
                             world_size=comm.Get_size())
    return comm.Get_rank()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


class Reporter:
    """The worker's side: rank 0 prints progress and the result in lines ``run_task`` recognises."""

    def __init__(self, is_rank_zero):
        self._is_rank_zero = is_rank_zero

    def progress(self, label: str) -> None:
        if self._is_rank_zero():
            print(PROGRESS_PREFIX + json.dumps(label), flush=True)

    def result(self, value: dict) -> None:
        if self._is_rank_zero():
            print(RESULT_PREFIX + json.dumps(value), flush=True)
