"""``Tensor``: an array (NumPy or CuPy) with the autograd fields ``grad``, ``requires_grad``, ``grad_fn``.

This module sits below the engine and the ops and imports neither: the autograd methods
(``backward``, hooks, ``retain_grad``) are bound by ``distgrad/autograd/tensor_methods.py``, and each
op family in ``distgrad/ops/`` binds its own methods and operators.
"""
from __future__ import annotations

import numpy as np

from distgrad import backend
from distgrad.dtypes import FLOATING, bfloat16, float32


class Tensor:
    __slots__ = ("array", "grad", "requires_grad", "grad_fn", "output_nr", "_version", "_hooks",
                 "_post_accumulate_grad_hooks", "_accumulator", "__weakref__")
    __array_priority__ = 1000  # NumPy scalars on the left defer to Tensor's reflected operators
    __array_ufunc__ = None

    def __init__(self, data=None, *sizes, requires_grad: bool = False):
        """``Tensor(array)`` wraps a NumPy or CuPy array without a copy (the engine's constructor).

        Other arguments follow ``torch.Tensor``: ``Tensor([[1, 2], [3, 4]])`` copies Python data into
        a tensor of the default float dtype, ``Tensor(2, 3)`` makes one of that size (zero-filled here,
        uninitialised in PyTorch), ``Tensor()`` an empty one, ``Tensor(t)`` shares ``t``'s storage.
        Unlike ``torch.Tensor``, an array keeps its dtype: use ``dg.tensor`` or ``dg.FloatTensor`` to convert.
        """
        if data.__class__ is not np.ndarray and not backend.is_device_array(data):
            data = _array_from_arguments(data, sizes)
        elif sizes:
            raise TypeError(f"Tensor(): expected an array alone or sizes alone, got an array and {sizes}")
        self.array = data
        self.grad = None
        self.requires_grad = requires_grad
        self.grad_fn = None
        self.output_nr = 0
        self._version = [0]  # a box shared with views, so writes through a view are seen
        self._hooks = None
        self._post_accumulate_grad_hooks = None
        self._accumulator = None

    # --- what it is ----------------------------------------------------------------------------
    @property
    def data(self) -> "Tensor":
        """This tensor's storage as a new tensor outside the graph, as in PyTorch: writes to it are
        seen by this tensor but not by autograd (its version counter is its own, unlike ``detach``)."""
        return Tensor(self.array)

    @data.setter
    def data(self, value: "Tensor") -> None:
        if not isinstance(value, Tensor):
            raise TypeError(f"Tensor.data must be set to a Tensor, got {type(value).__name__}")
        self.array = value.array

    @property
    def shape(self) -> tuple:
        return self.array.shape

    @property
    def dtype(self):
        return self.array.dtype

    @property
    def device(self) -> backend.Device:
        return backend.device_of(self.array)

    @property
    def is_cuda(self) -> bool:
        return backend.is_device_array(self.array)

    @property
    def is_cpu(self) -> bool:
        return not backend.is_device_array(self.array)

    # Devices and layouts distgrad does not have; PyTorch scripts test for them.
    is_xpu = is_mps = is_meta = is_sparse = is_quantized = False

    @property
    def _xp(self):
        return backend.array_module(self.array)

    @property
    def ndim(self) -> int:
        return self.array.ndim

    def dim(self) -> int:
        return self.array.ndim

    def size(self, dim: int | None = None):
        return self.array.shape if dim is None else self.array.shape[dim]

    def numel(self) -> int:
        return int(self.array.size)

    nelement = numel

    def ndimension(self) -> int:
        return self.array.ndim

    def element_size(self) -> int:
        return self.array.dtype.itemsize

    def is_floating_point(self) -> bool:
        return self.array.dtype in FLOATING

    def is_complex(self) -> bool:
        return self.array.dtype.kind == "c"

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    def __len__(self) -> int:
        if self.array.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.array.shape[0]

    def __iter__(self):
        if self.array.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.array.shape[0]))

    __hash__ = object.__hash__

    # --- leaving distgrad ------------------------------------------------------------------------
    def numpy(self) -> np.ndarray:
        """The host array, sharing memory (CPU tensors that do not require grad only)."""
        if self.requires_grad:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead.")
        if backend.is_device_array(self.array):
            raise TypeError(f"can't convert {self.device} device type tensor to numpy. "
                            "Use Tensor.cpu() to copy the tensor to host memory first.")
        return self.array

    def item(self):
        if self.array.size != 1:
            raise RuntimeError(f"a Tensor with {self.array.size} elements cannot be converted to Scalar")
        backend.check_host_sync("Tensor.item()", self.array)
        return self.array.item()

    def tolist(self):
        backend.check_host_sync("Tensor.tolist()", self.array)
        return self.array.tolist()

    def __bool__(self) -> bool:
        if self.array.size != 1:
            raise RuntimeError(f"Boolean value of Tensor with {self.array.size} values is ambiguous")
        backend.check_host_sync("bool(Tensor)", self.array)
        return bool(self.array.item())

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if self.array.dtype.kind not in "iub" or self.array.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self.item())

    def __dlpack__(self, *args, **kwargs):
        return backend.to_dlpack(self.array, *args, **kwargs)

    def __dlpack_device__(self):
        return self.array.__dlpack_device__()

    # --- autograd --------------------------------------------------------------------------------
    def detach(self) -> "Tensor":
        """The same data, outside the graph (shares memory and the version counter)."""
        t = Tensor(self.array)
        t._version = self._version
        return t

    def detach_(self) -> "Tensor":
        self.grad_fn = None
        self.requires_grad = False
        return self

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        if requires_grad and self.array.dtype not in FLOATING:
            raise RuntimeError(f"only Tensors of floating point dtype can require gradients, got {self.array.dtype.name}")
        if not requires_grad and self.grad_fn is not None:
            raise RuntimeError("you can only change requires_grad flags of leaf variables. If you want to use a "
                               "computed variable in a subgraph that doesn't require differentiation use "
                               "var_no_grad = var.detach().")
        self.requires_grad = requires_grad
        return self

    # --- printing --------------------------------------------------------------------------------
    def __format__(self, format_spec: str) -> str:
        """A 0-d tensor formats as its number (``f"{loss:.4f}"``); others as ``str`` with an empty spec.

        As in PyTorch, a format spec on a tensor with dimensions raises TypeError. (PyTorch also
        refuses one on a 0-d ``Parameter``; distgrad formats it as its number.)
        """
        if self.array.ndim == 0:
            return self.item().__format__(format_spec)
        return object.__format__(self, format_spec)

    def __repr__(self) -> str:
        from distgrad.dtypes import get_default_dtype

        backend.check_host_sync("printing a Tensor", self.array)
        data = backend.to_device(self.array, backend.CPU)
        if data.dtype == bfloat16:  # NumPy prints ml_dtypes' scalars without the precision argument
            data = data.astype(float32)
        body = np.array2string(data, separator=", ", precision=4, prefix="tensor(",
                               threshold=1000, edgeitems=3)
        extras = []
        if self.array.dtype in FLOATING and self.array.dtype != get_default_dtype() or \
                self.array.dtype not in FLOATING and self.array.dtype.kind != "b" and self.array.dtype != np.int64:
            extras.append(f"dtype=distgrad.{self.array.dtype.name}")
        if self.array.size == 0:
            extras.append(f"size={tuple(self.shape)}")
        if backend.is_device_array(self.array):
            extras.append(f"device='{self.device}'")
        if self.grad_fn is not None:
            extras.append(f"grad_fn={self.grad_fn!r}")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + ", ".join([body] + extras) + ")"


def _array_from_arguments(data, sizes: tuple):
    """The array that ``Tensor(data, *sizes)`` holds when ``data`` is not an array (see ``Tensor.__init__``)."""
    from distgrad.dtypes import get_default_dtype  # dtypes imports nothing of distgrad; no cycle

    def on_default_device(array):
        device = backend.default_device()
        return array if device.type == "cpu" else backend.to_device(array, device)

    if sizes and not all(isinstance(n, int) and not isinstance(n, bool) for n in (data, *sizes)):
        raise TypeError(f"Tensor(): sizes must all be integers, got {(data, *sizes)}")
    if data is None:
        return on_default_device(np.empty(0, get_default_dtype()))
    if isinstance(data, Tensor):
        return data.array
    if isinstance(data, (np.ndarray, np.generic)):  # a subclass of ndarray, or a NumPy scalar: kept as it is
        return np.asarray(data)
    if isinstance(data, int) and not isinstance(data, bool):
        shape = (data, *sizes)
        if min(shape) < 0:
            raise ValueError(f"Tensor(): sizes must be non-negative integers, got {list(shape)}")
        return on_default_device(np.zeros(shape, get_default_dtype()))
    if not hasattr(data, "__len__") or isinstance(data, (str, bytes)):
        raise TypeError(f"new(): data must be a sequence (got {type(data).__name__})")
    return on_default_device(np.array(_host_values(data), dtype=get_default_dtype()))


def _host_values(data):
    """Nested sequences with every Tensor in them replaced by its values on the host."""
    if isinstance(data, Tensor):
        return backend.to_device(data.array, backend.CPU)
    if isinstance(data, (list, tuple)):
        return [_host_values(d) for d in data]
    return data


def is_tensor(obj) -> bool:
    """True when ``obj`` is a distgrad Tensor (a Parameter included)."""
    return isinstance(obj, Tensor)


def numel(input: Tensor) -> int:
    """The number of elements of ``input``."""
    return input.numel()


def is_floating_point(input: Tensor) -> bool:
    return input.is_floating_point()


def bind_methods(**methods) -> None:
    """Attaches ops to ``Tensor`` as methods or operators (each op family calls this for its own)."""
    for name, fn in methods.items():
        setattr(Tensor, name, fn)
