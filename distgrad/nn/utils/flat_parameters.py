"""``flatten_parameters``: parameters and gradients as views into one contiguous buffer per dtype and device.

After ``flatten_parameters(model)`` every parameter that requires grad keeps its identity (optimizers and
DDP holding it stay valid) but its array is a view into one 1-D buffer per (dtype, device), laid out in
``model.parameters()`` order, and its ``.grad`` is a view into a second buffer of the same layout,
preallocated (zeros, or the gradient it had). Backward adds into an existing ``.grad`` in place, so the
gradients land in the flat buffer without a copy, and the foreach optimizers (``SGD``/``Adam``/``AdamW``
with ``foreach`` or ``fused`` left at None or set) update the whole buffer in a few array operations
instead of a few per parameter (``distgrad/optim/foreach.py``).

Layout: ``FlatParameters.offsets[i]:offsets[i+1]`` of ``data`` and ``grad`` hold parameter ``i``, flattened
in C order. The buffer is used only while it is *intact*: each parameter's array and gradient are still
the views handed out. Whatever replaces them (``module.to(dtype or other device)``, ``vector_to_parameters``,
``p.grad = other``) makes the optimizers fall back to gathering (still correct); call
``flatten_parameters`` again to get a flat buffer back. ``module.to()`` to the dtype and device the
parameters already have keeps the views.

Gradients: ``zero_grad(set_to_none=False)`` (module's or optimizer's) zeroes the views in place and keeps
them. ``zero_grad()`` (``set_to_none=True``, the default) drops them; the next backward stores a fresh
gradient, and a post-accumulate hook copies it into its view and puts the view back as ``.grad`` (one copy
per parameter per such step, as PyTorch's DDP does with ``gradient_as_bucket_view``). Like
``set_to_none=False``, a preallocated gradient means an unused parameter is stepped with a zero gradient
(weight decay and momentum still move it) where a None gradient would be skipped.
"""
from __future__ import annotations

import weakref

from distgrad import backend
from distgrad.tensor import Tensor

__all__ = ["FlatParameters", "flatten_parameters"]

# id(parameter) -> (weak reference to it, its FlatParameters, its index there). Keyed by id, as Tensor's ``==``
# is elementwise (a WeakKeyDictionary would compare keys); weak, so dropping a model frees its buffers.
_SLOTS: dict = {}


def _slot(param: Tensor):
    entry = _SLOTS.get(id(param))
    return entry[1:] if entry is not None and entry[0]() is param else None


class FlatParameters:
    """The flat ``data`` and ``grad`` buffers (1-D Tensors) of parameters of one dtype and device.

    Attributes: ``data``, ``grad`` (Tensors sharing the parameters' and gradients' storage), ``offsets``
    (``len(shapes) + 1`` element offsets), ``shapes``.
    """

    def __init__(self, params: list):
        xp = backend.array_module(params[0].array)
        self.shapes = [tuple(p.shape) for p in params]
        self.offsets = [0]
        for p in params:
            self.offsets.append(self.offsets[-1] + p.numel())
        data = xp.empty(self.offsets[-1], dtype=params[0].array.dtype)
        grad = xp.zeros_like(data)
        self.data, self.grad = Tensor(data), Tensor(grad)
        self._param_views, self._grad_tensors = [], []
        for i, p in enumerate(params):
            start, end = self.offsets[i], self.offsets[i + 1]
            view = data[start:end].reshape(self.shapes[i])
            view[...] = p.array
            grad_view = Tensor(grad[start:end].reshape(self.shapes[i]))
            if p.grad is not None:
                grad_view.array[...] = p.grad.array
            p.array, p.grad = view, grad_view
            self._param_views.append(view)
            self._grad_tensors.append(grad_view)
            key = id(p)
            _SLOTS[key] = (weakref.ref(p, lambda _, key=key: _SLOTS.pop(key, None)), self, i)
            p.register_post_accumulate_grad_hook(self._restoring_grad_view(i))

    def __len__(self) -> int:
        return len(self.shapes)

    def is_intact(self, index: int, param: Tensor) -> bool:
        """Whether ``param`` (parameter ``index``) still holds its views of ``data`` and ``grad``."""
        grad = param.grad
        return (param.array is self._param_views[index] and grad is not None
                and grad.array is self._grad_tensors[index].array)

    def _restoring_grad_view(self, index: int):
        """The post-accumulate hook that puts a fresh gradient (after ``zero_grad()``) back into its view."""
        def restore(param):
            grad, view = param.grad, self._grad_tensors[index]
            if (grad is view or grad is None or grad.requires_grad or param.array is not self._param_views[index]
                    or grad.array.dtype != view.array.dtype):
                return  # already the view, a gradient with history, or a buffer no longer in use
            view.array[...] = grad.array
            param.grad = view
        return restore


def flatten_parameters(module_or_parameters) -> list[FlatParameters]:
    """Makes the parameters (of a ``Module``, or an iterable of them) that require grad views into one flat
    buffer per (dtype, device), and their gradients views into a flat gradient buffer; returns the buffers.

    Values are unchanged; frozen parameters are left alone. See the module docstring for what keeps the
    views and what the optimizers do with them. Flatten before wrapping the model in DDP.
    """
    params = module_or_parameters.parameters() if hasattr(module_or_parameters, "parameters") \
        else module_or_parameters
    groups: dict = {}
    seen = set()
    for p in params:
        if not isinstance(p, Tensor):
            raise TypeError(f"flatten_parameters expects Tensors, but got {type(p).__name__}")
        if not p.requires_grad or id(p) in seen:
            continue
        if not p.is_leaf:
            raise ValueError("flatten_parameters: can't flatten a non-leaf Tensor")
        seen.add(id(p))
        groups.setdefault((p.array.dtype, p.device), []).append(p)
    return [FlatParameters(group) for group in groups.values()]


def is_flattened(param: Tensor) -> bool:
    """Whether ``param`` was made a view into a flat buffer (intact or not)."""
    return _slot(param) is not None


def flat_run(params: list):
    """``(data, grad)``: the slices of one flat buffer that hold exactly ``params``, consecutive and in order,
    all intact; None when they do not (not flattened, split across buffers, out of order, replaced)."""
    entry = _slot(params[0])
    if entry is None:
        return None
    buffer, first = entry
    if first + len(params) > len(buffer):
        return None
    for index, p in enumerate(params, first):
        if not buffer.is_intact(index, p):
            return None
    start, end = buffer.offsets[first], buffer.offsets[first + len(params)]
    return buffer.data.array[start:end], buffer.grad.array[start:end]
