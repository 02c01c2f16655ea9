"""distgrad-bench end to end on tiny sizes: every subcommand, on 1 and 2 ranks, and the results folder."""
import json
import os
import pathlib

import pytest

from distgrad.bench import cli, scale, zero

pytest.importorskip("mpi4py")
DATA = os.environ.get("DISTGRAD_DATA")
HAVE_MNIST = bool(DATA) and (pathlib.Path(DATA) / "mnist").is_dir()
TINY = {
    "allreduce": ["--max-bytes", "1K", "--step-factor", "4", "--iters", "3", "--min-iters", "2", "--warmup-iters", "1"],
    "ddp": ["--models", "mlp,synthetic", "--params", "20k", "--batch", "mlp=8,synthetic=8", "--steps", "2",
            "--warmup-steps", "1", "--bucket-caps", "0.005", "--repeats", "1"],
    "autograd": ["--w3-reps", "2", "--step-reps", "3", "--w2-reps", "2"],
    "mnist": ["--target", "0.5", "--eval-every", "10", "--max-epochs", "1"],
    "zero": ["--zero-width", "64", "--zero-layers", "4", "--zero-batch", "8", "--zero-steps", "2",
             "--zero-warmup", "1"],
    "model": ["--gpus", "8,64", "--networks", "ib100,eth25"],
}


def run(tmp_path, command: str, *extra) -> dict:
    out = tmp_path / command
    status = cli.main([command, "--quiet", "--ranks", "1,2", "--out", str(out), *extra])
    assert status == 0
    return json.loads((out / "results.json").read_text())


@pytest.fixture(scope="module")
def everything(tmp_path_factory):
    """One tiny `distgrad-bench all` run shared by the tests below (mnist only where the data is)."""
    out = tmp_path_factory.mktemp("bench") / "all"
    options = [option for name in cli.ORDER for option in TINY[name]]
    skip = [] if HAVE_MNIST else ["--skip", "mnist"]
    assert cli.main(["all", "--quiet", "--ranks", "1,2", "--out", str(out), *options, *skip]) == 0
    return out, json.loads((out / "results.json").read_text())


def test_all_writes_json_markdown_and_small_plots(everything):
    out, results = everything
    assert {"machine", "settings", "allreduce", "ddp", "autograd", "zero", "model"} <= set(results)
    machine = results["machine"]
    assert machine["cpu"] and machine["cpu_count"] >= 1 and machine["mpi"] and machine["python"]
    assert "distgrad_commit" in machine and "gpus" in machine
    expected_plots = {"allreduce.png", "ddp_scaling.png", "ddp_breakdown.png", "zero.png", "model_efficiency.png"}
    assert expected_plots <= set(results["plots"])
    for plot in results["plots"]:
        assert 0 < (out / plot).stat().st_size < 200_000
    markdown = (out / "results.md").read_text()
    for heading in ("## All-reduce", "## Data-parallel training steps", "## Framework overhead", "## ZeRO",
                    "## Model of scale"):
        assert heading in markdown
    assert "**NO**" not in markdown  # no all-reduce came back wrong


def test_allreduce_rows_cover_every_size_and_world_and_are_correct(everything):
    rows = everything[1]["allreduce"]["rows"]
    sizes = (4, 16, 64, 256, 1024)
    assert sorted({(r["world_size"], r["bytes"]) for r in rows}) == [(w, b) for w in (1, 2) for b in sizes]
    assert all(r["correct"] and r["max_error"] == 0 for r in rows)
    for r in rows:
        assert r["mpi4py_time_us"] > 0
        if r["world_size"] == 1:  # nothing crosses a link: no bandwidth to speak of
            assert r["algbw_GBps"] is None and r["busbw_GBps"] is None and r["mpi4py_busbw_GBps"] is None
            continue
        assert r["algbw_GBps"] == pytest.approx(r["bytes"] / r["time_us"] / 1e3)
        assert r["busbw_GBps"] == pytest.approx(r["algbw_GBps"] * (r["world_size"] - 1))  # 2(n-1)/n for n <= 2


def test_ddp_rows_split_each_step_and_scale_against_one_rank(everything):
    from distgrad.bench import ddp
    rows = everything[1]["ddp"]["rows"]
    for r in rows:
        assert r["forward_ms"] > 0 and r["backward_compute_ms"] > 0 and r["optimizer_ms"] > 0
        assert r["step_ms"] >= max(r["forward_ms"], r["backward_ms"])
        assert (r["comm_wait_ms"] == 0) == (r["world_size"] == 1)
    weak = {(r["model"], r["world_size"]): r for r in ddp.scaling_rows(rows, "weak")}
    assert set(weak) == {(m, w) for m in ("mlp", "synthetic") for w in (1, 2)}
    assert weak[("mlp", 1)]["efficiency"] == pytest.approx(1.0)
    assert weak[("mlp", 2)]["efficiency"] == pytest.approx(weak[("mlp", 2)]["samples_per_s"] /
                                                           (2 * weak[("mlp", 1)]["samples_per_s"]))
    strong = {r["world_size"]: r for r in ddp.scaling_rows(rows, "strong") if r["model"] == "mlp"}
    assert strong[2]["per_rank_batch"] == 4 and strong[1]["per_rank_batch"] == 8
    caps = {r["bucket_cap_mb"]: r for r in ddp.bucket_rows(rows)}
    assert set(caps) == {0.005, 25.0} and len(caps[0.005]["buckets"]) > len(caps[25.0]["buckets"])
    assert all(sum(r["buckets"]) == r["grad_bytes"] for r in caps.values())


def test_autograd_compares_distgrad_with_bare_arrays(everything):
    section = everything[1]["autograd"]
    assert section["w3_distgrad_us_per_op"] > 0 and section["step_bare_array_ms"] > 0
    assert section["step_overhead_ms"] == pytest.approx(section["step_distgrad_ms"] - section["step_bare_array_ms"])
    assert section["w2_step_distgrad_ms"] > 0


def test_model_validates_every_multi_rank_ddp_point_and_predicts_each_network(everything):
    results = everything[1]
    section = results["model"]
    assert set(section["fits"]) == {"2"}
    assert len(section["allreduce_validation"]) == 5
    measured = [r for r in results["ddp"]["rows"] if r["world_size"] == 2]
    assert len(section["ddp_validation"]) == len(measured)
    networks = {"ib100", "eth25", "measured here"}
    assert {r["network"] for r in section["predictions"]} == networks
    # workloads x networks x configurations x GPUs
    assert len(section["predictions"]) == 2 * len(networks) * len(scale.CONFIGURATIONS) * 2
    assert {a["name"] for a in section["anchors"]} == {"Horovod", "ChainerMN"}


def test_zero_shards_the_optimizer_state_over_two_ranks(everything):
    section = everything[1]["zero"]
    configs, _ = zero.runnable_configs(zero.CONFIGS)
    rows = {(r["world_size"], r["config"]): r for r in section["rows"]}
    assert set(rows) == {(world, config) for world in (1, 2) for config in configs}
    param_bytes = 4 * section["settings"]["parameters"]  # float32
    for (world, config), r in rows.items():
        assert r["param_bytes"] == param_bytes and r["grad_bytes"] > 0 and r["step_ms"] > 0
        assert (r["bucket_bytes"] is None) == config.startswith("torch")
        sharded = world == 2 and config not in ("ddp", "torch_ddp")
        # Adam keeps two moments per parameter; ZeRO splits them by size, to within a bias vector
        assert r["optimizer_state_bytes"] == pytest.approx(2 * param_bytes / (2 if sharded else 1), rel=0.03)
        assert r["state_vs_plain_n1"] == pytest.approx(0.5 if sharded else 1.0, abs=0.015)
        plain = rows[(world, zero.plain_config(config))]
        assert r["step_vs_plain_ddp"] == pytest.approx(r["step_ms"] / plain["step_ms"])
    assert rows[(2, "zero2")]["grad_bytes"] < rows[(2, "zero1")]["grad_bytes"]  # only its shard's gradients


@pytest.mark.skipif(not HAVE_MNIST, reason="set DISTGRAD_DATA to a folder holding mnist/")
def test_mnist_reaches_the_target_on_one_and_two_ranks(everything):
    rows = everything[1]["mnist"]["rows"]
    assert [r["world_size"] for r in rows] == [1, 2]
    assert all(r["reached"] and r["test_accuracy"] >= 0.5 for r in rows)
    assert (everything[0] / "mnist.png").exists()


@pytest.mark.parametrize("command", ["allreduce", "autograd", "model"])
def test_each_subcommand_runs_on_its_own(tmp_path, command):
    extra = ["--ranks", "2"] if command == "allreduce" else []
    results = run(tmp_path, command, *TINY[command], *extra)
    assert command in results and not {"ddp", "mnist"} & set(results)


def test_model_from_an_earlier_folder_with_a_workload_of_your_own(tmp_path, everything):
    results = run(tmp_path, "model", "--from", str(everything[0]), "--params", "25M", "--compute-ms", "100",
                  "--gpus", "8,1024", "--networks", "ib400")
    section = results["model"]
    assert section["ddp_validation"] and any(w.startswith("given: 25.0M params") for w in section["workloads"])
    given = [r for r in section["predictions"] if r["workload"].startswith("given") and r["network"] == "ib400"]
    assert given[0]["compute_ms"] == pytest.approx(100.0)


def test_summary_tabulates_folders_of_a_sweep(tmp_path, everything):
    text = cli.main(["summary", str(everything[0]), str(everything[0]), "--out", str(tmp_path)])
    assert text == 0
    summary = (tmp_path / "summary.md").read_text()
    assert summary.count(str(everything[0])) == 2 and "mlp weak efficiency" in summary
    assert (tmp_path / "summary.png").exists()


@pytest.mark.parametrize("argv, message", [(["ddp", "--ranks", "0"], "positive integers"),
                                           (["ddp", "--models", "resnet"], "unknown resnet"),
                                           (["allreduce", "--max-bytes", "12Q"], "12Q")])
def test_bad_arguments_are_refused_with_a_reason(argv, message, capsys):
    with pytest.raises(SystemExit):
        cli.parse_args(argv)
    assert message in capsys.readouterr().err
