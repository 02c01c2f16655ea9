"""benchmarks/*.py print one JSON line each, with the keys docs/status.md quotes; distgrad-bench says
why it wrote no plots, and gives no bandwidth for an all-reduce on one rank."""
import json
import os
import subprocess
import sys

import pytest

from distgrad.bench import allreduce, metrics, plots, report, summary

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENVIRONMENT = {"python", "numpy", "machine", "cpus", "threads", "torch", "commit"}


def one_json_line(script: str, *args) -> dict:
    done = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", script), *args], capture_output=True,
                          text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert len(lines) == 1, done.stdout
    return json.loads(lines[0])


def test_w3_prints_its_line_with_the_ratio_against_pytorch():
    line = one_json_line("autograd_overhead.py", "--reps", "1")
    assert set(line) == {"workload", "device", "distgrad_us_per_op", "torch_us_per_op", "ratio_distgrad_over_torch",
                         "reps", "numpy", "torch", "python", "OMP_NUM_THREADS"}
    assert line["workload"] == "W3" and line["distgrad_us_per_op"] > 0


def test_w2_prints_its_line_and_null_for_a_skipped_pytorch():
    line = one_json_line("cnn_step.py", "--steps", "1", "--warmup", "0", "--skip-torch")
    assert set(line) == {"workload", "device", "distgrad", "torch_run", "step_time_ratio_distgrad_over_torch"} | ENVIRONMENT
    assert line["distgrad"]["ms_per_step"] > 0 and line["torch_run"] is None
    assert line["step_time_ratio_distgrad_over_torch"] is None


def test_the_overlap_benchmark_runs_distgrad_bench_ddp_measurement_on_two_ranks():
    pytest.importorskip("mpi4py")
    line = one_json_line("ddp_overlap.py", "--steps", "1", "--warmup", "0", "--width", "32", "--depth", "2",
                         "--bucket-cap-mb", "0.002")
    assert set(line) == {"benchmark", "world_size", "per_rank_batch", "width", "depth", "bucket_cap_mb", "steps",
                         "backward_ms", "all_reduce_ms", "ddp_backward_ms", "ddp_no_overlap_ms", "buckets", "bucket_mib",
                         "overlap_ratio", "hidden_fraction"} | ENVIRONMENT
    assert line["buckets"] >= 2 and line["ddp_no_overlap_ms"] > 0
    assert line["hidden_fraction"] == pytest.approx(metrics.hidden_fraction(
        line["backward_ms"], line["all_reduce_ms"], line["ddp_backward_ms"]))
    assert line["threads"]["OMP_NUM_THREADS"] == "1"


def test_without_matplotlib_plots_are_skipped_with_one_line_saying_why(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what `import matplotlib` meets where it is not installed
    section = {"rows": [{"world_size": 1, "history": [{"train_seconds": 1.0, "test_accuracy": 0.9}]}],
               "settings": {"target": 0.9}}
    assert plots.write_all({"mnist": section}, str(tmp_path)) == []
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "plots skipped" in lines[0] and "pip install 'distgrad[bench]'" in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_a_summary_without_matplotlib_links_no_plot(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps({"allreduce": {"rows": []}, "ddp": {"rows": []}}))
    summary.write([str(folder)], str(tmp_path / "out"))
    assert "summary.png" not in (tmp_path / "out" / "summary.md").read_text()
    assert "plots skipped" in capsys.readouterr().err


def test_an_all_reduce_on_one_rank_has_no_bandwidth():
    assert metrics.allreduce_bandwidths(2**20, 1e-3, 1) == (None, None)
    algbw, busbw = metrics.allreduce_bandwidths(2**20, 1e-3, 4)
    assert algbw == pytest.approx(2**20 / 1e-3 / 1e9) and busbw == pytest.approx(algbw * 1.5)
    row = {"backend": "mpi", "device": "cpu", "dtype": "float32", "world_size": 1, "bytes": 4096, "calls": 3,
           "correct": True, "time_us": 2.0, "algbw_GBps": None, "busbw_GBps": None, "mpi4py_time_us": 1.0,
           "mpi4py_algbw_GBps": None, "mpi4py_busbw_GBps": None}
    w6 = allreduce.w6_row(row)
    assert w6["distgrad_algbw_GBps"] is None and w6["mpi4py_busbw_GBps"] is None and w6["busbw_ratio"] is None
    table_row = [line for line in report.RENDERERS["allreduce"]({"rows": [row]}).splitlines()
                 if line.startswith("| 4 KiB")][0]
    assert table_row.split(" | ")[3:5] == ["-", "-"]  # algbw and busbw


def test_the_bench_extra_installs_matplotlib_and_mpi():
    tomllib = pytest.importorskip("tomllib")
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        extras = tomllib.load(f)["project"]["optional-dependencies"]
    assert {"matplotlib", "distgrad[mpi]"} <= set(extras["bench"]) and "matplotlib" in extras["test"]


@pytest.mark.parametrize("script", sorted(f for f in os.listdir(os.path.join(ROOT, "benchmarks")) if f.endswith(".py")))
def test_every_benchmark_script_starts_and_explains_itself(script):
    done = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", script), "--help"], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0 and "usage" in done.stdout.lower(), done.stderr[-3000:]


def test_w8_prints_float32_and_mixed_step_times_of_both_workloads():
    line = one_json_line("amp_step.py", "--device", "cpu", "--preset", "tiny", "--w2-steps", "1", "--w7-steps", "1",
                         "--rounds", "1", "--warmup", "0")
    assert line["workload"] == "W8" and line["amp"] == "bf16" and line["w7_preset"] == "tiny"
    for section in ("w2", "w7"):
        for run in (line[section]["distgrad"], line[section]["torch"]):
            assert run["float32"]["ms_per_step"] > 0 and run["mixed"]["ms_per_step"] > 0
            assert run["speedup_float32_over_mixed"] == pytest.approx(
                run["float32"]["ms_per_step"] / run["mixed"]["ms_per_step"], rel=1e-2)
        assert line[section]["mixed_ratio_distgrad_over_torch"] > 0
    assert abs(line["w2"]["distgrad"]["mixed"]["last_loss"] - line["w2"]["distgrad"]["float32"]["last_loss"]) < 0.05
