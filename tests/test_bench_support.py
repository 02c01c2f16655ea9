"""distgrad.bench's supporting pieces: models, the bare-array reference step, launching ranks, the
progress output and the SLURM sweep template."""
import io
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from distgrad.bench import autograd_overhead, ddp, frameworks, ranks, workloads, zero
from distgrad.bench.progress import Progress

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("params", [10_000, 200_000, 25_000_000, 100_000_000])
def test_the_synthetic_model_has_about_the_requested_parameters_in_four_or_more_layers(params):
    width, depth = workloads.synthetic_width_depth(params)
    assert depth >= 4 and width <= workloads.MAX_SYNTHETIC_WIDTH
    total = (784 + 1) * width + depth * (width * width + width) + (width + 1) * 10
    assert total == pytest.approx(params, rel=0.02)


def test_built_models_match_the_workload_definitions():
    assert workloads.parameter_count(workloads.build_model("mlp")) == 784 * 512 + 512 + 512 * 512 + 512 + 5130
    assert workloads.parameter_count(workloads.build_model("cnn")) == 1_199_882
    assert workloads.parameter_count(workloads.build_model("synthetic", 50_000)) == pytest.approx(50_000, rel=0.02)
    with pytest.raises(ValueError, match="at least 10000 parameters"):
        workloads.synthetic_width_depth(500)
    with pytest.raises(ValueError, match="unknown model 'vgg'"):
        workloads.build_model("vgg")


def test_repeated_runs_report_the_median_run_whole():
    runs = [{"step_ms": 9.0, "forward_ms": 3.0}, {"step_ms": 5.0, "forward_ms": 2.0},
            {"step_ms": 7.0, "forward_ms": 1.0}]
    assert ddp.median_run(runs) == {"step_ms": 7.0, "forward_ms": 1.0, "repeats_step_ms": [9.0, 5.0, 7.0]}
    assert ddp.median_run(runs[:2])["step_ms"] == 5.0  # an even count takes the faster middle run


def test_zero_ratios_are_against_its_own_frameworks_plain_adam_on_the_fewest_ranks():
    def row(world, config, state, ms):
        return {"world_size": world, "config": config, "optimizer_state_bytes": state, "step_ms": ms}
    rows = zero.add_ratios([row(1, "ddp", 800, 10.0), row(2, "ddp", 800, 20.0), row(2, "zero1", 400, 15.0),
                            row(2, "torch_zero1", 400, 12.0)])
    assert [(r["state_vs_plain_n1"], r["step_vs_plain_ddp"]) for r in rows] == [(1.0, 1.0), (1.0, 1.0),
                                                                                (0.5, 0.75), (None, None)]
    assert zero.layer_sizes(2048, 6) == [2048] * 7 + [10]  # W9: 25,198,602 parameters


def test_the_bare_array_step_trains_exactly_like_distgrad():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((64, 784)).astype(np.float32)
    y = rng.integers(0, 10, 64)
    bare, bare_params = autograd_overhead.bare_array_step("cpu", x, y)
    ours = autograd_overhead.w1_step(frameworks.load("distgrad"), "cpu", x, y)
    for _ in range(3):
        np.testing.assert_allclose(float(bare()), ours().item(), rtol=1e-5)


def test_ranks_start_through_mpiexec_here_and_srun_on_whole_nodes_in_an_allocation(monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    command = ranks.launch_command(2, ["python", "w.py"])
    assert "mpiexec" in os.path.basename(command[0]) and command[1:3] == ["-n", "2"]
    assert command[-2:] == ["python", "w.py"]
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    monkeypatch.setenv("SLURM_NTASKS_PER_NODE", "4(x2)")
    monkeypatch.setattr(ranks.mpi, "library_flavour", lambda: "mpich")  # asking MPI here would pin this process
    assert ranks.launch_command(8, ["python", "w.py"]) == ["srun", "--mpi=pmi2", "--ntasks=8", "--nodes=2",
                                                           "python", "w.py"]
    assert "--nodes=1" in ranks.launch_command(3, ["python", "w.py"])


def test_a_failing_rank_is_an_error_that_shows_its_message():
    pytest.importorskip("mpi4py")
    with pytest.raises(RuntimeError, match=r"task 'allreduce' on 1 rank\(s\) failed(.|\n)*Invalid backend"):
        ranks.run_task("allreduce", {"backend": "bogus"}, 1, threads=1)


def test_progress_prints_plain_lines_when_not_on_a_terminal():
    stream = io.StringIO()
    with Progress(2, "ddp", stream=stream) as bar:
        bar.advance("mlp on 1 rank")
        bar.note("still going")
        bar.advance()
    assert stream.getvalue().splitlines() == ["[ddp] 1/2 mlp on 1 rank", "[ddp] still going", "[ddp] 2/2"]
    quiet = io.StringIO()
    Progress(1, "x", stream=quiet, enabled=False).advance("y")
    assert quiet.getvalue() == ""


def test_the_sweep_template_is_valid_bash_that_runs_distgrad_bench_per_node_count():
    path = os.path.join(ROOT, "slurm", "bench_sweep.sbatch")
    assert subprocess.run(["bash", "-n", path]).returncode == 0
    text = open(path).read()
    directives = set(re.findall(r"^#SBATCH --([a-z-]+)", text, flags=re.M))
    assert directives <= {"job-name", "nodes", "ntasks-per-node", "cpus-per-task", "exclusive", "time", "output"}
    assert "distgrad-bench all --ranks" in text and "distgrad-bench summary" in text


def test_the_console_script_lists_every_subcommand():
    script = shutil.which("distgrad-bench")
    assert script is not None, "distgrad-bench is not on PATH: pip install -e ."
    done = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "usage: distgrad-bench" in done.stdout
    for command in ("allreduce", "ddp", "autograd", "mnist", "model", "all", "summary"):
        assert command in done.stdout
