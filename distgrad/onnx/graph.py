"""``Graph``: the ONNX nodes and initializers being written, with unique names and shared small constants.

Also the numbers an op needs at run time when sizes follow the dynamic axes (``shape``): a size is
read from the graph input that has the axis (``Shape`` with ``start``/``end``), multiplied out, and
the pieces concatenated into one int64 shape tensor.
"""
from __future__ import annotations

import math

import numpy as np

from distgrad.onnx.dims import UNKNOWN

INT_MAX = 2**63 - 1  # a slice end meaning "to the end" along any axis


class Graph:
    """The ONNX graph of one export, built node by node (``onnx`` is the imported package)."""

    def __init__(self, onnx, opset: int, symbols: dict, sizes: dict):
        self.onnx, self.opset = onnx, opset
        self.symbols = symbols  # dynamic axis name -> (graph input name, axis)
        self.sizes = sizes  # dynamic axis name -> (size in the first trace, in the second)
        self.nodes, self.initializers = [], []
        self._taken = set()
        self._constants = {}
        self._sizes = {}

    def fresh(self, hint: str) -> str:
        """A name not used yet, made from ``hint``."""
        name, n = hint, 0
        while name in self._taken:
            n += 1
            name = f"{hint}_{n}"
        self._taken.add(name)
        return name

    def add(self, op_type: str, inputs, outputs: int = 1, scope: str = "", **attrs):
        """Appends one node; returns its output name (or the list of them when ``outputs`` > 1)."""
        prefix = f"/{scope}/" if scope else "/"
        names = [self.fresh(f"{prefix}{op_type}_output_{k}") for k in range(outputs)]
        attrs = {k: v for k, v in attrs.items() if v is not None}
        self.nodes.append(self.onnx.helper.make_node(op_type, ["" if i is None else i for i in inputs], names,
                                                     name=self.fresh(f"{prefix}{op_type}"), **attrs))
        return names[0] if outputs == 1 else names

    # --- constants -------------------------------------------------------------------------------
    def initializer(self, array, name: str) -> str:
        name = self.fresh(name)
        self.initializers.append(self.onnx.numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def const(self, array, hint: str = "const") -> str:
        """An initializer holding ``array``; small ones are shared between the nodes that use them."""
        array = np.asarray(array)
        if array.size > 64:
            return self.initializer(array, hint)
        key = (array.dtype.str, array.shape, array.tobytes())
        if key not in self._constants:
            self._constants[key] = self.initializer(array, hint)
        return self._constants[key]

    def ints(self, values) -> str:
        return self.const(np.asarray(list(values), np.int64), "ints")

    def scalar(self, value, dtype) -> str:
        return self.const(np.asarray(value, dtype=dtype), "scalar")

    # --- sizes at run time -----------------------------------------------------------------------
    def size(self, dim) -> str:
        """A 1-element int64 tensor holding ``dim`` (an int, or a ``Dim`` computed from the inputs' shapes)."""
        if isinstance(dim, int):
            return self.ints([dim])
        if dim is UNKNOWN or not dim.symbols:
            raise ValueError("a size that follows no dynamic axis")
        key = dim
        if key not in self._sizes:
            parts = []
            for sym in dim.symbols:
                source, axis = self.symbols[sym]
                parts.append(self.add("Shape", [source], start=axis, end=axis + 1))
            out = parts[0]
            for p in parts[1:]:
                out = self.add("Mul", [out, p])
            if dim.factor != 1:
                out = self.add("Mul", [out, self.ints([dim.factor])])
            self._sizes[key] = out
        return self._sizes[key]

    def shape(self, dims) -> str:
        """A 1-D int64 tensor holding ``dims`` (constants where they are all ints)."""
        if all(isinstance(d, int) for d in dims):
            return self.ints(dims)
        return self.add("Concat", [self.size(d) for d in dims], axis=0)

    def reshape_target(self, in_dims: tuple, out_dims: tuple) -> str:
        """The shape input of a Reshape from ``in_dims`` to ``out_dims``: constants, 0 to keep an input
        dim in place and -1 for one dim that follows the dynamic axes, else sizes computed at run time."""
        if any(d == 0 for d in out_dims if isinstance(d, int)):
            return self.shape(out_dims)  # Reshape reads a literal 0 as "keep"
        target, inferred = [], []
        for i, d in enumerate(out_dims):
            if isinstance(d, int):
                target.append(d)
            elif i < len(in_dims) and in_dims[i] == d:
                target.append(0)
            else:
                target.append(-1)
                inferred.append(i)
        if len(inferred) <= 1:
            return self.ints(target)
        return self.shape(out_dims)


def numel(dims) -> int | None:
    """The number of elements of a static shape (None when a dim follows the dynamic axes)."""
    return math.prod(dims) if all(isinstance(d, int) for d in dims) else None

