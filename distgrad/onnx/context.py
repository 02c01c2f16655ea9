"""``OpContext``: what a translation sees of one traced op, and the helpers it writes nodes with."""
from __future__ import annotations

import numbers

import numpy as np

from distgrad.onnx.dims import UNKNOWN, solve
from distgrad.onnx.errors import UnsupportedOperatorError
from distgrad.onnx.values import where
from distgrad.tensor import Tensor


class OpContext:
    """One traced op being translated (``op``: its ``TracedOp`` in the first trace; ``second``: in the other)."""

    def __init__(self, graph, op, second, resolve, leaf_dims: dict, out_dims: list):
        self.graph, self.op, self.second = graph, op, second
        self.args, self.kwargs = op.args, op.kwargs
        self._resolve, self._dims, self._out_dims = resolve, leaf_dims, out_dims
        self.scope = op.module.split(" (")[0].replace(".", "/") if op.module else ""

    @property
    def opset(self) -> int:
        return self.graph.opset

    def unsupported(self, reason: str):
        """Raises the error for an argument this translation does not cover (naming the op and module)."""
        raise UnsupportedOperatorError(f"dg.onnx.export: {where(self.op)}: {reason}")

    # --- inputs ----------------------------------------------------------------------------------
    def name(self, value, dtype=None) -> str:
        """The ONNX name of a Tensor or array argument (cast to ``dtype`` when given), or a number as a
        0-d constant of ``dtype``."""
        if isinstance(value, (numbers.Number, np.generic)):
            if dtype is None:
                self.unsupported(f"a number ({value}) where a tensor of known dtype is expected")
            return self.graph.scalar(value, dtype)
        name = self._resolve(value)
        if name is None:
            self.unsupported("it reads an output that the translation of an earlier op does not give")
        have = value.array.dtype if isinstance(value, Tensor) else value.dtype
        return name if dtype is None or np.dtype(dtype) == have else self.cast(name, dtype)

    def input(self, i: int, dtype=None) -> str:
        return self.name(self.args[i], dtype)

    def number(self, i: int, dtype) -> str:
        """Argument ``i``, a number, as a 0-d constant of ``dtype``; a number that changed with the dynamic axes
        (``x / x.shape[0]``) is computed from the inputs' shapes when it is a product of their sizes."""
        first, second = self.args[i], self.second.args[i]
        if first == second:
            return self.scalar(first, dtype)
        sizes = self.graph.sizes
        dim = solve(first, second, sizes) if all(isinstance(v, int) and not isinstance(v, bool)
                                                 for v in (first, second)) else UNKNOWN
        if dim is UNKNOWN:
            self.unsupported(f"argument {i} was {first} in the first trace and {second} in the second: it depends "
                             "on the inputs in a way the ONNX graph cannot reproduce")
        return self.add("Reshape", [self.cast(self.graph.size(dim), dtype), self.ints([])])

    def dims(self, value) -> tuple:
        """The dims of a Tensor or array argument: ints, or ``Dim``s that follow the dynamic axes."""
        return self._dims[id(value)]

    def out_dims(self, k: int = 0) -> tuple:
        return self._out_dims[k]

    def out_dtype(self, k: int = 0):
        return self.op.outputs[k].array.dtype

    def out_ndim(self, k: int = 0) -> int:
        return self.op.outputs[k].ndim

    # --- writing nodes ---------------------------------------------------------------------------
    def add(self, op_type: str, inputs, outputs: int = 1, **attrs):
        return self.graph.add(op_type, inputs, outputs, scope=self.scope, **attrs)

    def const(self, array, hint: str = "const") -> str:
        return self.graph.const(array, hint)

    def ints(self, values) -> str:
        return self.graph.ints(values)

    def scalar(self, value, dtype) -> str:
        return self.graph.scalar(value, dtype)

    def cast(self, name: str, dtype) -> str:
        return self.add("Cast", [name], to=self.graph.onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype)))

    def shape(self, dims) -> str:
        """A 1-D int64 tensor holding ``dims`` (sizes that follow the dynamic axes computed at run time)."""
        self._require_known(dims)
        return self.graph.shape(dims)

    def reshape(self, name: str, in_dims: tuple, out_dims: tuple) -> str:
        if tuple(in_dims) == tuple(out_dims):
            return name
        self._require_known(out_dims)
        return self.add("Reshape", [name, self.graph.reshape_target(tuple(in_dims), tuple(out_dims))])

    def _require_known(self, dims) -> None:
        if any(d is UNKNOWN for d in dims):
            self.unsupported(f"a size of its result ({list(self.op.outputs[0].shape)} in the first trace) changes "
                             "with the dynamic axes in a way that is not a product of their sizes")
