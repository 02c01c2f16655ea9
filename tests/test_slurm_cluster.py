"""A real one-node SLURM cluster (started here, ~5 s): distgrad-launch under sbatch and srun.

Skipped where SLURM is not installed; ``.ci/run`` installs it (``../shared/notes/slurm-single-node.md``).
"""
import os
import subprocess
import sys

import pytest

pytest.importorskip("mpi4py")

from distributed_scripts import runner, slurm_cluster  # noqa: E402

LAUNCH = [sys.executable, "-m", "distgrad.launch"]
REPORT_WORLD = os.path.join(runner.SCRIPTS, "report_world.py")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    yield from slurm_cluster.running_cluster(str(tmp_path_factory.mktemp("slurm")))


def test_launch_inside_an_allocation_runs_srun_with_the_right_mpi_mode(cluster, tmp_path):
    done = subprocess.run(["salloc", "-n", "2", "--overcommit"] + LAUNCH + [REPORT_WORLD, str(tmp_path)],
                          env=cluster.env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    reports = runner.read_reports(str(tmp_path))
    assert sorted(reports) == [0, 1] and {r["world_size"] for r in reports.values()} == {2}


def test_a_wrong_srun_mode_is_an_error_not_two_worlds_of_one(cluster, tmp_path):
    done = subprocess.run(["salloc", "-n", "2", "--overcommit"] + LAUNCH +
                          ["--srun-mpi", "none", REPORT_WORLD, str(tmp_path)],
                          env=cluster.env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "the launcher started 2 ranks but this process is in an MPI world of size 1" in done.stderr


def test_submitted_job_runs_every_rank(cluster, tmp_path):
    (tmp_path / "reports").mkdir()
    done = subprocess.run(LAUNCH + ["--slurm", "--nodes", "1", "--ntasks-per-node", "2", "--wait",
                                    REPORT_WORLD, str(tmp_path / "reports")],
                          env=cluster.env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    job_output = "".join(p.read_text() for p in tmp_path.glob("distgrad-*.out"))
    assert done.returncode == 0, done.stdout + done.stderr + job_output
    reports = runner.read_reports(str(tmp_path / "reports"))
    assert sorted(reports) == [0, 1] and {r["world_size"] for r in reports.values()} == {2}


def test_the_mnist_template_trains_on_two_ranks(cluster, tmp_path):
    if not os.environ.get("DISTGRAD_DATA"):
        pytest.skip("needs DISTGRAD_DATA (MNIST) to train without downloading")
    root = os.path.dirname(os.path.dirname(runner.SCRIPTS))
    done = subprocess.run(["sbatch", "--wait", "--gpus-per-node=0", "--cpus-per-task=1", "--overcommit",
                           f"--output={tmp_path}/mnist.out", "slurm/mnist.sbatch", "--limit-batches", "3",
                           "--device", "cpu"],
                          env={**cluster.env, "DISTGRAD_CHECKPOINT": str(tmp_path / "mnist.ckpt")}, cwd=root,
                          capture_output=True, text=True, timeout=120)
    output = (tmp_path / "mnist.out").read_text()
    assert done.returncode == 0, done.stderr + output
    assert "rank 0 of world 2" in output and "rank 1 of world 2" in output
    assert "final test accuracy" in output


def test_the_gpt_template_trains_on_two_ranks_and_resumes(cluster, tmp_path):
    root = os.path.dirname(os.path.dirname(runner.SCRIPTS))
    text = tmp_path / "text.txt"
    text.write_text("Speak, speak. You are all resolved rather to die than to famish?\n" * 60)

    def job(name, steps):
        done = subprocess.run(["sbatch", "--wait", "--gpus-per-node=0", "--cpus-per-task=1", "--overcommit",
                               f"--output={tmp_path}/{name}.out", f"--export=ALL,GPT_CHECKPOINT={tmp_path}/gpt.dg",
                               "slurm/gpt.sbatch", "--preset", "tiny", "--data", str(text), "--device", "cpu",
                               "--batch-size", "2", "--eval-iters", "1", "--eval-interval", "2", "--tokens", "5",
                               "--steps", "4", "--stop-at", str(steps)],
                              env=cluster.env, cwd=root, capture_output=True, text=True, timeout=180)
        output = (tmp_path / f"{name}.out").read_text()
        assert done.returncode == 0, done.stderr + output
        return output
    first = job("first", 2)
    assert "rank 1 of world 2" in first and "after 2 steps on 2 rank(s)" in first
    assert "after 4 steps on 2 rank(s)" in job("second", 4)  # resumed from the first job's checkpoint
