"""distgrad.bench's one home for benchmarks: the workloads in distgrad and their PyTorch twins, the
clocks, the thread policy, and the W5 worker."""
import os

import numpy as np
import pytest

from distgrad.bench import frameworks, threads, throughput, timing, worker, workloads


@pytest.fixture(scope="module")
def both():
    pytest.importorskip("torch")
    return frameworks.load("distgrad"), frameworks.load("torch")


@pytest.mark.parametrize("name, kwargs", [("mlp", {}), ("cnn", {}), ("synthetic", {"params": 50_000}),
                                          ("synthetic", {"width": 32, "depth": 2})])
def test_each_workload_model_has_a_pytorch_twin_of_the_same_shapes(both, name, kwargs):
    ours, theirs = (workloads.build_model(name, fw=fw, **kwargs) for fw in both)
    assert [tuple(p.shape) for p in ours.parameters()] == [tuple(p.shape) for p in theirs.parameters()]
    x, y = workloads.synthetic_arrays(3, seed=0)
    assert tuple(ours(frameworks.load("distgrad").lib.tensor(x)).shape) == (3, 10)
    assert tuple(theirs(both[1].lib.tensor(x)).shape) == (3, 10)


def test_the_synthetic_model_takes_an_explicit_width_and_depth():
    model = workloads.build_model("synthetic", width=32, depth=2)
    assert workloads.parameter_count(model) == 785 * 32 + 2 * (32 * 32 + 32) + 33 * 10


def test_the_same_seed_gives_the_same_model_on_every_rank():
    first, second = (workloads.build_model("mlp", seed=3) for _ in range(2))
    for a, b in zip(first.parameters(), second.parameters()):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())


def test_a_training_step_lowers_the_loss_in_both_frameworks(both):
    for fw in both:
        model = workloads.build_model("synthetic", fw=fw, width=16, depth=1)
        optimizer = workloads.sgd(fw, model)
        x, y = workloads.synthetic_batch(8, seed=1, fw=fw)
        losses = [float(workloads.train_step(fw, model, optimizer, x, y).item()) for _ in range(5)]
        assert losses[-1] < losses[0]


def test_conv_calls_run_forward_and_backward_in_both_frameworks(both):
    for fw in both:
        calls = workloads.conv_calls(fw)
        assert list(calls) == ["conv1", "conv2", "max_pool", "conv_relu_pool_chain"]
        calls["max_pool"]()


def test_measure_both_runs_distgrad_first_and_skips_pytorch_on_request():
    seen = []
    assert frameworks.measure_both(lambda fw: seen.append(fw.name) or fw.name, skip_torch=True) == ("distgrad", None)
    assert seen == ["distgrad"]
    with pytest.raises(ValueError, match="unknown framework 'jax'"):
        frameworks.load("jax")


def test_the_clocks_warm_up_then_time_each_repeat_between_synchronisations():
    events = []
    times = timing.sample_seconds(lambda: events.append("run"), reps=3, warmup=2,
                                  synchronize=lambda: events.append("sync"))
    assert len(times) == 3 and all(t >= 0 for t in times)
    assert events[:2] == ["run", "run"] and events[2:] == ["sync", "run", "sync"] * 3
    calls = []
    per_call = timing.seconds_per_call(calls.append, calls=4, warmup=2, barrier=lambda: calls.append("barrier"))
    assert calls == [0, 1, "barrier", 0, 1, 2, 3, "barrier"] and per_call >= 0
    assert timing.median_seconds(lambda: None, reps=3) >= 0


def test_every_rank_gets_the_same_threads_from_the_environment(monkeypatch):
    assert threads.thread_env(2) == {"OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert threads.default_threads_per_rank(4) == 2 and threads.default_threads_per_rank(16) == 1
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "6")
    assert threads.default_threads_per_rank(4) == 6


@pytest.mark.parametrize("name", ["distgrad", "torch"])
def test_the_w5_worker_times_one_process_without_mpi(name):
    if name == "torch":
        pytest.importorskip("torch")
    result = throughput.worker({"framework": name, "world": 1, "steps": 2, "warmup": 1}, print)
    assert result["ms_per_step"] > 0


def test_a_process_that_never_started_mpi_reports_as_rank_zero(monkeypatch):
    monkeypatch.delitem(__import__("sys").modules, "mpi4py.MPI", raising=False)
    assert worker.is_rank_zero()
