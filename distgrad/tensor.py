"""``Tensor``: an array (NumPy or CuPy) with the autograd fields ``grad``, ``requires_grad``, ``grad_fn``.

Ops are defined in ``distgrad/ops/``, each family binding its own methods and operators here.
"""
from __future__ import annotations

import numpy as np

from distgrad import backend
from distgrad.autograd.hooks import add_hook


class Tensor:
    __slots__ = ("array", "grad", "requires_grad", "grad_fn", "output_nr", "_version", "_hooks",
                 "_post_accumulate_grad_hooks", "_accumulator", "__weakref__")
    __array_priority__ = 1000  # NumPy scalars on the left defer to Tensor's reflected operators
    __array_ufunc__ = None

    def __init__(self, data, requires_grad: bool = False):
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

    def element_size(self) -> int:
        return self.array.dtype.itemsize

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
        return self.array.item()

    def tolist(self):
        return self.array.tolist()

    def __bool__(self) -> bool:
        if self.array.size != 1:
            raise RuntimeError(f"Boolean value of Tensor with {self.array.size} values is ambiguous")
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
        return self.array.__dlpack__(*args, **kwargs)

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
        if requires_grad and self.array.dtype.kind not in "fc":
            raise RuntimeError(f"only Tensors of floating point dtype can require gradients, got {self.array.dtype.name}")
        if not requires_grad and self.grad_fn is not None:
            raise RuntimeError("you can only change requires_grad flags of leaf variables. If you want to use a "
                               "computed variable in a subgraph that doesn't require differentiation use "
                               "var_no_grad = var.detach().")
        self.requires_grad = requires_grad
        return self

    def _grad_accumulator(self):
        if self._accumulator is None:
            from distgrad.autograd.function import AccumulateGrad
            self._accumulator = AccumulateGrad(self)
        return self._accumulator

    def register_hook(self, hook):
        """``hook(grad) -> Tensor | None`` runs when this tensor's gradient is computed; it may replace it."""
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        if self.grad_fn is not None:
            return self.grad_fn.register_prehook(hook, self.output_nr)
        if self._hooks is None:
            self._hooks = {}
        return add_hook(self._hooks, hook)

    def register_post_accumulate_grad_hook(self, hook):
        """``hook(tensor)`` runs once this leaf's ``.grad`` is final for the backward pass."""
        if self.grad_fn is not None:
            raise RuntimeError("post accumulate grad hooks cannot be registered on non-leaf tensors")
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        if self._post_accumulate_grad_hooks is None:
            self._post_accumulate_grad_hooks = {}
        return add_hook(self._post_accumulate_grad_hooks, hook)

    def retain_grad(self) -> None:
        """Keeps the gradient of this non-leaf tensor in ``.grad`` after backward."""
        if self.grad_fn is None:
            if not self.requires_grad:
                raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
            return
        import weakref
        ref = weakref.ref(self)

        def keep(grad):
            t = ref()
            if t is not None:
                copy = Tensor(grad.array.copy())
                t.grad = copy if t.grad is None else t.grad + copy
        self.grad_fn.register_prehook(keep, self.output_nr)

    def backward(self, gradient=None, retain_graph=None, create_graph: bool = False, inputs=None) -> None:
        """Accumulates d(self)/d(leaf) into every leaf's ``.grad`` (or only those in ``inputs``)."""
        from distgrad.autograd.engine import run_backward

        if gradient is None:
            if self.array.size != 1:
                raise RuntimeError("grad can be implicitly created only for scalar outputs")
            gradient = Tensor(self._xp.ones_like(self.array))
        elif not isinstance(gradient, Tensor):
            raise TypeError(f"gradient must be a Tensor, got {type(gradient).__name__}")
        elif gradient.shape != self.shape:
            raise RuntimeError(f"Mismatch in shape: grad_output[0] has a shape of {list(gradient.shape)} "
                               f"and output[0] has a shape of {list(self.shape)}.")
        if retain_graph is None:
            retain_graph = create_graph
        if isinstance(inputs, Tensor):
            inputs = [inputs]
        if inputs is not None and len(inputs) == 0:
            raise RuntimeError("'inputs' argument to backward() cannot be empty.")
        captured = run_backward([self], [gradient], retain_graph, create_graph, inputs=inputs)
        if inputs is not None:
            for t, g in zip(inputs, captured):
                if t.grad_fn is not None and g is not None:
                    t.grad = g if t.grad is None else t.grad + g

    # --- printing --------------------------------------------------------------------------------
    def __repr__(self) -> str:
        from distgrad.dtypes import get_default_dtype

        data = backend.to_device(self.array, backend.CPU)
        body = np.array2string(data, separator=", ", precision=4, prefix="tensor(",
                               threshold=1000, edgeitems=3)
        extras = []
        if self.array.dtype.kind == "f" and self.array.dtype != get_default_dtype() or \
                self.array.dtype.kind not in "fb" and self.array.dtype != np.int64:
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


def bind_methods(**methods) -> None:
    """Attaches ops to ``Tensor`` as methods or operators (each op family calls this for its own)."""
    for name, fn in methods.items():
        setattr(Tensor, name, fn)
