"""PyTorch's other ways of making tensors: the typed constructors (``dg.FloatTensor([1, 2])``,
``dg.LongTensor(3)``, ``dg.cuda.FloatTensor``) and the ``new_*`` methods (``x.new_zeros(4)``), which
take their dtype and device from a type or from an existing tensor.

A typed constructor is a class only in name: calling it returns a plain ``Tensor``, and
``isinstance(t, dg.FloatTensor)`` asks whether ``t`` is a float32 tensor on that kind of device, as
in PyTorch.
"""
from __future__ import annotations

from distgrad import backend, creation, dtypes
from distgrad.ops.conversion import TYPE_NAMES
from distgrad.tensor import Tensor, bind_methods

__all__ = list(TYPE_NAMES.values())  # FloatTensor, DoubleTensor, HalfTensor, LongTensor, ... BoolTensor


class LegacyTensorType(type):
    """The metaclass of ``FloatTensor`` & co: calling one makes a tensor, ``isinstance`` checks dtype and device."""

    def __call__(cls, *args, device=None):
        device = backend.as_device(device) if device is not None else cls.device_kind()
        if len(args) == 1 and isinstance(args[0], Tensor):
            source = args[0]
            if source.dtype != cls.dtype or source.device.type != device.type:
                raise TypeError(f"expected {cls.type_name} (got {source.type()})")
            return Tensor(source.array)
        if not args or all(isinstance(a, int) and not isinstance(a, bool) for a in args):
            return creation.zeros(*(args or (0,)), dtype=cls.dtype, device=device)
        if len(args) > 1:
            raise TypeError(f"{cls.__name__}(): expected sizes or one sequence, got {args!r}")
        data = args[0]
        if isinstance(data, (float, bool)):
            raise TypeError(f"new(): data must be a sequence (got {type(data).__name__})")
        return creation.tensor(data, dtype=cls.dtype, device=device)

    def __instancecheck__(cls, obj) -> bool:
        return isinstance(obj, Tensor) and obj.dtype == cls.dtype and obj.device.type == cls.kind

    def device_kind(cls) -> backend.Device:
        return backend.CPU if cls.kind == "cpu" else backend.Device("cuda")

    def __repr__(cls) -> str:
        return f"<class '{cls.type_name}'>"


def legacy_types(kind: str) -> dict:
    """The typed constructors for device type ``kind`` (``'cpu'`` or ``'cuda'``), by name."""
    prefix = "distgrad." if kind == "cpu" else "distgrad.cuda."
    return {name: LegacyTensorType(name, (), {"dtype": dtype, "kind": kind, "type_name": prefix + name})
            for dtype, name in TYPE_NAMES.items()}


globals().update(legacy_types("cpu"))


# --- the new_* methods ----------------------------------------------------------------------------
def _like(self: Tensor, dtype, device) -> dict:
    return {"dtype": dtypes.to_dtype(dtype) or self.dtype, "device": device if device is not None else self.device}


def new_zeros(self: Tensor, *size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Zeros of ``size``, with this tensor's dtype and device unless given."""
    return creation.zeros(*size, **_like(self, dtype, device), requires_grad=requires_grad)


def new_ones(self: Tensor, *size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return creation.ones(*size, **_like(self, dtype, device), requires_grad=requires_grad)


def new_empty(self: Tensor, *size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return creation.empty(*size, **_like(self, dtype, device), requires_grad=requires_grad)


def new_full(self: Tensor, size, fill_value, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return creation.full(size, fill_value, **_like(self, dtype, device), requires_grad=requires_grad)


def new_tensor(self: Tensor, data, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A copy of ``data`` with this tensor's dtype and device unless given (PyTorch's rule: not inferred)."""
    return creation.tensor(data, **_like(self, dtype, device), requires_grad=requires_grad)


def new(self: Tensor, *args) -> Tensor:
    """The legacy ``x.new(...)``: ``Tensor(...)``'s arguments (sizes or data) with this tensor's dtype and device."""
    if not args or all(isinstance(a, int) and not isinstance(a, bool) for a in args):
        return creation.zeros(*(args or (0,)), dtype=self.dtype, device=self.device)
    if len(args) == 1 and isinstance(args[0], Tensor):
        return Tensor(args[0].array)
    return creation.tensor(args[0], dtype=self.dtype, device=self.device)


bind_methods(new_zeros=new_zeros, new_ones=new_ones, new_empty=new_empty, new_full=new_full, new_tensor=new_tensor,
             new=new)
