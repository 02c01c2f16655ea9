"""``Parameter``: a Tensor that a ``Module`` registers as one of its trainable weights."""
from __future__ import annotations

import numpy as np

from distgrad.tensor import Tensor


class Parameter(Tensor):
    """A leaf tensor sharing ``data``'s array and version counter, with ``requires_grad=True`` by default.

    Assigning a Parameter to a ``Module`` attribute registers it, so it appears in ``parameters()``.
    """

    def __init__(self, data: Tensor | None = None, requires_grad: bool = True):
        if data is None:
            data = Tensor(np.empty(0, dtype=np.float32))
        if not isinstance(data, Tensor):
            raise TypeError(f"Parameter expects a Tensor as data, got {type(data).__name__}")
        super().__init__(data.array)
        self._version = data._version
        self.requires_grad_(requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()

    def __deepcopy__(self, memo):
        if id(self) in memo:
            return memo[id(self)]
        result = type(self)(Tensor(self.array.copy()), self.requires_grad)
        memo[id(self)] = result
        return result

    def __reduce_ex__(self, protocol):
        return type(self), (Tensor(self.array), self.requires_grad)
