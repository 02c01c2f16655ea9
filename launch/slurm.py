"""SLURM: ``srun`` inside an allocation, and sbatch scripts for submitting from outside one.

``srun`` talks to the ranks' MPI through a PMI plugin that must match the library: MPICH needs
``--mpi=pmi2``, Open MPI ``--mpi=pmix``. A wrong mode can "succeed" with N worlds of size 1,
which the expected-world-size check turns into an error.
"""
from __future__ import annotations

import os
import shlex

from distgrad.launch.mpi import EXPECTED_WORLD_SIZE_ENV

SRUN_MPI_MODES = {"mpich": "pmi2", "openmpi": "pmix"}


def in_allocation(env=None) -> bool:
    return bool((env if env is not None else os.environ).get("SLURM_JOB_ID"))


def srun_command(n: int, program: list, mpi_mode: str) -> list:
    return ["srun", f"--mpi={mpi_mode}", f"--ntasks={n}"] + list(program)


def sbatch_script(program: list, *, nodes: int, mpi_mode: str, tasks_per_node: int, gpus_per_node: int = 0,
                  time: str | None = None, partition: str | None = None, job_name: str = "distgrad",
                  workdir: str | None = None) -> str:
    """A batch script running ``program`` on ``nodes x tasks_per_node`` ranks, one per GPU when
    ``gpus_per_node`` is given."""
    directives = [f"--job-name={job_name}", f"--nodes={nodes}", f"--ntasks-per-node={tasks_per_node}"]
    if gpus_per_node:
        directives.append(f"--gpus-per-node={gpus_per_node}")
    if time:
        directives.append(f"--time={time}")
    if partition:
        directives.append(f"--partition={partition}")
    directives.append("--output=%x-%j.out")
    body = [
        "set -euo pipefail",
        f"cd {shlex.quote(workdir or os.getcwd())}",
        f"export {EXPECTED_WORLD_SIZE_ENV}={nodes * tasks_per_node}",
        shlex.join(["srun", f"--mpi={mpi_mode}"] + list(program)),
    ]
    if mpi_mode == "pmix":
        body.insert(2, "export PMIX_MCA_psec=native  # quiets PMIx security warnings under Open MPI")
    return "\n".join(["#!/bin/bash"] + [f"#SBATCH {d}" for d in directives] + [""] + body) + "\n"
