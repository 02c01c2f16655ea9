"""Containers: ``Sequential``, ``ModuleList``, ``ModuleDict``, ``ParameterList``, ``ParameterDict``."""
from __future__ import annotations

import operator
from collections import OrderedDict
from collections.abc import Iterable, Mapping

from distgrad.nn.module import Module, _addindent
from distgrad.nn.parameter import Parameter
from distgrad.tensor import Tensor


def _checked_index(idx, length: int) -> int:
    idx = operator.index(idx)
    if not -length <= idx < length:
        raise IndexError(f"index {idx} is out of range")
    return idx % length


class Sequential(Module):
    """Runs its modules in order, feeding each one's output to the next.

    ``Sequential(a, b, c)`` names them ``"0"``, ``"1"``, ``"2"``; ``Sequential(OrderedDict(...))`` keeps the names.
    """

    def __init__(self, *args):
        super().__init__()
        if len(args) == 1 and isinstance(args[0], OrderedDict):
            for name, module in args[0].items():
                self.add_module(name, module)
        else:
            for idx, module in enumerate(args):
                self.add_module(str(idx), module)

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return type(self)(OrderedDict(list(self._modules.items())[idx]))
        return list(self._modules.values())[_checked_index(idx, len(self))]

    def __setitem__(self, idx, module: Module) -> None:
        key = list(self._modules)[_checked_index(idx, len(self))]
        setattr(self, key, module)

    def __delitem__(self, idx) -> None:
        keys = list(self._modules)
        for key in keys[idx] if isinstance(idx, slice) else [keys[_checked_index(idx, len(self))]]:
            delattr(self, key)
        # keep the numbering dense, like PyTorch
        self._modules = OrderedDict((str(i), m) for i, m in enumerate(self._modules.values()))

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module: Module) -> "Sequential":
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> "Sequential":
        for module in modules:
            self.append(module)
        return self

    def insert(self, index: int, module: Module) -> "Sequential":
        if not isinstance(module, Module):
            raise AssertionError(f"module should be of type: {Module}")
        modules = list(self._modules.values())
        if not -len(modules) <= index <= len(modules):
            raise IndexError(f"Index out of range: {index}")
        modules.insert(index, module)
        self._modules = OrderedDict((str(i), m) for i, m in enumerate(modules))
        return self

    def forward(self, input):
        for module in self:
            input = module(input)
        return input


def _parameter_lines(named) -> str:
    """One line ``(name): Parameter containing: [distgrad.float32 of size 3x4]`` per ``(name, parameter)``."""
    lines = []
    for name, param in named:
        size = "x".join(str(s) for s in param.shape)
        device = f" ({param.device})" if param.device.type == "cuda" else ""
        lines.append(f"  ({name}): Parameter containing: [distgrad.{param.dtype.name} of size {size}{device}]")
    return "\n".join(lines)


class _ListContainer(Module):
    """What ``ModuleList`` and ``ParameterList`` share: members registered under ``"0"``, ``"1"``, ...
    in the dict that ``_members`` names (``"_modules"`` or ``"_parameters"``); ``extend`` adds them."""

    _members: str

    def __init__(self, values: Iterable | None = None):
        super().__init__()
        if values is not None:
            self.extend(values)

    def _items(self) -> dict:
        return self.__dict__[self._members]

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return type(self)(list(self._items().values())[idx])
        return self._items()[str(_checked_index(idx, len(self)))]

    def __len__(self) -> int:
        return len(self._items())

    def __iter__(self):
        return iter(self._items().values())

    def __iadd__(self, values: Iterable):
        return self.extend(values)


class ModuleList(_ListContainer):
    """A list of modules, registered so their parameters are found; it has no ``forward``."""

    _members = "_modules"

    def __setitem__(self, idx, module: Module) -> None:
        setattr(self, str(_checked_index(idx, len(self))), module)

    def __delitem__(self, idx) -> None:
        modules = list(self._modules.values())
        del modules[idx if isinstance(idx, slice) else _checked_index(idx, len(self))]
        self._modules = OrderedDict((str(i), m) for i, m in enumerate(modules))

    def append(self, module: Module) -> "ModuleList":
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> "ModuleList":
        if not isinstance(modules, Iterable):
            raise TypeError("ModuleList.extend should be called with an iterable, but got " + type(modules).__name__)
        for module in modules:
            self.append(module)
        return self

    def insert(self, index: int, module: Module) -> None:
        modules = list(self._modules.values())
        modules.insert(index, module)
        self._modules = OrderedDict()
        self.extend(modules)

    def pop(self, idx: int = -1) -> Module:
        module = self[idx]
        del self[idx]
        return module

    def __repr__(self) -> str:
        """Like ``Module``'s, but runs of identical children collapse into ``(0-2): 3 x Linear(...)``."""
        reprs = [repr(m) for m in self]
        if not reprs:
            return self._get_name() + "()"
        lines, start = [], 0
        for i in range(1, len(reprs) + 1):
            if i == len(reprs) or reprs[i] != reprs[start]:
                label = f"({start}): " if i - 1 == start else f"({start}-{i - 1}): {i - start} x "
                lines.append(_addindent(label + reprs[start], 2))
                start = i
        return self._get_name() + "(\n  " + "\n  ".join(lines) + "\n)"


class _DictContainer(Module):
    """What ``ModuleDict`` and ``ParameterDict`` share: members by key, in insertion order, in the dict that
    ``_members`` names (``"_modules"`` or ``"_parameters"``); ``__setitem__`` registers one."""

    _members: str

    def __init__(self, values: Mapping | Iterable | None = None):
        super().__init__()
        if values is not None:
            self.update(values)

    def _items(self) -> dict:
        return self.__dict__[self._members]

    def __getitem__(self, key: str):
        return self._items()[key]

    def __delitem__(self, key: str) -> None:
        del self._items()[key]

    def __len__(self) -> int:
        return len(self._items())

    def __iter__(self):
        return iter(self._items())

    def __contains__(self, key: str) -> bool:
        return key in self._items()

    def clear(self) -> None:
        self._items().clear()

    def pop(self, key: str):
        return self._items().pop(key)

    def keys(self):
        return self._items().keys()

    def items(self):
        return self._items().items()

    def values(self):
        return self._items().values()

    def update(self, values: Mapping | Iterable) -> None:
        pairs = values.items() if isinstance(values, Mapping) else values
        for key, value in pairs:
            self[key] = value


class ModuleDict(_DictContainer):
    """An ordered dict of modules, registered under their keys."""

    _members = "_modules"

    def __init__(self, modules: Mapping[str, Module] | Iterable | None = None):
        super().__init__(modules)

    def __setitem__(self, key: str, module: Module) -> None:
        self.add_module(key, module)


class ParameterList(_ListContainer):
    """A list of Parameters, registered under ``"0"``, ``"1"``, ...; plain Tensors are wrapped as Parameters."""

    _members = "_parameters"

    def __setitem__(self, idx, param: Tensor) -> None:
        if not isinstance(param, Parameter):
            param = Parameter(param)
        setattr(self, str(_checked_index(idx, len(self))), param)

    def append(self, param: Tensor) -> "ParameterList":
        self.register_parameter(str(len(self)), param if isinstance(param, Parameter) else Parameter(param))
        return self

    def extend(self, params: Iterable[Tensor]) -> "ParameterList":
        if not isinstance(params, Iterable) or isinstance(params, Tensor):
            raise TypeError("ParameterList.extend should be called with an iterable, but got " + type(params).__name__)
        for param in params:
            self.append(param)
        return self

    def extra_repr(self) -> str:
        return _parameter_lines(enumerate(self))


class ParameterDict(_DictContainer):
    """Parameters by name, registered on the module in insertion order (a Tensor is wrapped as a Parameter)."""

    _members = "_parameters"

    def __init__(self, parameters: Mapping[str, Tensor] | Iterable | None = None):
        super().__init__(parameters)

    def __setitem__(self, key: str, param: Tensor) -> None:
        self.register_parameter(key, param if isinstance(param, Parameter) else Parameter(param))

    def get(self, key: str, default=None):
        return self._parameters.get(key, default)

    def extra_repr(self) -> str:
        return _parameter_lines(self._parameters.items())
