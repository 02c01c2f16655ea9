"""What each op of a trace reads: a key per Tensor or array in its arguments.

Keys: ``("input", j)`` the j-th flattened model input, ``("param", name)`` a parameter or buffer (by its
``state_dict`` name), ``("op", i, k)`` output k of op i, ``("const", i, n)`` a constant (leaf n of op
i's arguments: a tensor or array the model made outside the tape).

An op's output is found from a later tensor through its ``grad_fn`` and ``output_nr`` (which in-place
ops move to the new value) or else its array; either way the version counter must still read what it
read when the output was made, or the tensor was written to by an op the trace did not see.
"""
from __future__ import annotations

from distgrad import backend
from distgrad.onnx.errors import OnnxExporterError
from distgrad.onnx.trace import Trace, leaves, state
from distgrad.tensor import Tensor


def host(array):
    """A NumPy copy of a NumPy or CuPy array."""
    return backend.to_device(array, backend.CPU)


def parameter_names(model) -> dict:
    """{id(tensor or its array): state_dict name} for the parameters and buffers of ``model``."""
    names = {}
    for getter in ("named_parameters", "named_buffers"):
        for name, t in getattr(model, getter, lambda: ())():
            if t is not None:
                names.setdefault(id(t), name)
                names.setdefault(id(t.array), name)
    return names


class Values:
    """The keys of every Tensor and array the ops of ``trace`` read (see the module docstring)."""

    def __init__(self, trace: Trace, params: dict, params_by_key: dict):
        self.trace = trace
        self.constants = {}  # key -> host array
        self.op_keys = []  # per op: the key of each leaf of its arguments, in ``leaves`` order
        self._by_node = {}  # (id(grad_fn), output_nr) -> (key, version box, number)
        self._by_array = {}  # id(array) -> (key, version box, number)
        self._params = params
        self._params_by_key = params_by_key
        for j, t in enumerate(trace.inputs):
            self._by_array[id(t.array)] = (("input", j), t._version, t._version[0])
        for i, op in enumerate(trace.ops):
            self.op_keys.append(self._keys_of(i, op))
            for k, (o, (node, output_nr, box, number)) in enumerate(zip(op.outputs, op.made)):
                entry = (("op", i, k), box, number)
                if node is not None:
                    self._by_node[(id(node), output_nr)] = entry
                self._by_array.setdefault(id(o.array), entry)

    def _keys_of(self, i: int, op) -> list:
        keys = []
        states = iter(op.reads)
        for n, leaf in enumerate(leaves((op.args, op.kwargs))):
            keys.append(self.key(leaf, next(states) if isinstance(leaf, Tensor) else None, ("const", i, n), op))
        return keys

    def key(self, leaf, state, const_key, op) -> tuple:
        """The key of ``leaf`` (a Tensor in ``trace.state`` ``state`` when read, or an array); ``const_key``
        if it is none of the trace's values."""
        if isinstance(leaf, Tensor):
            node, output_nr, box_read, number_read = state
            found = None
            if node is not None:
                found = self._by_node.get((id(node), output_nr))
            if found is None:
                found = self._by_array.get(id(leaf.array))
            if found is not None:
                key, box, number = found
                if box_read is box and number_read != number:
                    raise OnnxExporterError(
                        f"dg.onnx.export: {where(op)} reads a tensor of shape {list(leaf.shape)} that was written to "
                        "in place by an op the trace did not see (an in-place op outside autograd, or a write to a "
                        "view's base); use the out-of-place op")
                return key
            name = self._params.get(id(leaf)) or self._params.get(id(leaf.array))
        else:
            found = self._array_source(leaf)
            if found is not None:
                return found[0]
            name = self._params.get(id(leaf))
        if name is not None:
            return ("param", name)
        self.constants[const_key] = host(leaf.array if isinstance(leaf, Tensor) else leaf)
        return const_key

    def _array_source(self, array):
        """The entry of ``array``, or of the array it views with the same shape (``idx.reshape(-1)`` of a vector)."""
        while array is not None:
            found = self._by_array.get(id(array))
            if found is not None:
                return found
            base = getattr(array, "base", None)
            array = base if base is not None and base.shape == array.shape and base.dtype == array.dtype else None
        return None

    def output_keys(self) -> list:
        """The key of each flattened model output (an op output, an input, a parameter or a constant)."""
        keys = []
        for n, t in enumerate(self.trace.outputs):
            keys.append(self.key(t, state(t), ("const", len(self.trace.ops), n), None))
        return keys

    def shape(self, key) -> tuple:
        """The shape of the value ``key`` names in this trace."""
        kind = key[0]
        if kind == "input":
            return tuple(self.trace.inputs[key[1]].shape)
        if kind == "op":
            return tuple(self.trace.ops[key[1]].outputs[key[2]].shape)
        if kind == "param":
            return tuple(self._params_by_key[key[1]].shape)
        return tuple(self.constants[key].shape)


def where(op) -> str:
    """How an error names a traced op: its Function and the module whose forward called it."""
    if op is None:
        return "the model's output"
    return f"{op.op.__name__} (called in module {op.module or '(the model itself)'})"
