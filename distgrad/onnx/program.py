"""``Program``: the two traces of one export checked against each other, and what the graph needs of them.

The second trace ran on inputs with other values (and other sizes along the dynamic axes). For the
first to stand for every input, both must have called the same ops in the same order, each reading
the same values (keys) with the same non-tensor arguments, and every constant must be the same: a
constant that differs was computed from the inputs outside the tape, and a graph holding its first
value would be wrong for other inputs. A constant filled with one value whose shape follows the
dynamic axes (zeros of the batch size, say: an RNN's initial state) is kept as a fill of that shape.

Dims: every value's shape in both traces gives its dims (``dims.solve``). ``needed`` is the set of
ops whose outputs the model's outputs depend on: only those are translated.
"""
from __future__ import annotations

import numpy as np

from distgrad.onnx.dims import UNKNOWN, solve_shape
from distgrad.onnx.errors import OnnxExporterError
from distgrad.onnx.registry import TRANSLATIONS
from distgrad.onnx.trace import leaves
from distgrad.onnx.values import Values, where
from distgrad.tensor import Tensor


class Program:
    def __init__(self, first: Values, second: Values, sizes: dict):
        self.first, self.second, self.sizes = first, second, sizes
        self.fills = {}  # constant key -> (fill value, dims) for constants whose shape follows the dynamic axes
        self._check_ops()
        self.output_keys = first.output_keys()
        if self.output_keys != second.output_keys():
            raise OnnxExporterError("dg.onnx.export: the model returned different values for the two traces")
        for key in self.output_keys:
            if key[0] == "const":  # an output the model made outside the recorded ops
                self._check_constant(None, key)
        self.needed = self._needed()

    # --- the two traces agree --------------------------------------------------------------------
    def _check_ops(self) -> None:
        ops1, ops2 = self.first.trace.ops, self.second.trace.ops
        for i, (a, b) in enumerate(zip(ops1, ops2)):
            if a.op is not b.op:
                raise OnnxExporterError(
                    f"dg.onnx.export: the model's forward took another path on other inputs: op {i} was "
                    f"{where(a)} in the first trace and {where(b)} in the second (control flow that depends on "
                    "the inputs' values or on sizes along the dynamic axes cannot be exported)")
            self._check_arguments(i, a, b)
        if len(ops1) != len(ops2):
            raise OnnxExporterError(
                f"dg.onnx.export: the model's forward called {len(ops1)} ops on the example inputs and {len(ops2)} "
                "on inputs with other values and dynamic sizes (a loop over a dynamic axis, or control flow that "
                "depends on the inputs, cannot be exported)")

    def _check_arguments(self, i: int, a, b) -> None:
        translation = TRANSLATIONS.get(a.op)
        varying = translation.varying if translation else frozenset()
        for position, (x, y) in enumerate(zip(a.args, b.args)):
            if position not in varying and _static(x) != _static(y):
                raise OnnxExporterError(
                    f"dg.onnx.export: {where(a)}: argument {position} was {_show(x)} in the first trace and "
                    f"{_show(y)} in the second: it depends on the inputs (a size read from a tensor's shape along a "
                    "dynamic axis, or a value read from a tensor), which the ONNX graph cannot reproduce")
        if {k: _static(v) for k, v in a.kwargs.items()} != {k: _static(v) for k, v in b.kwargs.items()}:
            raise OnnxExporterError(f"dg.onnx.export: {where(a)}: its keyword arguments differ between the traces")
        skipped = {n for n, _ in _leaves_at(a, varying)}
        keys1, keys2 = self.first.op_keys[i], self.second.op_keys[i]
        for n, (k1, k2) in enumerate(zip(keys1, keys2)):
            if n in skipped:
                continue
            if k1 != k2:
                raise OnnxExporterError(
                    f"dg.onnx.export: {where(a)} read different values in the two traces ({_describe(k1)} and "
                    f"{_describe(k2)})")
            if k1[0] == "const":
                self._check_constant(a, k1)

    def _check_constant(self, op, key) -> None:
        c1, c2 = self.first.constants[key], self.second.constants[key]
        if c1.shape == c2.shape:
            if c1.dtype == c2.dtype and np.array_equal(c1, c2, equal_nan=c1.dtype.kind in "fc"):
                return
            raise OnnxExporterError(
                f"dg.onnx.export: {where(op)} reads a tensor of shape {list(c1.shape)} made outside the recorded "
                "ops whose values depend on the inputs (e.g. a mask built from an input's array, or an op distgrad "
                "runs without a Function, such as a comparison); the ONNX graph would hold the example's values")
        dims = solve_shape(c1.shape, c2.shape, self.sizes)
        fill = _fill_value(c1)
        if dims is None or UNKNOWN in dims or fill is None or _fill_value(c2) != fill:
            raise OnnxExporterError(
                f"dg.onnx.export: {where(op)} reads a tensor made outside the recorded ops whose shape follows the "
                f"dynamic axes ({list(c1.shape)}, then {list(c2.shape)}) and whose values are not one constant "
                "(e.g. arange over a dynamic axis); only constant fills of such shapes can be exported")
        self.fills[key] = (fill, dims)

    # --- what the graph needs --------------------------------------------------------------------
    def dims(self, key) -> tuple:
        if key in self.fills:
            return self.fills[key][1]
        dims = solve_shape(self.first.shape(key), self.second.shape(key), self.sizes)
        if dims is None:
            raise OnnxExporterError(f"dg.onnx.export: a value ({_describe(key)}) has different ranks in the two traces")
        return dims

    def _needed(self) -> set:
        """The indices of the ops the outputs depend on."""
        needed, pending = set(), [k[1] for k in self.output_keys if k[0] == "op"]
        while pending:
            i = pending.pop()
            if i in needed:
                continue
            needed.add(i)
            pending.extend(k[1] for k in self.first.op_keys[i] if k[0] == "op")
        return needed


def _leaves_at(op, positions):
    """(leaf index, leaf) for the leaves of ``op``'s arguments at ``positions``."""
    n = 0
    for position, arg in enumerate(op.args):
        for leaf in leaves(arg):
            if position in positions:
                yield n, leaf
            n += 1


def _static(value):
    """``value`` with its tensors and arrays left out (they are compared through their keys)."""
    if isinstance(value, Tensor) or hasattr(value, "__array_interface__") or hasattr(value, "__cuda_array_interface__"):
        return "<tensor>"
    if isinstance(value, slice):
        return ("slice", value.start, value.stop, value.step)
    if isinstance(value, (tuple, list)):
        return tuple(_static(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _static(v)) for k, v in value.items()))
    return value


def _fill_value(array):
    """The one value every element of ``array`` holds, or None."""
    if array.size == 0:
        return None
    flat = array.reshape(-1)
    first = flat[0]
    if first != first:  # NaN
        return None if not np.isnan(flat).all() else float("nan")
    return first.item() if bool((flat == first).all()) else None


def _show(value) -> str:
    text = repr(_static(value))
    return text if len(text) <= 80 else text[:77] + "..."


def _describe(key) -> str:
    kind = key[0]
    if kind == "input":
        return f"input {key[1]}"
    if kind == "param":
        return f"parameter {key[1]!r}"
    if kind == "op":
        return f"output {key[2]} of op {key[1]}"
    return "a constant"
