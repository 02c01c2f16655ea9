"""``export``: a distgrad model as an ONNX file, from two recorded forwards.

1. The model runs in eval mode on the example inputs with every op recorded (``trace.py``), then again
   on inputs with other values and, along each dynamic axis, another size.
2. ``Program`` checks that both traces agree (same ops, same values read, same constants) and finds
   which dims follow the dynamic axes.
3. Each op the outputs depend on becomes ONNX nodes through its translation (``translations/``);
   parameters and buffers become initializers named as in the ``state_dict``, other constants
   initializers of their own.
"""
from __future__ import annotations

import contextlib
import enum
import inspect

import numpy as np

from distgrad import backend
from distgrad.onnx import translations  # noqa: F401  (registers every translation)
from distgrad.onnx.context import OpContext
from distgrad.onnx.dims import dim_name
from distgrad.onnx.errors import OnnxExporterError, UnsupportedOperatorError
from distgrad.onnx.graph import Graph
from distgrad.onnx.program import Program
from distgrad.onnx.registry import TRANSLATIONS
from distgrad.onnx.trace import leaves, record, slots, unflatten
from distgrad.onnx.values import Values, host, parameter_names, where
from distgrad.tensor import Tensor

DEFAULT_OPSET = 18
MIN_OPSET = 17


class TrainingMode(enum.Enum):
    """PyTorch's ``torch.onnx.TrainingMode``; distgrad exports in evaluation mode only."""

    EVAL = 0
    PRESERVE = 1
    TRAINING = 2


_exporting = [False]


def supported_ops() -> list:
    """The names of the ops (Functions, and the comparisons that have none) that ``export`` translates, sorted."""
    return sorted(op.__name__ for op in TRANSLATIONS)


def is_in_onnx_export() -> bool:
    """True while ``export`` runs the model (as ``torch.onnx.is_in_onnx_export``)."""
    return _exporting[0]


def export(model, args=(), f=None, *, kwargs=None, export_params: bool = True, verbose=None, input_names=None,
           output_names=None, opset_version: int | None = None, dynamic_axes=None,
           keep_initializers_as_inputs: bool = False, training=TrainingMode.EVAL, do_constant_folding: bool = True,
           dynamo: bool = False):
    """Writes ``model`` (a Module, or any callable of Tensors) as ONNX to ``f`` (a path or a binary file;
    None writes nothing) and returns the ``onnx.ModelProto``.

    ``args``: the example inputs (a Tensor or a tuple; a trailing dict is taken as keyword arguments, as in
    PyTorch), ``kwargs`` more of them. ``input_names``/``output_names`` name the flattened inputs and
    outputs (default: the forward's parameter names, and ``output``/``output_0``...). ``dynamic_axes``:
    ``{name: {axis: "symbol"}}`` or ``{name: [axis, ...]}`` for inputs and outputs. ``opset_version``:
    17 or later (default 18). Parameters are initializers named as in ``model.state_dict()``
    (``export_params=False`` makes them graph inputs instead). ``verbose``, ``do_constant_folding`` and
    ``dynamo`` are accepted and ignored. Differences from PyTorch: the model is traced twice (see
    ``docs/onnx.md``), evaluation mode only, and the ModelProto is returned.
    """
    onnx = _require_onnx()
    opset = DEFAULT_OPSET if opset_version is None else int(opset_version)
    if not MIN_OPSET <= opset <= onnx.defs.onnx_opset_version():
        raise ValueError(f"dg.onnx.export: opset_version {opset} is not supported (distgrad writes opsets "
                         f"{MIN_OPSET} to {onnx.defs.onnx_opset_version()}, the newest this onnx package knows)")
    if training not in (TrainingMode.EVAL, None):
        raise NotImplementedError("dg.onnx.export exports evaluation mode only (training=TrainingMode.EVAL)")
    args = (args,) if isinstance(args, Tensor) else tuple(args)
    if args and isinstance(args[-1], dict) and kwargs is None:
        args, kwargs = args[:-1], args[-1]
    kwargs = dict(kwargs or {})
    with _evaluation(model), _flag():
        first = record(model, args, kwargs)
        names = _input_names(model, first, input_names)
        sizes, symbols = _dynamic_sizes(first, names, dynamic_axes or {})
        varied = [_varied(t, {axis: sizes[s][1] for (j, axis), s in symbols.items() if j == i}, i)
                  for i, t in enumerate(first.inputs)]
        try:
            second = record(model, *unflatten(first.input_tree, varied))
        except Exception as exc:
            hint = (" (axes that must stay equal, a batch shared by two inputs say, need the same name in "
                    "dynamic_axes)" if len(sizes) > 1 else "")
            raise OnnxExporterError(f"dg.onnx.export: the model failed on inputs with other values (and other sizes "
                                    f"along the dynamic axes), which export runs to check its trace: {exc}{hint}") \
                from exc
    params = parameter_names(model)
    by_name = {name: t for name, t in _named_tensors(model)}
    program = Program(Values(first, params, by_name), Values(second, params, by_name), sizes)
    out_names = _output_names(first, output_names)
    graph_symbols = {s: (names[j], axis) for (j, axis), s in sorted(symbols.items(), reverse=True)}
    graph = Graph(onnx, opset, graph_symbols, sizes)
    builder = _Builder(graph, program, by_name, export_params)
    graph_inputs = [_value_info(onnx, names[j], t.array.dtype, program.dims(("input", j)), {})
                    for j, t in enumerate(first.inputs)]
    builder.names.update({("input", j): names[j] for j in range(len(first.inputs))})
    builder.translate_ops()
    outputs = _output_axes(dynamic_axes or {}, out_names)
    graph_outputs = []
    for n, (key, name, t) in enumerate(zip(program.output_keys, out_names, first.outputs)):
        graph.nodes.append(onnx.helper.make_node("Identity", [builder.value(key, t)], [name], name=f"/output_{n}"))
        graph_outputs.append(_value_info(onnx, name, t.array.dtype, program.dims(key), outputs.get(name, {})))
    if not export_params or keep_initializers_as_inputs:
        graph_inputs += builder.parameter_inputs(keep_initializers_as_inputs)
    proto = onnx.helper.make_model(
        onnx.helper.make_graph(graph.nodes, type(model).__name__, graph_inputs, graph_outputs, graph.initializers),
        opset_imports=[onnx.helper.make_opsetid("", opset)], producer_name="distgrad",
        ir_version=_ir_version(onnx, opset))
    onnx.checker.check_model(proto)
    if f is not None:
        onnx.save(proto, f)
    return proto


class _Builder:
    """Translates the needed ops in order, naming every value the graph reads."""

    def __init__(self, graph: Graph, program: Program, params: dict, export_params: bool):
        self.graph, self.program, self.params, self.export_params = graph, program, params, export_params
        self.names = {}  # key -> ONNX name
        self.used_params = []

    def value(self, key, leaf) -> str:
        if key in self.names:
            return self.names[key]
        kind = key[0]
        if kind == "param":
            array = host(self.params[key[1]].array)
            name = self.graph.initializer(array, key[1]) if self.export_params else self.graph.fresh(key[1])
            self.used_params.append((name, array))
        elif kind == "const" and key in self.program.fills:
            fill, dims = self.program.fills[key]
            dtype = (leaf.array if isinstance(leaf, Tensor) else leaf).dtype
            name = self.graph.add("Expand", [self.graph.scalar(fill, dtype), self.graph.shape(dims)])
        elif kind == "const":
            name = self.graph.const(self.program.first.constants[key], "constant")
        else:
            return None  # an op output no translation gave
        self.names[key] = name
        return name

    def translate_ops(self) -> None:
        program = self.program
        for i in sorted(program.needed):
            op, second = program.first.trace.ops[i], program.second.trace.ops[i]
            translation = TRANSLATIONS.get(op.op)
            if translation is None:
                raise UnsupportedOperatorError(f"dg.onnx.export: {where(op)} has no ONNX translation (the ops that "
                                               "have one: dg.onnx.supported_ops())")
            keys = {id(leaf): key for leaf, key in zip(leaves((op.args, op.kwargs)), program.first.op_keys[i])}
            dims = {leaf: program.dims(key) for leaf, key in keys.items()}
            out_dims = [program.dims(("op", i, k)) for k in range(len(op.outputs))]
            context = OpContext(self.graph, op, second, lambda leaf: self.value(keys[id(leaf)], leaf), dims, out_dims)
            result = translation.fn(context)
            result = result if isinstance(result, (tuple, list)) else (result,)
            if len(result) != len(op.outputs):
                raise AssertionError(f"the translation of {op.op.__name__} gave {len(result)} outputs for "
                                     f"{len(op.outputs)}")
            for k, name in enumerate(result):
                self.names[("op", i, k)] = name

    def parameter_inputs(self, keep_initializers: bool) -> list:
        onnx = self.graph.onnx
        return [_value_info(onnx, name, array.dtype, array.shape, {}) for name, array in self.used_params]


# --- names, dynamic axes and the second trace's inputs ----------------------------------------------
def _input_names(model, trace, given) -> list:
    names = list(given or [])
    if len(names) > len(trace.inputs):
        raise ValueError(f"dg.onnx.export: {len(names)} input_names for {len(trace.inputs)} input tensors")
    defaults = _default_input_names(model, trace)
    names += defaults[len(names):]
    if len(set(names)) != len(names):
        raise ValueError(f"dg.onnx.export: input names must be distinct, got {names}")
    return names


def _default_input_names(model, trace) -> list:
    """The forward's parameter names (``x``, or ``hx_0``, ``hx_1`` for a tuple), ``input_j`` where unknown."""
    names = [f"input_{j}" for j in range(len(trace.inputs))]
    try:
        params = list(inspect.signature(getattr(model, "forward", model)).parameters)
    except (TypeError, ValueError):
        return names
    args_tree, kwargs_tree = trace.input_tree
    for position, tree in enumerate(args_tree):
        if position < len(params):
            _name_leaves(tree, params[position], names)
    for key, tree in kwargs_tree.items():
        _name_leaves(tree, key, names)
    return names


def _name_leaves(tree, base: str, names: list) -> None:
    indices = slots(tree)
    for n, j in enumerate(indices):
        names[j] = base if len(indices) == 1 else f"{base}_{n}"


def _output_names(trace, given) -> list:
    names = list(given or [])
    count = len(trace.outputs)
    if len(names) > count:
        raise ValueError(f"dg.onnx.export: {len(names)} output_names for {count} output tensors")
    defaults = ["output"] if count == 1 else [f"output_{n}" for n in range(count)]
    return names + defaults[len(names):]


def _axes_of(name: str, spec) -> dict:
    """``{axis: symbol}`` from ``{axis: symbol}`` or ``[axis, ...]`` (PyTorch's two forms)."""
    if isinstance(spec, dict):
        return {int(a): str(s) for a, s in spec.items()}
    return {int(a): f"{name}_dynamic_axes_{n + 1}" for n, a in enumerate(spec)}


def _dynamic_sizes(trace, names: list, dynamic_axes: dict) -> tuple:
    """({symbol: (size in trace 1, size in trace 2)}, {(input index, axis): symbol}) for the inputs' dynamic axes."""
    sizes, symbols = {}, {}
    for j, name in enumerate(names):
        if name not in dynamic_axes:
            continue
        shape = trace.inputs[j].shape
        for axis, sym in _axes_of(name, dynamic_axes[name]).items():
            if not -len(shape) <= axis < len(shape):
                raise ValueError(f"dg.onnx.export: dynamic axis {axis} of input {name!r} of shape {list(shape)}")
            axis %= len(shape)
            if sym in sizes and sizes[sym][0] != shape[axis]:
                raise ValueError(f"dg.onnx.export: the dynamic axis {sym!r} has sizes {sizes[sym][0]} and "
                                 f"{shape[axis]} in the example inputs")
            # another size for each symbol, all different: 2-3, 5-6 ... tell N from T and N*T from 2N
            sizes.setdefault(sym, (shape[axis], shape[axis] + 2 * len(sizes) + 1))
            symbols[(j, axis)] = sym
    return sizes, symbols


def _output_axes(dynamic_axes: dict, out_names: list) -> dict:
    return {name: _axes_of(name, dynamic_axes[name]) for name in out_names if name in dynamic_axes}


def _varied(t: Tensor, new_sizes: dict, seed: int) -> Tensor:
    """A tensor like ``t`` with other values (in ``t``'s range) and ``new_sizes`` along those axes."""
    shape = tuple(new_sizes.get(axis, n) for axis, n in enumerate(t.shape))
    rng = np.random.default_rng(1234 + seed)
    values = host(t.array)
    dtype = values.dtype
    if dtype == np.bool_:
        data = rng.random(shape) < 0.5
    elif dtype.kind in "iu":
        low, high = (int(values.min()), int(values.max())) if values.size else (0, 1)
        data = rng.integers(low, high + 1, shape)
    else:
        spread = float(np.std(values.astype(np.float64))) if values.size > 1 else 1.0
        mean = float(values.astype(np.float64).mean()) if values.size else 0.0
        data = rng.standard_normal(shape) * (spread or 1.0) + mean
    return Tensor(backend.to_device(np.asarray(data).astype(dtype), t.device))


def _named_tensors(model):
    for getter in ("named_parameters", "named_buffers"):
        for name, t in getattr(model, getter, lambda: ())():
            if t is not None:
                yield name, t


# --- ONNX details ----------------------------------------------------------------------------------
def _value_info(onnx, name: str, dtype, dims, axis_names: dict):
    shape = []
    for axis, d in enumerate(dims):
        if axis in axis_names:
            shape.append(axis_names[axis])
        else:
            shape.append(d if isinstance(d, int) else dim_name(d))
    return onnx.helper.make_tensor_value_info(name, onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype)), shape)


def _ir_version(onnx, opset: int) -> int:
    """The oldest IR version that has ``opset``: files load in the oldest runtimes that can run them."""
    versions = [ir for _, ir, op, *_ in onnx.helper.VERSION_TABLE if op >= opset]
    return min(versions) if versions else onnx.IR_VERSION


def _require_onnx():
    try:
        import onnx
    except ImportError as exc:
        raise ImportError("dg.onnx.export needs the onnx package: pip install 'distgrad[onnx]' (or pip install "
                          "onnx; onnxruntime runs the file)") from exc
    return onnx


@contextlib.contextmanager
def _evaluation(model):
    """``model`` in eval mode inside the block, each module's own mode restored after."""
    modules = list(getattr(model, "modules", lambda: ())())
    modes = [m.training for m in modules]
    for m in modules:
        m.training = False
    try:
        yield
    finally:
        for m, mode in zip(modules, modes):
            m.training = mode


@contextlib.contextmanager
def _flag():
    _exporting[0] = True
    try:
        yield
    finally:
        _exporting[0] = False
