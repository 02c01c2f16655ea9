"""Recording a forward: every op the model calls, with its arguments, outputs and module path.

``record(model, args, kwargs)`` runs the model once with ``autograd.tracing``'s hook on: each
``Function.apply`` the model makes becomes one ``TracedOp`` (the op's class, its arguments as given,
its outputs, and the path of the module whose forward called it); the ops an op is built from
inside its own forward are not seen. Floating inputs are made to require grad, so that in-place
ops on intermediate results (``x += y``, ``relu(inplace=True)``) take their recorded form.

``Values`` then names what each op reads: the output of an earlier op (found through the tensor's
``grad_fn``, or its array, checked against the version counter noted when it was made), a graph
input, a parameter or buffer, or else a constant (a tensor the model made outside the tape, e.g.
``arange`` or a mask built on arrays); ``export`` checks constants against a second trace.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from distgrad import backend
from distgrad.autograd.grad_mode import enable_grad
from distgrad.autograd.tracing import run, tracing
from distgrad.dtypes import FLOATING
from distgrad.tensor import Tensor


class TracedOp(NamedTuple):
    """One op of a trace: ``op`` (the Function class) called with ``args``/``kwargs`` in module ``module``."""

    op: object  # the Function class, or the function of an op that has none (comparisons)
    args: tuple
    kwargs: dict
    outputs: tuple  # Tensors
    module: str  # "h.0.attn (CausalSelfAttention)", or "" for the model's own forward
    reads: tuple  # the ``state`` of every Tensor leaf of args, in ``leaves`` order, at the call
    made: tuple  # the ``state`` of every output when it was made


class Trace(NamedTuple):
    ops: list
    inputs: list  # the Tensors the model was given, flattened
    outputs: list  # the Tensors it returned, flattened
    input_tree: object  # args and kwargs with each Tensor replaced by its index in ``inputs``
    output_tree: object


def leaves(value):
    """The Tensors and arrays inside ``value`` (nested tuples, lists and dicts), depth first."""
    if isinstance(value, Tensor) or backend.is_device_array(value) or isinstance(value, np.ndarray):
        yield value
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from leaves(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from leaves(v)


class Slot(NamedTuple):
    """Where a flattened Tensor stood in a nested argument: its index in the flat list."""

    index: int


def _map(value, fn):
    """``value`` (nested tuples, lists and dicts) with each Tensor and ``Slot`` ``x`` replaced by ``fn(x)``."""
    if isinstance(value, (Tensor, Slot)):
        return fn(value)
    if isinstance(value, (tuple, list)):
        items = [_map(v, fn) for v in value]
        return type(value)(items) if type(value) in (tuple, list) else type(value)(*items)
    if isinstance(value, dict):
        return {k: _map(v, fn) for k, v in value.items()}
    return value


def flatten(value, found: list):
    """``value`` with each Tensor appended to ``found`` and replaced by its ``Slot``."""
    def take(t):
        found.append(t)
        return Slot(len(found) - 1)
    return _map(value, take)


def unflatten(tree, tensors: list):
    """The inverse of ``flatten``: each ``Slot`` replaced by its entry of ``tensors``."""
    return _map(tree, lambda slot: tensors[slot.index])


def slots(tree) -> list:
    """The indices of the ``Slot``s in ``tree``, in order."""
    found = []
    _map(tree, lambda slot: found.append(slot.index))
    return found


def _module_paths(model) -> dict:
    """{id(module): "path (ClassName)"} for every submodule of ``model`` (shared ones under their first name)."""
    named = getattr(model, "named_modules", None)
    if named is None:
        return {}
    return {id(m): f"{name} ({type(m).__name__})" if name else f"({type(m).__name__})" for name, m in named()}


def record(model, args: tuple, kwargs: dict) -> Trace:
    """Runs ``model(*args, **kwargs)`` once, recording every op it calls (see the module docstring)."""
    inputs = []
    input_tree = flatten((tuple(args), dict(kwargs)), inputs)
    given = [_as_input(t) for t in inputs]
    ops, stack = [], []
    paths = _module_paths(model)

    def hook(cls, op_args, op_kwargs):
        reads = tuple(state(t) for t in leaves((op_args, op_kwargs)) if isinstance(t, Tensor))
        out = run(cls, op_args, op_kwargs)
        outputs = out if isinstance(out, tuple) else (out,)
        ops.append(TracedOp(cls, op_args, op_kwargs, outputs, stack[-1] if stack else "", reads,
                            tuple(state(o) for o in outputs)))
        return out

    def enter(module, _args):
        stack.append(paths[id(module)])

    def leave(_module, _args, _output):
        stack.pop()

    handles = []
    for module in getattr(model, "modules", lambda: ())():
        handles += [module.register_forward_pre_hook(enter), module.register_forward_hook(leave)]
    try:
        call_args, call_kwargs = unflatten(input_tree, given)
        with enable_grad(), tracing(hook):
            result = model(*call_args, **call_kwargs)
    finally:
        for h in handles:
            h.remove()
    outputs = []
    output_tree = flatten(result, outputs)
    return Trace(ops, given, outputs, input_tree, output_tree)


def state(t: Tensor) -> tuple:
    """What names ``t``'s value now: its history (``grad_fn``, ``output_nr``; in-place ops replace them)
    and its version counter (the box and the number)."""
    return t.grad_fn, t.output_nr, t._version, t._version[0]


def _as_input(t: Tensor) -> Tensor:
    """A fresh leaf holding ``t``'s values; floating ones require grad (see the module docstring)."""
    leaf = Tensor(t.array.copy())
    if leaf.array.dtype in FLOATING:
        leaf.requires_grad = True
    return leaf
