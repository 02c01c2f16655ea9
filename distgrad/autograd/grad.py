"""``autograd.grad`` and ``autograd.backward``: the functional entry points of the engine."""
from __future__ import annotations

from distgrad.autograd.engine import run_backward
from distgrad.tensor import Tensor


def _as_list(x) -> list:
    if x is None:
        return []
    return [x] if isinstance(x, Tensor) else list(x)


def _root_grads(outputs, grad_outputs) -> list:
    grad_outputs = _as_list(grad_outputs) if grad_outputs is not None else [None] * len(outputs)
    if len(grad_outputs) != len(outputs):
        raise RuntimeError(f"grad requires one grad_output per output: got {len(grad_outputs)} for {len(outputs)} outputs")
    grads = []
    for i, (out, g) in enumerate(zip(outputs, grad_outputs)):
        if g is None:
            if out.numel() != 1:
                raise RuntimeError("grad can be implicitly created only for scalar outputs")
            g = Tensor(out._xp.ones_like(out.array))
        elif not isinstance(g, Tensor):
            raise TypeError(f"gradient must be a Tensor, got {type(g).__name__}")
        elif g.shape != out.shape:
            raise RuntimeError(f"Mismatch in shape: grad_output[{i}] has a shape of {list(g.shape)} and "
                               f"output[{i}] has a shape of {list(out.shape)}.")
        grads.append(g)
    return grads


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph: bool = False,
         allow_unused: bool = False, materialize_grads: bool = False):
    """The gradients of ``outputs`` with respect to ``inputs``, returned (``.grad`` is left alone)."""
    outputs, inputs_list = _as_list(outputs), _as_list(inputs)
    if retain_graph is None:
        retain_graph = create_graph
    grads = run_backward(outputs, _root_grads(outputs, grad_outputs), retain_graph, create_graph,
                         inputs=inputs_list, accumulate=False)
    result = []
    for i, (t, g) in enumerate(zip(inputs_list, grads)):
        if g is None:
            if materialize_grads:
                g = Tensor(t._xp.zeros_like(t.array))
            elif not allow_unused:
                raise RuntimeError(f"One of the differentiated Tensors (input {i}, shape {list(t.shape)}) appears "
                                   "to not have been used in the graph. Set allow_unused=True if this is the "
                                   "desired behavior.")
        result.append(g)
    return tuple(result)


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph: bool = False, inputs=None) -> None:
    """Accumulates the gradients of ``tensors`` into the leaves' ``.grad`` (only into ``inputs``,
    leaves or not, when given). ``Tensor.backward`` is this for one tensor."""
    tensors = _as_list(tensors)
    if inputs is not None:
        inputs = _as_list(inputs)
        if not inputs:
            raise RuntimeError("'inputs' argument to backward() cannot be empty.")
    if retain_graph is None:
        retain_graph = create_graph
    captured = run_backward(tensors, _root_grads(tensors, grad_tensors), retain_graph, create_graph, inputs=inputs)
    for t, g in zip(inputs or (), captured or ()):
        if t.grad_fn is not None and g is not None:  # leaves were accumulated by the engine
            t.grad = g if t.grad is None else t.grad + g
