"""The cuDNN convolution path without a GPU: layouts, plan keys, the flags' effect on the plans asked for,
plan caching, benchmark's choice, and the fallback notice (a recording stand-in for cudnn-frontend's
graph API, as version 1.23 spells it, plays cuDNN)."""
import types
import warnings

import numpy as np
import pytest

from distgrad import backend
from distgrad.kernels import cudnn_conv
from distgrad.ops.conv import ConvGeometry

GEO = ConvGeometry((3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1)


def test_layouts_are_recognised_ignoring_the_strides_of_size_one_dims():
    x = np.zeros((2, 3, 4, 5), np.float32)
    assert cudnn_conv.layout_of(x.shape, x.strides, 4) == "nchw"
    nhwc = np.zeros((2, 4, 5, 3), np.float32).transpose(0, 3, 1, 2)
    assert cudnn_conv.layout_of(nhwc.shape, nhwc.strides, 4) == "nhwc"
    single = np.zeros((2, 1, 4, 5), np.float32)  # one channel: both orders
    assert cudnn_conv.layout_of(single.shape, single.strides, 4) in ("nchw", "nhwc")
    batch_last = np.zeros((3, 4, 5, 2), np.float32).transpose(3, 0, 1, 2)  # distgrad's im2col layout
    assert cudnn_conv.layout_of(batch_last.shape, batch_last.strides, 4) is None
    assert cudnn_conv.element_strides((2, 3, 4, 5), "nhwc") == [s // 4 for s in nhwc.strides]


def test_plan_keys_separate_what_changes_the_plan():
    key = cudnn_conv.plan_key("fprop", np.float32, (2, 3, 8, 8), (4, 3, 3, 3), (2, 4, 8, 8), "nhwc", GEO, (False,) * 3)
    assert key != cudnn_conv.plan_key("fprop", np.float16, (2, 3, 8, 8), (4, 3, 3, 3), (2, 4, 8, 8), "nhwc", GEO,
                                      (False,) * 3)
    assert key != cudnn_conv.plan_key("fprop", np.float32, (2, 3, 8, 8), (4, 3, 3, 3), (2, 4, 8, 8), "nhwc", GEO,
                                      (True, False, False))
    assert key == cudnn_conv.plan_key("fprop", "float32", [2, 3, 8, 8], [4, 3, 3, 3], [2, 4, 8, 8], "nhwc", GEO,
                                      (False, False, False))


def test_host_arrays_never_take_the_cudnn_path():
    x = np.zeros((1, 1, 4, 4), np.float32)
    assert not cudnn_conv.applies(x, x, 1)


def test_the_fallback_notice_says_why_once(monkeypatch):
    monkeypatch.setattr(cudnn_conv, "_noticed", set())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            cudnn_conv.notice("groups > 1")
    assert len(caught) == 1 and "im2col + cuBLAS: groups > 1" in str(caught[0].message)


# --- a recording cudnn-frontend -------------------------------------------------------------------------
class _Enum:
    def __init__(self, *names):
        for name in names:
            setattr(self, name, name)


class _Tensor:
    """Records what is set on it: ``set_output/set_dim/set_stride/set_data_type(value)``, each chainable."""

    def __init__(self, graph, **attributes):
        self.graph, self.attributes = graph, attributes

    def __getattr__(self, name):
        if not name.startswith("set_"):
            raise AttributeError(name)

        def setter(value):
            self.attributes[name[4:]] = value
            return self
        return setter


class _Graph:
    def __init__(self, module, **options):
        self.module, self.options, self.calls, self.tensors = module, options, [], {}
        module.graphs.append(self)

    def tensor(self, name, dim, stride, data_type):
        self.tensors[name] = _Tensor(self, name=name, dim=dim, stride=stride, data_type=data_type)
        return self.tensors[name]

    def _op(self, name, **kwargs):
        self.calls.append((name, kwargs))
        return _Tensor(self, op=name)

    def conv_fprop(self, **kwargs):
        return self._op("conv_fprop", **kwargs)

    def conv_dgrad(self, **kwargs):
        return self._op("conv_dgrad", **kwargs)

    def conv_wgrad(self, **kwargs):
        return self._op("conv_wgrad", **kwargs)

    def __getattr__(self, name):  # validate, build_operation_graph, check_support, ...: recorded
        if name in ("validate", "build_operation_graph", "create_execution_plans", "deselect_numeric_notes",
                    "check_support", "build_plans"):
            return lambda *args, **kwargs: self.calls.append((name, args))
        raise AttributeError(name)

    def get_workspace_size(self):
        return 64

    def get_execution_plan_count(self):
        return 3

    def get_workspace_size_plan_at_index(self, index):
        return 16 * index

    def execute(self, pointers, workspace, handle):
        self.calls.append(("execute", None))

    def execute_plan_at_index(self, pointers, workspace, index, handle):
        self.module.clock += [5.0, 1.0, 3.0][index]  # plan 1 is the fastest
        self.calls.append(("execute_plan_at_index", index))


def _recording_frontend():
    module = types.SimpleNamespace(graphs=[], clock=0.0)
    module.data_type = _Enum("FLOAT", "HALF", "BFLOAT16", "DOUBLE")
    module.heur_mode = _Enum("A", "FALLBACK")
    module.numerical_note = _Enum("NONDETERMINISTIC", "TENSOR_CORE", "DOWN_CONVERT_INPUTS")
    module.build_plan_policy = _Enum("HEURISTICS_CHOICE", "ALL")
    module.pygraph = lambda **options: _Graph(module, **options)
    module.create_handle = lambda: "handle"
    module.set_stream = lambda handle, stream: None
    return module


class _Pointer:
    ptr = 0


class _FakeCupy:
    """What cudnn_conv asks of CuPy: workspaces with a pointer, the stream, events timed by the fake clock."""

    def __init__(self, module):
        self.module = module
        self.cuda = types.SimpleNamespace(
            runtime=types.SimpleNamespace(getDevice=lambda: 0),
            get_current_stream=lambda: types.SimpleNamespace(ptr=0),
            Event=lambda: types.SimpleNamespace(record=lambda: self._mark(), synchronize=lambda: None),
            get_elapsed_time=lambda start, stop: self.marks[-1] - self.marks[-2])
        self.marks = []

    def _mark(self):
        self.marks.append(self.module.clock)

    def empty(self, size, dtype):
        return types.SimpleNamespace(data=_Pointer())


@pytest.fixture
def frontend(monkeypatch):
    module = _recording_frontend()
    monkeypatch.setattr(cudnn_conv, "_plans", {})
    monkeypatch.setattr(cudnn_conv, "_frontend", {"module": module, "error": None, "handles": {}})
    monkeypatch.setattr(backend, "cupy_module", lambda: _FakeCupy(module))
    return module


class _DeviceArray(np.ndarray):
    """A host array standing for a device array: it has CuPy's ``.data.ptr``."""

    @property
    def data(self):
        return _Pointer()


def _arrays(layout="nhwc"):
    def empty(shape):
        return cudnn_conv._empty(np, shape, np.float32, layout).view(_DeviceArray)
    return {"x": empty((2, 3, 8, 8)), "w": empty((4, 3, 3, 3)), "y": empty((2, 4, 8, 8))}


def _settings(monkeypatch, benchmark=False, deterministic=False, allow_tf32=True):
    monkeypatch.setattr(cudnn_conv, "flags", lambda: (True, benchmark, deterministic, allow_tf32))


def test_a_plan_is_built_once_per_problem_with_channels_last_strides(frontend, monkeypatch):
    _settings(monkeypatch)
    for _ in range(3):
        assert cudnn_conv._run("fprop", _arrays(), GEO, "nhwc")
    (graph,) = frontend.graphs
    assert graph.tensors["x"].attributes["stride"] == cudnn_conv.element_strides((2, 3, 8, 8), "nhwc")
    names = [name for name, _ in graph.calls]
    assert names == ["conv_fprop", "validate", "build_operation_graph", "create_execution_plans", "check_support",
                     "build_plans", "execute", "execute", "execute"]
    options = graph.calls[0][1]
    assert options["pre_padding"] == [1, 1] and options["post_padding"] == [1, 1]


@pytest.mark.parametrize("deterministic, allow_tf32, excluded", [
    (True, True, ["NONDETERMINISTIC"]), (False, False, ["TENSOR_CORE", "DOWN_CONVERT_INPUTS"]), (False, True, None)])
def test_the_flags_choose_which_engines_cudnn_may_use(frontend, monkeypatch, deterministic, allow_tf32, excluded):
    _settings(monkeypatch, deterministic=deterministic, allow_tf32=allow_tf32)
    cudnn_conv._run("wgrad", _arrays(), GEO, "nhwc")
    notes = [args[0] for name, args in frontend.graphs[0].calls if name == "deselect_numeric_notes"]
    assert notes == ([excluded] if excluded else [])


def test_benchmark_times_every_plan_and_keeps_the_fastest(frontend, monkeypatch):
    _settings(monkeypatch, benchmark=True)
    cudnn_conv._run("dgrad", _arrays(), GEO, "nhwc")
    plan = next(iter(cudnn_conv._plans.values()))
    assert plan.index == 1 and plan.workspace == 16


def test_a_problem_cudnn_refuses_falls_back_once_with_a_notice(frontend, monkeypatch):
    _settings(monkeypatch)
    monkeypatch.setattr(cudnn_conv, "_noticed", set())

    def refuse(*args):
        raise RuntimeError("no engine")
    monkeypatch.setattr(_Graph, "check_support", refuse, raising=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert not cudnn_conv._run("fprop", _arrays(), GEO, "nhwc")
        assert not cudnn_conv._run("fprop", _arrays(), GEO, "nhwc")
    assert len(caught) == 1 and "cuDNN has no plan for fprop" in str(caught[0].message)
    assert len(frontend.graphs) == 1  # the refusal is cached too


def test_a_new_plan_is_not_built_inside_a_graph_capture(frontend, monkeypatch):
    from distgrad.cuda_graphs import simulated_capture
    _settings(monkeypatch)
    with simulated_capture():
        with pytest.raises(RuntimeError, match="run the step once before capturing"):
            cudnn_conv._run("fprop", _arrays(), GEO, "nhwc")


def test_outputs_cropped_for_a_transposed_convolution_stay_with_im2col():
    assert not cudnn_conv._consistent(GEO, (2, 3, 8, 8), (2, 4, 7, 7))
    assert cudnn_conv._consistent(GEO, (2, 3, 8, 8), (2, 4, 8, 8))
