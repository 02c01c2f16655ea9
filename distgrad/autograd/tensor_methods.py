"""The autograd methods of ``Tensor``: ``backward``, gradient hooks and ``retain_grad``.

They are bound here rather than defined in ``tensor.py`` because the tensor sits below the engine:
``tensor.py`` imports nothing of ``autograd/``, and the engine knows tensors only by protocol.
"""
from __future__ import annotations

import weakref

from distgrad.autograd.grad import backward as _backward
from distgrad.autograd.hooks import add_hook
from distgrad.tensor import Tensor, bind_methods


def backward(self, gradient=None, retain_graph=None, create_graph: bool = False, inputs=None) -> None:
    """Accumulates d(self)/d(leaf) into every leaf's ``.grad`` (or only those in ``inputs``)."""
    _backward(self, gradient, retain_graph, create_graph, inputs)


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
    ref = weakref.ref(self)  # the hook lives on the node, which must not keep its output alive

    def keep(grad):
        t = ref()
        if t is not None:
            copy = Tensor(grad.array.copy())
            t.grad = copy if t.grad is None else t.grad + copy
    self.grad_fn.register_prehook(keep, self.output_nr)


bind_methods(backward=backward, register_hook=register_hook,
             register_post_accumulate_grad_hook=register_post_accumulate_grad_hook, retain_grad=retain_grad)
