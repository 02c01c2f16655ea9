"""sbatch scripts: what ``distgrad-launch --slurm --dry-run`` writes, and the templates in ``slurm/``."""
import os
import re
import subprocess
import sys

import pytest

from distgrad.launch import main as launch_main
from distgrad.launch import slurm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEMPLATES = ("mnist.sbatch", "scaling.sbatch", "gpt.sbatch")
KNOWN_DIRECTIVES = {"job-name", "nodes", "ntasks-per-node", "gpus-per-node", "cpus-per-task", "time", "output",
                    "partition", "exclusive", "requeue", "signal", "open-mode"}


def test_dry_run_prints_the_sbatch_script(capsys):
    assert launch_main.main(["--slurm", "--dry-run", "--srun-mpi", "pmi2", "--nodes", "2", "--gpus-per-node", "4",
                             "--time", "00:30:00", "--partition", "gpu", "train.py", "--epochs", "1"]) == 0
    assert capsys.readouterr().out == f"""#!/bin/bash
#SBATCH --job-name=distgrad
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=4
#SBATCH --gpus-per-node=4
#SBATCH --time=00:30:00
#SBATCH --partition=gpu
#SBATCH --output=%x-%j.out

set -euo pipefail
cd {os.getcwd()}
export DISTGRAD_EXPECTED_WORLD_SIZE=8
srun --mpi=pmi2 {sys.executable} train.py --epochs 1
"""


def test_open_mpi_jobs_use_pmix_and_quiet_its_security_plugin():
    script = slurm.sbatch_script(["python", "t.py"], nodes=1, mpi_mode="pmix", tasks_per_node=2)
    assert "export PMIX_MCA_psec=native" in script
    assert script.rstrip().endswith("srun --mpi=pmix python t.py")
    assert "--gpus-per-node" not in script


def test_cpu_only_jobs_take_ranks_per_node_from_n(capsys):
    launch_main.main(["--slurm", "--dry-run", "--srun-mpi", "pmi2", "-n", "3", "t.py"])
    out = capsys.readouterr().out
    assert "#SBATCH --ntasks-per-node=3" in out and "DISTGRAD_EXPECTED_WORLD_SIZE=3" in out


@pytest.mark.parametrize("name", TEMPLATES)
def test_templates_are_valid_bash_with_known_directives(name):
    path = os.path.join(ROOT, "slurm", name)
    assert subprocess.run(["bash", "-n", path]).returncode == 0
    with open(path) as f:
        text = f.read()
    directives = re.findall(r"^#SBATCH --([a-z-]+)", text, flags=re.M)
    assert directives and set(directives) <= KNOWN_DIRECTIVES
    assert "distgrad-launch" in text  # srun mode and world-size check come from the launcher


def test_the_mnist_template_requeues_after_a_checkpoint_on_the_time_limit_warning():
    with open(os.path.join(ROOT, "slurm", "mnist.sbatch")) as f:
        text = f.read()
    assert "#SBATCH --requeue" in text and "#SBATCH --signal=B:USR1@" in text
    assert "trap time_limit_near USR1" in text and 'kill -USR1 "$launcher"' in text
    assert text.index('wait "$launcher"') < text.index('scontrol requeue "$SLURM_JOB_ID"')  # after the checkpoint
    assert "--resume" in text and "--max-restarts" in text


def test_templates_run_scripts_that_exist():
    with open(os.path.join(ROOT, "slurm", "mnist.sbatch")) as f:
        assert "examples/mnist.py" in f.read()
    with open(os.path.join(ROOT, "slurm", "gpt.sbatch")) as f:
        assert "examples/gpt.py" in f.read()
    with open(os.path.join(ROOT, "slurm", "scaling.sbatch")) as f:
        scaling = f.read()
    assert "benchmarks/ddp_scaling.py" in scaling and "distgrad-launch benchmarks/allreduce.py" in scaling
    for path in ("examples/mnist.py", "examples/gpt.py", "benchmarks/ddp_scaling.py", "benchmarks/allreduce.py"):
        assert os.path.exists(os.path.join(ROOT, path)), path
