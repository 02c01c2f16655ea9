"""``autograd.grad`` and ``autograd.backward``: the functional entry points of the engine."""
from __future__ import annotations

from distgrad.autograd.engine import run_backward


def _as_list(x) -> list:
    from distgrad.tensor import Tensor
    if x is None:
        return []
    return [x] if isinstance(x, Tensor) else list(x)


def _root_grads(outputs, grad_outputs) -> list:
    from distgrad.tensor import Tensor
    grad_outputs = _as_list(grad_outputs) if grad_outputs is not None else [None] * len(outputs)
    if len(grad_outputs) != len(outputs):
        raise RuntimeError(f"grad requires one grad_output per output: got {len(grad_outputs)} for {len(outputs)} outputs")
    grads = []
    for i, (out, g) in enumerate(zip(outputs, grad_outputs)):
        if g is None:
            if out.numel() != 1:
                raise RuntimeError("grad can be implicitly created only for scalar outputs")
            g = Tensor(out._xp.ones_like(out.array))
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
                from distgrad.tensor import Tensor
                g = Tensor(t._xp.zeros_like(t.array))
            elif not allow_unused:
                raise RuntimeError(f"One of the differentiated Tensors (input {i}, shape {list(t.shape)}) appears "
                                   "to not have been used in the graph. Set allow_unused=True if this is the "
                                   "desired behavior.")
        result.append(g)
    return tuple(result)


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph: bool = False, inputs=None) -> None:
    """Like ``Tensor.backward`` for several roots at once."""
    tensors = _as_list(tensors)
    if retain_graph is None:
        retain_graph = create_graph
    run_backward(tensors, _root_grads(tensors, grad_tensors), retain_graph, create_graph,
                 inputs=_as_list(inputs) or None)
