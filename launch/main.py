"""``distgrad-launch``: the command line, and running the ranks with signals and exit codes passed on.

    distgrad-launch -n 4 examples/mnist.py --epochs 1        # local: mpiexec (or srun in an allocation)
    distgrad-launch --slurm --nodes 2 --gpus-per-node 4 --time 00:30:00 --partition gpu train.py
    distgrad-launch --dry-run -n 2 train.py                  # print what would run
    distgrad-launch -n 2 --max-restarts 3 train.py           # start the whole job again when a rank fails

Each rank runs under a keeper (``distgrad.launch.rank``) that records how it ended and ends it when
the launcher is gone; ``supervise`` runs one attempt. Threads per rank are chosen by the ranks
themselves (``distgrad.threads``), so plain mpiexec/srun runs as fast as this launcher.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

from distgrad import envvars
from distgrad.launch import mpi, rank, slurm, supervise

# Open MPI forwards only the variables it is told to; the others reach the ranks on their own.
RANK_ENV = (envvars.RESTART_COUNT, envvars.LAUNCHER, envvars.LAUNCH_STATUS_DIR)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="distgrad-launch", description="Run a Python script on N ranks over MPI.")
    p.add_argument("-n", "--nproc", type=int, help="number of ranks (in a SLURM allocation: $SLURM_NTASKS)")
    p.add_argument("--launcher", choices=("auto", "mpiexec", "srun"), default="auto",
                   help="auto: srun inside a SLURM allocation, mpiexec elsewhere")
    p.add_argument("--srun-mpi", help="srun's --mpi mode (default: pmi2 for MPICH, pmix for Open MPI)")
    p.add_argument("--dry-run", action="store_true", help="print the command (or sbatch script) and exit")
    p.add_argument("--max-restarts", type=int, default=0, metavar="K",
                   help=f"when a rank fails, start the whole job again, up to K times; ranks read the attempt "
                        f"number (0 first) from ${envvars.RESTART_COUNT} and resume from their checkpoint")
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
    if args.max_restarts < 0:
        p.error(f"--max-restarts must be at least 0, got {args.max_restarts}")
    return args


def run_attempts(command: list, env: dict, world_size: int, max_restarts: int) -> int:
    """Runs the job, and again after a failure up to ``max_restarts`` times; returns the exit status."""
    status_dir = tempfile.mkdtemp(prefix="distgrad-launch-")
    try:
        for attempt in range(max_restarts + 1):
            for name in os.listdir(status_dir):
                os.remove(os.path.join(status_dir, name))
            outcome = supervise.run_job(command, {**env, envvars.RESTART_COUNT: str(attempt),
                                                  envvars.LAUNCH_STATUS_DIR: status_dir})
            if outcome.stopped_by is not None:
                return outcome.exit_status
            if outcome.status != 0:
                first = supervise.first_to_end(status_dir, world_size)
                print(f"distgrad-launch: the job failed ({supervise.describe_status(outcome.status)})"
                      + (f": {first}" if first else ""), file=sys.stderr, flush=True)
            if outcome.status == 0 or attempt == max_restarts:
                return outcome.exit_status
            print(f"distgrad-launch: restarting the job (restart {attempt + 1} of {max_restarts}, "
                  f"{envvars.RESTART_COUNT}={attempt + 1})", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(status_dir, ignore_errors=True)


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
    kept = [sys.executable, "-m", rank.__name__] + program[1:]
    if use_srun:
        command = slurm.srun_command(n, kept, _mpi_mode(args))
    else:
        mpiexec = mpi.find_mpiexec()
        command = mpi.mpiexec_command(n, kept, mpiexec, mpi.mpiexec_flavour(mpiexec), forward=RANK_ENV)
    expected = {mpi.EXPECTED_WORLD_SIZE_ENV: str(n)}
    if args.dry_run:
        print(mpi.shell_line(command, expected))
        return 0
    env = {**os.environ, **expected, envvars.LAUNCHER: rank.launcher_identity()}
    return run_attempts(command, env, n, args.max_restarts)


if __name__ == "__main__":
    sys.exit(main())
