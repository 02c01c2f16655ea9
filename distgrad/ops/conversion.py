"""Moving and casting: ``Tensor.to`` with PyTorch's overloads, and ``cpu cuda float double half long int bool
byte type type_as``.

``to`` is differentiable: the gradient goes back converted to the input's dtype and device (outputs of an
integer or bool dtype do not require grad). When nothing changes and ``copy=False``, it returns ``self``.
"""
from __future__ import annotations

import functools

import numpy as np

from distgrad import backend, dtypes
from distgrad.autograd.function import Function
from distgrad.tensor import Tensor, bind_methods

__all__ = []  # conversions are Tensor methods only, as in PyTorch


class ToCopy(Function):
    """A copy of ``x`` with ``dtype`` on ``device``."""

    @staticmethod
    def forward(ctx, x, dtype, device):
        ctx.in_dtype, ctx.in_device = x.dtype, x.device
        data = x.array
        if device != x.device:
            data = backend.to_device(data, device)
            return data.astype(dtype, copy=False)
        return data.astype(dtype, copy=True)

    @staticmethod
    def backward(ctx, grad):
        return to(grad, device=ctx.in_device, dtype=ctx.in_dtype), None, None


def _is_device(arg) -> bool:
    return isinstance(arg, (str, backend.Device)) or isinstance(arg, int) and not isinstance(arg, bool)


def _is_dtype(arg) -> bool:
    return isinstance(arg, np.dtype) or isinstance(arg, type) and (issubclass(arg, np.generic) or arg in (float, bool))


def parse_to(*args, dtype=None, device=None, non_blocking: bool = False, copy: bool = False,
             memory_format=None) -> tuple:
    """``(device, dtype, copy)`` from the arguments of ``Tensor.to`` (and ``Module.to``); None: unchanged.

    The forms are PyTorch's: ``(dtype)``, ``(device)``, ``(device, dtype)``, ``(other)``, each with
    optional ``non_blocking`` and ``copy``; a device is a string, a GPU index or a ``distgrad.device``.
    """
    rest = list(args)
    if rest and isinstance(rest[0], Tensor):
        other = rest.pop(0)
        dtype, device = other.dtype, other.device
    else:
        if rest and _is_device(rest[0]):
            device = rest.pop(0)
        if rest and _is_dtype(rest[0]):
            dtype = rest.pop(0)
    if rest and isinstance(rest[0], bool):
        rest.pop(0)  # non_blocking: ignored, copies are synchronous
    if rest and isinstance(rest[0], bool):
        copy = rest.pop(0)
    if rest:
        raise TypeError(f"to() received an invalid combination of arguments: got {args!r}; expected "
                        "(dtype), (device, dtype), (Tensor other) with optional non_blocking and copy")
    return (None if device is None else backend.as_device(device)), dtypes.to_dtype(dtype), copy


def to(self: Tensor, *args, **kwargs) -> Tensor:
    """``to(dtype)``, ``to(device)``, ``to(device, dtype)``, ``to(other)`` or keywords, as in PyTorch.

    ``non_blocking`` and ``memory_format`` are accepted for compatibility and have no effect.
    """
    device, dtype, copy = parse_to(*args, **kwargs)
    dtype = self.dtype if dtype is None else dtype
    device = self.device if device is None else device
    if dtype == self.dtype and device == self.device and not copy:
        return self
    return ToCopy.apply(self, dtype, device)


def computes_in_float32(fn):
    """``fn`` with its float16/bfloat16 Tensor arguments converted to float32 and its Tensor result
    rounded back to their dtype: what PyTorch's CPU kernels do inside ops that reduce (losses), here
    as two differentiable casts around the op, so its gradients come back in the 16-bit dtype."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        low = next((a.dtype for a in (*args, *kwargs.values())
                    if isinstance(a, Tensor) and a.dtype in dtypes.LOW_PRECISION), None)
        if low is None:
            return fn(*args, **kwargs)
        up = [to(a, dtype=dtypes.float32) if isinstance(a, Tensor) and a.dtype == low else a for a in args]
        kw = {k: to(v, dtype=dtypes.float32) if isinstance(v, Tensor) and v.dtype == low else v
              for k, v in kwargs.items()}
        return to(fn(*up, **kw), dtype=low)
    return wrapper


def cpu(self: Tensor, memory_format=None) -> Tensor:
    """This tensor in host memory (``self`` when it is there already)."""
    return to(self, device=backend.CPU)


def cuda(self: Tensor, device=None, non_blocking: bool = False, memory_format=None) -> Tensor:
    """This tensor on a GPU: ``device`` (an index, ``'cuda:N'`` or a device), by default the current one."""
    return to(self, device="cuda" if device is None else device)


TYPE_NAMES = {
    np.dtype(np.float32): "FloatTensor", np.dtype(np.float64): "DoubleTensor", np.dtype(np.float16): "HalfTensor",
    dtypes.bfloat16: "BFloat16Tensor",
    np.dtype(np.int64): "LongTensor", np.dtype(np.int32): "IntTensor", np.dtype(np.int16): "ShortTensor",
    np.dtype(np.int8): "CharTensor", np.dtype(np.uint8): "ByteTensor", np.dtype(np.bool_): "BoolTensor",
}


def type_(self: Tensor, dtype=None, non_blocking: bool = False):
    """Without ``dtype``: the type name (``'distgrad.FloatTensor'``); with one: ``self.to(dtype)``.

    ``dtype`` may also be a typed constructor (``dg.cuda.DoubleTensor``) or its name
    (``'distgrad.cuda.DoubleTensor'``; ``torch.`` works too).
    """
    if dtype is None:
        name = TYPE_NAMES.get(self.dtype, self.dtype.name)
        return f"distgrad.cuda.{name}" if self.is_cuda else f"distgrad.{name}"
    if isinstance(dtype, type) and hasattr(dtype, "type_name"):  # dg.FloatTensor, dg.cuda.LongTensor ...
        dtype = dtype.type_name
    if isinstance(dtype, str):
        module, _, name = dtype.rpartition(".")
        by_name = {v: k for k, v in TYPE_NAMES.items()}
        if name not in by_name or module.split(".")[0] not in ("distgrad", "torch"):
            raise ValueError(f"invalid type: {dtype!r}")
        device = "cuda" if module.endswith(".cuda") else backend.CPU
        return to(self, device=device, dtype=by_name[name])
    return to(self, dtype=dtype)


def type_as(self: Tensor, other: Tensor) -> Tensor:
    """This tensor with ``other``'s dtype and device."""
    return to(self, device=other.device, dtype=other.dtype)


def _caster(name: str, dtype: np.dtype):
    def cast(self: Tensor, memory_format=None) -> Tensor:
        return to(self, dtype=dtype)
    cast.__name__ = name
    cast.__doc__ = f"``self.to({dtype.name})``."
    return cast


bind_methods(
    to=to, cpu=cpu, cuda=cuda, type=type_, type_as=type_as,
    **{name: _caster(name, np.dtype(dt)) for name, dt in [
        ("float", np.float32), ("double", np.float64), ("half", np.float16), ("bfloat16", dtypes.bfloat16),
        ("long", np.int64),
        ("int", np.int32), ("short", np.int16), ("char", np.int8), ("byte", np.uint8), ("bool", np.bool_)]},
)
