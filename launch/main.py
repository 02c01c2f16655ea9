"""``distgrad-launch``: the command line, and running the ranks with signals and exit codes passed on.

    distgrad-launch -n 4 examples/mnist.py --epochs 1        # local: mpiexec (or srun in an allocation)
    distgrad-launch --slurm --nodes 2 --gpus-per-node 4 --time 00:30:00 --partition gpu train.py
    distgrad-launch --dry-run -n 2 train.py                  # print what would run
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys

from distgrad.launch import mpi, slurm

FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="distgrad-launch", description="Run a Python script on N ranks over MPI.")
    p.add_argument("-n", "--nproc", type=int, help="number of ranks (in a SLURM allocation: $SLURM_NTASKS)")
    p.add_argument("--launcher", choices=("auto", "mpiexec", "srun"), default="auto",
                   help="auto: srun inside a SLURM allocation, mpiexec elsewhere")
    p.add_argument("--srun-mpi", help="srun's --mpi mode (default: pmi2 for MPICH, pmix for Open MPI)")
    p.add_argument("--dry-run", action="store_true", help="print the command (or sbatch script) and exit")
    s = p.add_argument_group("submitting to SLURM from outside an allocation")
    s.add_argument("--slurm", action="store_true", help="write an sbatch script and submit it")
    s.add_argument("--nodes", type=int, default=1)
    s.add_argument("--gpus-per-node", type=int, default=0, help="one rank per GPU")
    s.add_argument("--ntasks-per-node", type=int, help="ranks per node (default: --gpus-per-node, or -n)")
    s.add_argument("--time", help="time limit, e.g. 00:30:00")
    s.add_argument("--partition")
    s.add_argument("--job-name", default="distgrad")
    s.add_argument("--wait", action="store_true", help="sbatch --wait: return the job's exit status")
    p.add_argument("script", help="the Python script every rank runs")
    p.add_argument("script_args", nargs=argparse.REMAINDER, help="its arguments")
    args = p.parse_args(argv)
    if args.nproc is not None and args.nproc < 1:
        p.error(f"-n must be at least 1, got {args.nproc}")
    return args


def run_forwarding_signals(command: list, env: dict) -> int:
    """Runs ``command`` in its own session, passing our signals on; returns its exit status
    (128 + N when a signal N ended it, as shells report)."""
    child = subprocess.Popen(command, env=env, start_new_session=True)
    previous = {sig: signal.signal(sig, lambda signum, frame: child.send_signal(signum)) for sig in FORWARDED_SIGNALS}
    try:
        status = child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return status if status >= 0 else 128 - status


def _mpi_mode(args) -> str:
    return args.srun_mpi or slurm.SRUN_MPI_MODES[mpi.library_flavour()]


def _submit(args, program: list) -> int:
    tasks = args.ntasks_per_node or args.gpus_per_node or args.nproc or 1
    script = slurm.sbatch_script(program, nodes=args.nodes, mpi_mode=_mpi_mode(args), tasks_per_node=tasks,
                                 gpus_per_node=args.gpus_per_node, time=args.time, partition=args.partition,
                                 job_name=args.job_name)
    if args.dry_run:
        sys.stdout.write(script)
        return 0
    command = ["sbatch"] + (["--wait"] if args.wait else [])
    return subprocess.run(command, input=script, text=True).returncode


def _thread_defaults(ranks: int, use_srun: bool) -> dict:
    """OMP/BLAS threads per rank = cores / local ranks, unless the user chose (as torchrun does).

    N ranks each running a BLAS with one thread per core oversubscribe the machine several times over.
    """
    if "OMP_NUM_THREADS" in os.environ:
        return {}
    if use_srun:
        per_task = os.environ.get("SLURM_CPUS_PER_TASK")
        return {"OMP_NUM_THREADS": per_task} if per_task else {}
    return {"OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // ranks))}


def main(argv=None) -> int:
    args = parse_args(argv)
    program = [sys.executable, args.script] + args.script_args
    if args.slurm:
        return _submit(args, program)
    use_srun = args.launcher == "srun" or (args.launcher == "auto" and slurm.in_allocation())
    n = args.nproc or (int(os.environ["SLURM_NTASKS"]) if use_srun and os.environ.get("SLURM_NTASKS") else None)
    if n is None:
        print("distgrad-launch: give the number of ranks with -n", file=sys.stderr)
        return 2
    threads = _thread_defaults(n, use_srun)
    if use_srun:
        command = slurm.srun_command(n, program, _mpi_mode(args))
    else:
        mpiexec = mpi.find_mpiexec()
        command = mpi.mpiexec_command(n, program, mpiexec, mpi.mpiexec_flavour(mpiexec), forward=tuple(threads))
    expected = {mpi.EXPECTED_WORLD_SIZE_ENV: str(n), **threads}
    if args.dry_run:
        print(mpi.shell_line(command, expected))
        return 0
    return run_forwarding_signals(command, {**os.environ, **expected})


if __name__ == "__main__":
    sys.exit(main())
