"""The per-rank timeline (``DISTGRAD_TIMELINE`` / ``dg.profiler``): a real 2-rank DDP run's files checked
against the trace-event format, what they contain, the merge, and the profiler's effect on training (none)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import distgrad as dg
import distgrad.nn.functional as F
from distgrad import envvars, nn
from distgrad.nn import module as nn_module
from distgrad.optim import optimizer as optim_base
from distgrad.profiler import recorder
from distgrad.profiler.trace import merge_folder, validate_trace

STEPS = 3


@pytest.fixture(scope="module")
def timeline_dir(tmp_path_factory):
    pytest.importorskip("mpi4py")
    from distributed_scripts import runner
    folder = str(tmp_path_factory.mktemp("timeline"))
    finished = runner.run_ranks(2, "../ddp_scripts/timeline_train.py", "--steps", str(STEPS),
                                env={envvars.TIMELINE: folder}, limit_s=120)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    return folder


@pytest.fixture(scope="module")
def traces(timeline_dir):
    return {r: json.load(open(os.path.join(timeline_dir, f"timeline-rank{r}.json"))) for r in (0, 1)}


def _timed(trace, category=None):
    return [e for e in trace["traceEvents"] if e["ph"] == "X" and (category is None or e["cat"] == category)]


def test_each_rank_writes_a_trace_in_the_trace_event_format(traces):
    for rank, trace in traces.items():
        assert validate_trace(trace) == []
        for event in trace["traceEvents"]:
            assert {"name", "ph", "pid", "tid"} <= set(event) and event["pid"] == rank
            if event["ph"] == "X":
                assert isinstance(event["ts"], float) and event["dur"] >= 0
            else:
                assert event["ph"] == "M"
        names = {e["args"]["name"] for e in trace["traceEvents"] if e["name"] == "thread_name"}
        assert "main" in names and any(name.startswith("DDP bucket") for name in names)


def test_forward_and_backward_of_every_module_each_step(traces):
    for trace in traces.values():
        for category in ("forward", "backward"):
            names = [e["name"] for e in _timed(trace, category)]
            for layer in ("module.0: Linear", "module.2: Linear", "module.6: Linear"):
                assert names.count(layer) == STEPS, (category, layer, names)
            assert names.count("DistributedDataParallel") == STEPS


def test_backward_runs_from_the_last_layer_to_the_first_inside_the_models(traces):
    for trace in traces.values():
        backward = _timed(trace, "backward")
        layers = {e["name"] for e in backward if e["name"].endswith("Linear")}
        for step in range(STEPS):
            spans = {name: [e for e in backward if e["name"] == name][step] for name in layers}
            starts = [spans[f"module.{i}: Linear"]["ts"] for i in (6, 4, 2, 0)]
            assert starts == sorted(starts)
            whole = [e for e in backward if e["name"] == "DistributedDataParallel"][step]
            for span in spans.values():
                assert whole["ts"] <= span["ts"] and span["ts"] + span["dur"] <= whole["ts"] + whole["dur"] + 1e-3


def test_each_bucket_all_reduce_on_its_track_overlapping_backward(traces):
    for trace in traces.values():
        reduces = _timed(trace, "all_reduce")
        tracks = {e["tid"] for e in reduces}
        assert len(reduces) == STEPS * len(tracks) and len(tracks) >= 2
        assert all(e["args"]["bytes"] > 0 for e in reduces)
        first_layer = [e for e in _timed(trace, "backward") if e["name"] == "module.0: Linear"]
        for step, layer in enumerate(first_layer):
            step_reduces = sorted(reduces, key=lambda e: e["ts"])[step * len(tracks):(step + 1) * len(tracks)]
            launched = min(e["ts"] for e in step_reduces)
            assert launched < layer["ts"] + layer["dur"]  # bucket 0 starts while backward still runs


def test_optimizer_steps_data_waits_and_the_wait_for_buckets(traces):
    for trace in traces.values():
        assert [e["name"] for e in _timed(trace, "optimizer")] == ["SGD.step"] * STEPS
        assert len(_timed(trace, "data")) >= STEPS
        assert len(_timed(trace, "comm_wait")) == STEPS


def test_merging_gives_one_process_per_rank_from_time_zero(timeline_dir, tmp_path):
    out = tmp_path / "merged.json"
    done = subprocess.run([sys.executable, "-m", "distgrad.profiler.cli", "merge", timeline_dir, "-o", str(out)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    merged = json.loads(out.read_text())
    assert validate_trace(merged) == []
    assert merged == merge_folder(timeline_dir)
    processes = {e["pid"]: e["args"]["name"] for e in merged["traceEvents"] if e["name"] == "process_name"}
    assert processes == {0: "rank 0", 1: "rank 1"}
    assert min(e["ts"] for e in merged["traceEvents"] if e["ph"] == "X") == 0


def test_a_step_draws_as_a_picture(timeline_dir, tmp_path):
    pytest.importorskip("matplotlib")
    from distgrad.profiler.plot import plot_step
    out = plot_step(merge_folder(timeline_dir), str(tmp_path / "step.png"))
    assert open(out, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


# --- one process ----------------------------------------------------------------------------------
def _model():
    dg.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Sequential(nn.Linear(8, 8), nn.ReLU()), nn.Linear(8, 3))


def _step(model, x, y):
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    return loss.item(), [p.grad.array.copy() for p in model.parameters()]


def test_profiling_changes_no_value_or_gradient(tmp_path):
    x, y = dg.randn(5, 6, requires_grad=True), dg.tensor([0, 1, 2, 1, 0])
    plain = _step(_model(), x, y)
    x.grad = None
    with dg.profiler.profile(str(tmp_path), rank=0) as p:
        profiled = _step(_model(), x, y)
    assert plain[0] == profiled[0]
    assert all(np.array_equal(a, b) for a, b in zip(plain[1], profiled[1]))
    trace = json.load(open(p.path))
    assert validate_trace(trace) == []
    backward = [e["name"] for e in _timed(trace, "backward")]
    assert backward[0] == "Sequential" and backward.count("0: Linear") == 1  # the input needs a gradient too


def test_stopping_removes_every_hook():
    with dg.profiler.profile("unused-folder-never-written", rank=0):
        assert nn_module._global_forward_hooks and optim_base._global_step_pre_hooks
        recorder.stop()  # drop the recorder so that nothing is written
    assert recorder.ACTIVE is None
    assert not (nn_module._global_forward_pre_hooks or nn_module._global_forward_hooks)
    assert not (optim_base._global_step_pre_hooks or optim_base._global_step_post_hooks)


def test_in_place_ops_on_module_outputs_work_and_are_still_checked(tmp_path):
    x = dg.randn(3, 4, requires_grad=True)
    with dg.profiler.profile(str(tmp_path), rank=0):
        model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(inplace=True))
        out = model(x)
        out.mul_(2)
        out.sum().backward()
    plain = nn.Sequential(nn.Linear(4, 4), nn.ReLU(inplace=True))
    plain.load_state_dict(model.state_dict())
    x2 = dg.tensor(x.array, requires_grad=True)
    (plain(x2) * 2).sum().backward()
    assert np.allclose(x.grad.array, x2.grad.array)
    x = dg.randn(4, requires_grad=True)
    x = dg.randn(4, requires_grad=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out = nn.Sigmoid()(x)
        out.mul_(2)
        out.sum().backward()
    with dg.profiler.profile(str(tmp_path), rank=0):
        out = nn.Sigmoid()(x)
        out.mul_(2)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            out.sum().backward()


def test_record_function_marks_a_range_of_ones_own(tmp_path):
    with dg.profiler.record_function("outside"):
        pass  # no timeline: nothing happens
    with dg.profiler.profile(str(tmp_path), rank=3) as p:
        with dg.profiler.record_function("my range"):
            dg.ones(3).sum()
    events = _timed(json.load(open(p.path)), "user")
    assert [e["name"] for e in events] == ["my range"] and p.path.endswith("timeline-rank3.json")


def test_validation_names_what_breaks_the_format():
    assert validate_trace({}) == ["no 'traceEvents' list"]
    broken = {"traceEvents": [{"name": "a", "ph": "B", "pid": 0, "tid": 0, "ts": 1.0},
                              {"name": "b", "ph": "X", "pid": 0, "tid": 0, "ts": 2.0},
                              {"name": "c", "ph": "E", "pid": 0, "tid": 1, "ts": 3.0},
                              {"ph": "X", "pid": 0, "tid": 0, "ts": 2.0, "dur": 1}]}
    problems = validate_trace(broken)
    assert any("needs a 'dur'" in p for p in problems) and any("'E' without a 'B'" in p for p in problems)
    assert any("never ended" in p for p in problems) and any("lacks ['name']" in p for p in problems)
