"""The recording under ``dg.onnx.export`` (no onnx package needed): the tracing hook of ``Function.apply`` and
of the comparison ops, the trace of a model with module paths, what each op reads, and the dims that follow
the dynamic axes."""
import threading

import numpy as np
import pytest

import distgrad as dg
from distgrad import nn
from distgrad.autograd import tracing
from distgrad.onnx.dims import UNKNOWN, Dim, dim_name, solve
from distgrad.onnx.trace import record
from distgrad.onnx.values import Values, parameter_names
from distgrad.ops.arithmetic import Add, MulScalar
from distgrad.ops.normalization import Normalize


def _names(ops):
    return [op.op.__name__ for op in ops]


def test_the_hook_sees_each_op_the_caller_makes_once():
    seen = []

    def hook(op, args, kwargs):
        seen.append(op)
        return tracing.run(op, args, kwargs)

    x = dg.randn(2, 4, 3)
    with tracing.tracing(hook):
        out = dg.nn.functional.group_norm(x * 2 + 1, 2)  # Normalize's forward runs ops of its own
        mask = out > 0
    assert [getattr(op, "__name__", op) for op in seen] == ["MulScalar", "AddScalar", "View", "Normalize", "View",
                                                             "gt"]
    assert Normalize in seen and MulScalar in seen
    np.testing.assert_array_equal(mask.array, out.array > 0)
    assert tracing.state.hook is None


def test_the_hook_is_per_thread_and_restored_after_an_error():
    seen, other = [], []

    def hook(op, args, kwargs):
        seen.append(op)
        return tracing.run(op, args, kwargs)

    def elsewhere():
        other.append(dg.ones(2) + dg.ones(2))

    with pytest.raises(ZeroDivisionError):
        with tracing.tracing(hook):
            thread = threading.Thread(target=elsewhere)
            thread.start()
            thread.join()
            dg.ones(2) + dg.ones(2)
            1 / 0
    assert seen == [Add] and other[0].tolist() == [2.0, 2.0]
    assert tracing.state.hook is None


def test_a_trace_notes_ops_modules_inputs_and_outputs():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU())
    x = dg.randn(2, 3)
    trace = record(model, (x,), {})
    assert _names(trace.ops) == ["Linear", "Relu"]
    assert [op.module for op in trace.ops] == ["0 (Linear)", "1 (ReLU)"]
    assert trace.inputs[0] is not x and trace.inputs[0].requires_grad
    np.testing.assert_array_equal(trace.outputs[0].array, model(x).array)
    assert not any(m._forward_pre_hooks or m._forward_hooks for m in model.modules())


def test_values_name_inputs_parameters_op_outputs_and_constants():
    model = nn.Linear(3, 3)

    def forward(x):
        y = model(x)
        y += x  # recorded in place: y now names the Add's output
        return y * dg.tensor([1.0, 2.0, 3.0])

    trace = record(forward, (dg.randn(2, 3),), {})
    params = parameter_names(model)
    values = Values(trace, params, dict(model.named_parameters()))
    assert _names(trace.ops) == ["Linear", "Add", "Mul"]
    assert values.op_keys[0] == [("input", 0), ("param", "weight"), ("param", "bias")]
    assert values.op_keys[1] == [("op", 0, 0), ("input", 0)]
    assert values.op_keys[2] == [("op", 1, 0), ("const", 2, 1)]
    assert values.output_keys() == [("op", 2, 0)]


@pytest.mark.parametrize("first, second, expected", [
    (5, 5, 5), (3, 4, Dim(1, ("batch",))), (12, 16, Dim(4, ("batch",))), (15, 24, Dim(1, ("batch", "time"))),
    (7, 9, UNKNOWN),
])
def test_sizes_that_follow_the_dynamic_axes(first, second, expected):
    assert solve(first, second, {"batch": (3, 4), "time": (5, 6)}) == expected


def test_dim_names():
    assert dim_name(Dim(1, ("batch",))) == "batch"
    assert dim_name(Dim(2, ("batch", "time"))) == "2*batch*time"
    assert dim_name(UNKNOWN) is None
