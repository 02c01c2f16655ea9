"""Convolutions on the GPU through cuDNN's graph API, with NVIDIA's cudnn-frontend Python package
(``import cudnn``, the ``gpu`` extra): forward (``conv_fprop``), data gradient (``conv_dgrad``) and weight
gradient (``conv_wgrad``), the GPU paths of ``ops/conv.py``'s ``conv_forward``, ``conv_input_grad`` and
``conv_weight_grad``.

Each distinct problem (which of the three, dtype, shapes and strides, padding/stride/dilation, and the
flags below) is built once into a cuDNN graph with its execution plans and cached (``plan_key``); later
calls only bind pointers and execute on the current stream. The flags are ``dg.backends.cudnn``'s, read
at each call as PyTorch reads them:

- ``enabled``: False sends every convolution to im2col + cuBLAS.
- ``benchmark``: build every plan cuDNN offers for a new problem, time each once, keep the fastest.
- ``deterministic``: leave out engines cuDNN marks non-deterministic.
- ``allow_tf32`` (default True, as in PyTorch): float32 convolutions may use TF32 tensor cores; when
  False, engines noted as tensor-core or down-converting are left out for float32.

Layouts: activations go to cuDNN channels-last (NHWC memory seen as NCHW), or as they are when already
NCHW- or NHWC-packed; outputs come back NHWC-packed (as (N, C, H, W) views); filters follow the
activations' layout. Anything cuDNN does not take (groups > 1, a cudnn-frontend that is missing, a
problem with no supported engine) runs im2col + cuBLAS, and a one-line notice says why, once per reason.
"""
from __future__ import annotations

import importlib
import warnings

import numpy as np

from distgrad import backend
from distgrad.kernels import policy

CONV_DTYPES = ("float32", "float16", "bfloat16", "float64")
_plans: dict = {}
_noticed: set = set()
_frontend = {"module": None, "error": None, "handles": {}}


# --- what decides a plan ---------------------------------------------------------------------------------
def layout_of(shape: tuple, strides: tuple, itemsize: int) -> str | None:
    """'nchw' or 'nhwc' when a 4-D array is packed in that order (strides of size-1 dims do not matter), else None."""
    n, c, h, w = shape
    for name, order in (("nchw", (0, 1, 2, 3)), ("nhwc", (0, 2, 3, 1))):
        expected, step = {}, 1
        for dim in reversed(order):
            expected[dim] = step
            step *= shape[dim]
        if all(shape[d] == 1 or strides[d] == expected[d] * itemsize for d in range(4)):
            return name
    return None


def element_strides(shape: tuple, layout: str) -> list:
    """Strides in elements of a ``layout``-packed (N, C, H, W) array."""
    n, c, h, w = shape
    return [c * h * w, 1, w * c, c] if layout == "nhwc" else [c * h * w, h * w, w, 1]


def plan_key(kind: str, dtype, x_shape, w_shape, y_shape, layout: str, geo, flags: tuple) -> tuple:
    """What a cached cuDNN plan is for: ``kind`` ('fprop', 'dgrad', 'wgrad'), dtype, the three shapes, the
    layout, padding/stride/dilation and the flags (benchmark, deterministic, allow_tf32)."""
    return (kind, np.dtype(dtype).name, tuple(x_shape), tuple(w_shape), tuple(y_shape), layout,
            tuple(geo.padding), tuple(geo.stride), tuple(geo.dilation), tuple(flags))


def flags() -> tuple:
    """(enabled, benchmark, deterministic, allow_tf32) from ``dg.backends.cudnn``."""
    from distgrad.backends import cudnn as settings
    return bool(settings.enabled), bool(settings.benchmark), bool(settings.deterministic), bool(settings.allow_tf32)


def notice(reason: str) -> None:
    """One line, once per reason, saying why a convolution runs as im2col + cuBLAS."""
    if reason not in _noticed:
        _noticed.add(reason)
        warnings.warn(f"distgrad: GPU convolutions use im2col + cuBLAS: {reason}", RuntimeWarning, stacklevel=4)


def frontend():
    """The ``cudnn`` module of cudnn-frontend, or None (with the reason kept) when it does not import."""
    if _frontend["module"] is None and _frontend["error"] is None:
        try:
            _frontend["module"] = importlib.import_module("cudnn")
        except Exception as e:  # ImportError, or a cuDNN library it cannot load
            _frontend["error"] = f"cudnn-frontend is not usable ({type(e).__name__}: {e}); pip install 'distgrad[gpu]'"
    return _frontend["module"]


def applies(x, w, groups: int) -> bool:
    """A GPU convolution that cuDNN may take: flags on, the package there, groups 1, a cuDNN dtype."""
    if not backend.is_device_array(x) or not policy.enabled():
        return False
    if not flags()[0]:
        return False
    if groups != 1:
        notice("groups > 1 (distgrad builds cuDNN graphs for groups = 1 only)")
        return False
    if np.dtype(x.dtype).name not in CONV_DTYPES or x.dtype != w.dtype:
        return False
    if frontend() is None:
        notice(_frontend["error"])
        return False
    return True


# --- building and running a plan --------------------------------------------------------------------------
def _handle(cudnn, cp):
    device = cp.cuda.runtime.getDevice()
    if device not in _frontend["handles"]:
        _frontend["handles"][device] = cudnn.create_handle()
    handle = _frontend["handles"][device]
    cudnn.set_stream(handle=handle, stream=cp.cuda.get_current_stream().ptr)
    return handle


def _data_type(cudnn, dtype):
    return {"float32": cudnn.data_type.FLOAT, "float16": cudnn.data_type.HALF, "bfloat16": cudnn.data_type.BFLOAT16,
            "float64": cudnn.data_type.DOUBLE}[np.dtype(dtype).name]


def _as_layout(xp, a, layout: str):
    """``a`` (N, C, H, W) packed in ``layout`` (a view when it already is, else one copy)."""
    if layout_of(a.shape, a.strides, a.itemsize) == layout:
        return a
    if layout == "nhwc":
        return xp.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    return xp.ascontiguousarray(a)


def _empty(xp, shape, dtype, layout: str):
    if layout == "nhwc":
        n, c, h, w = shape
        return xp.empty((n, h, w, c), dtype).transpose(0, 3, 1, 2)
    return xp.empty(shape, dtype)


class _Plan:
    """One built cuDNN graph: its tensors (by role), the plan to run and the workspace it needs."""

    def __init__(self, graph, tensors: dict, index: int | None, workspace: int):
        self.graph, self.tensors, self.index, self.workspace = graph, tensors, index, workspace

    def run(self, cudnn, cp, handle, arrays: dict) -> None:
        workspace = cp.empty(max(1, self.workspace), np.uint8)
        pointers = {self.tensors[role]: arrays[role].data.ptr for role in self.tensors}
        if self.index is None:
            self.graph.execute(pointers, workspace.data.ptr, handle=handle)
        else:
            self.graph.execute_plan_at_index(pointers, workspace.data.ptr, self.index, handle=handle)


def _build(cudnn, cp, handle, kind: str, arrays: dict, geo, settings: tuple) -> _Plan:
    _, benchmark, deterministic, allow_tf32 = settings
    dtype = arrays["x"].dtype
    io = _data_type(cudnn, dtype)
    compute = cudnn.data_type.DOUBLE if io == cudnn.data_type.DOUBLE else cudnn.data_type.FLOAT
    graph = cudnn.pygraph(io_data_type=io, intermediate_data_type=compute, compute_data_type=compute, handle=handle)

    def tensor(role):
        a = arrays[role]
        return graph.tensor(name=role, dim=list(a.shape), stride=[s // a.itemsize for s in a.strides], data_type=io)
    top, bottom, left, right = geo.padding
    options = dict(pre_padding=[top, left], post_padding=[bottom, right], stride=list(geo.stride),
                   dilation=list(geo.dilation), compute_data_type=compute)
    if kind == "fprop":
        inputs = {"x": tensor("x"), "w": tensor("w")}
        out = graph.conv_fprop(image=inputs["x"], weight=inputs["w"], **options)
        role = "y"
    elif kind == "dgrad":
        inputs = {"y": tensor("y"), "w": tensor("w")}
        out = graph.conv_dgrad(loss=inputs["y"], filter=inputs["w"], **options)
        role = "x"
    else:
        inputs = {"x": tensor("x"), "y": tensor("y")}
        out = graph.conv_wgrad(image=inputs["x"], loss=inputs["y"], **options)
        role = "w"
    result = arrays[role]
    out.set_output(True).set_dim(list(result.shape)).set_stride([s // result.itemsize for s in result.strides])
    out.set_data_type(io)
    graph.validate()
    graph.build_operation_graph()
    graph.create_execution_plans([cudnn.heur_mode.A, cudnn.heur_mode.FALLBACK])
    excluded = [cudnn.numerical_note.NONDETERMINISTIC] if deterministic else []
    if io == cudnn.data_type.FLOAT and not allow_tf32:
        excluded += [cudnn.numerical_note.TENSOR_CORE, cudnn.numerical_note.DOWN_CONVERT_INPUTS]
    if excluded:
        graph.deselect_numeric_notes(excluded)
    graph.check_support()
    tensors = dict(inputs, **{role: out})
    if not benchmark:
        graph.build_plans(cudnn.build_plan_policy.HEURISTICS_CHOICE)
        return _Plan(graph, tensors, None, graph.get_workspace_size())
    graph.build_plans(cudnn.build_plan_policy.ALL)
    plan = _Plan(graph, tensors, 0, 0)
    best = None
    for index in range(graph.get_execution_plan_count()):
        plan.index, plan.workspace = index, graph.get_workspace_size_plan_at_index(index)
        try:
            seconds = _time_once(cp, lambda: plan.run(cudnn, cp, handle, arrays))
        except Exception:
            continue
        if best is None or seconds < best[0]:
            best = (seconds, index, plan.workspace)
    if best is None:
        raise RuntimeError("no cuDNN plan ran")
    plan.index, plan.workspace = best[1], best[2]
    return plan


def _time_once(cp, run) -> float:
    start, stop = cp.cuda.Event(), cp.cuda.Event()
    run()  # the first run may load code
    start.record()
    run()
    stop.record()
    stop.synchronize()
    return cp.cuda.get_elapsed_time(start, stop)


def _run(kind: str, arrays: dict, geo, layout: str) -> bool:
    """Runs ``kind`` on ``arrays`` (x, w, y; the output among them), building its plan on first use.
    False, after a notice, when cuDNN has no plan for it (the caller then runs im2col + cuBLAS)."""
    cudnn, cp = frontend(), backend.cupy_module()
    settings = flags()
    key = plan_key(kind, arrays["x"].dtype, arrays["x"].shape, arrays["w"].shape, arrays["y"].shape, layout, geo,
                   settings[1:])
    handle = _handle(cudnn, cp)
    plan = _plans.get(key)
    if plan is None:
        if backend.capturing():  # building times and synchronises: only outside a CUDA graph capture
            raise RuntimeError(f"a cuDNN plan for a new convolution ({kind}, {key[2:5]}) cannot be built inside a "
                               f"CUDA graph capture: run the step once before capturing it")
        try:
            plan = _build(cudnn, cp, handle, kind, arrays, geo, settings)
        except Exception as e:
            plan = False
            notice(f"cuDNN has no plan for {kind} {np.dtype(arrays['x'].dtype).name} x{list(arrays['x'].shape)} "
                   f"w{list(arrays['w'].shape)} ({type(e).__name__}: {str(e)[:200]})")
        _plans[key] = plan
    if plan is False:
        return False
    plan.run(cudnn, cp, handle, arrays)
    return True


def _consistent(geo, x_shape, y_shape) -> bool:
    """cuDNN derives the output size from the input's: a gradient cropped to a transposed convolution's
    input (``out_hw`` smaller than ``output_size``) is left to im2col."""
    return tuple(geo.output_size(*x_shape[2:])) == tuple(y_shape[2:])


def forward(x, w, b, geo, out_hw):
    """``conv_forward``'s result through cuDNN, or None when cuDNN has no plan (then im2col + cuBLAS)."""
    if not _consistent(geo, x.shape, (0, 0) + tuple(out_hw)):
        return None
    xp, layout = backend.array_module(x), "nhwc"
    arrays = {"x": _as_layout(xp, x, layout), "w": _as_layout(xp, w, layout),
              "y": _empty(xp, (x.shape[0], w.shape[0]) + tuple(out_hw), x.dtype, layout)}
    if not _run("fprop", arrays, geo, layout):
        return None
    y = arrays["y"]
    if b is not None:
        y += b.reshape(1, -1, 1, 1)
    return y


def input_grad(gy, w, x_shape, geo):
    """``conv_input_grad``'s result through cuDNN, or None."""
    if not _consistent(geo, x_shape, gy.shape):
        return None
    xp, layout = backend.array_module(gy), "nhwc"
    arrays = {"y": _as_layout(xp, gy, layout), "w": _as_layout(xp, w, layout),
              "x": _empty(xp, tuple(x_shape), gy.dtype, layout)}
    return arrays["x"] if _run("dgrad", arrays, geo, layout) else None


def weight_grad(x, gy, w_shape, geo):
    """``conv_weight_grad``'s result through cuDNN (shaped ``w_shape``, KCRS contiguous), or None."""
    if not _consistent(geo, x.shape, gy.shape):
        return None
    xp, layout = backend.array_module(gy), "nhwc"
    arrays = {"x": _as_layout(xp, x, layout), "y": _as_layout(xp, gy, layout),
              "w": _empty(xp, tuple(w_shape), gy.dtype, layout)}
    if not _run("wgrad", arrays, geo, layout):
        return None
    return xp.ascontiguousarray(arrays["w"])
