"""``vjp``, ``jvp``, ``jacobian``, ``hessian`` of a Python function of tensors, built on ``grad``."""
from __future__ import annotations

from distgrad.autograd.grad import grad
from distgrad.autograd.grad_mode import enable_grad
from distgrad.tensor import Tensor


def _as_tuple(x):
    return (x,) if isinstance(x, Tensor) else tuple(x), isinstance(x, Tensor)


def _prepare(inputs, create_graph: bool):
    """Fresh leaves standing for ``inputs`` (attached to the graph only with ``create_graph``)."""
    return tuple(x if create_graph and x.requires_grad else x.detach().requires_grad_() for x in inputs)


def _zeros_for(t):
    return Tensor(t._xp.zeros_like(t.array))


def _grads(outputs, inputs, grad_outputs, create_graph):
    gs = grad(outputs, inputs, grad_outputs, retain_graph=True, create_graph=create_graph, allow_unused=True)
    return tuple(_zeros_for(x) if g is None else g for x, g in zip(inputs, gs))


def _stack(rows):
    """The rows stacked along a new first axis, recorded when they require grad (written with
    indexed assignment, so that the engine needs nothing of ``distgrad.ops``)."""
    first = rows[0]
    out = Tensor(first._xp.zeros((len(rows),) + first.shape, first.dtype))
    for i, row in enumerate(rows):
        out[i] = row
    return out


def vjp(func, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """``(func(inputs), v^T J)``: the vector-Jacobian product at ``inputs``."""
    inputs, single_in = _as_tuple(inputs)
    with enable_grad():
        xs = _prepare(inputs, create_graph)
        outputs, single_out = _as_tuple(func(*xs))
        vs = None if v is None else _as_tuple(v)[0]
        result = _grads(outputs, xs, vs, create_graph)
    outputs = tuple(o if create_graph else o.detach() for o in outputs)
    return (outputs[0] if single_out else outputs), (result[0] if single_in else result)


def jvp(func, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """``(func(inputs), J v)``: the Jacobian-vector product, by differentiating a vjp (double backward)."""
    inputs, single_in = _as_tuple(inputs)
    with enable_grad():
        xs = _prepare(inputs, create_graph)
        outputs, single_out = _as_tuple(func(*xs))
        if v is None:
            if any(x.numel() != 1 for x in xs):
                raise RuntimeError("jvp: v can only be omitted when every input has a single element")
            vs = tuple(x.detach() * 0 + 1 for x in xs)
        else:
            vs = _as_tuple(v)[0]
        dummies = tuple(_zeros_for(o).requires_grad_() for o in outputs)
        g = _grads(outputs, xs, dummies, create_graph=True)
        result = grad(g, dummies, vs, create_graph=create_graph, allow_unused=True)
        result = tuple(_zeros_for(o) if r is None else r for o, r in zip(outputs, result))
    outputs = tuple(o if create_graph else o.detach() for o in outputs)
    return (outputs[0] if single_out else outputs), (result[0] if single_out else result)


def jacobian(func, inputs, create_graph: bool = False, strict: bool = False, vectorize: bool = False):
    """d func / d inputs, shaped ``output.shape + input.shape`` (nested tuples for several of either)."""
    inputs, single_in = _as_tuple(inputs)
    with enable_grad():
        xs = _prepare(inputs, create_graph)
        outputs, single_out = _as_tuple(func(*xs))
        table = []
        for out in outputs:
            rows = [[] for _ in xs]
            flat = out.reshape(-1)
            for j in range(flat.numel()):
                gs = _grads(flat[j], xs, None, create_graph)
                for k, g in enumerate(gs):
                    rows[k].append(g)
            table.append(tuple(
                (_stack(r).reshape(out.shape + x.shape) if r else _zeros_for(x).reshape((0,) + x.shape)
                 if out.numel() == 0 else None)
                for r, x in zip(rows, xs)))
    if single_out and single_in:
        return table[0][0]
    if single_out:
        return table[0]
    if single_in:
        return tuple(row[0] for row in table)
    return tuple(table)


def hessian(func, inputs, create_graph: bool = False, strict: bool = False, vectorize: bool = False):
    """Second derivatives of a scalar ``func``: shape ``input.shape + input.shape``."""
    inputs, single_in = _as_tuple(inputs)

    def gradient(*xs):
        out = func(*xs)
        if out.numel() != 1:
            raise RuntimeError(f"hessian: func must return a single-element tensor, got shape {list(out.shape)}")
        gs = _grads(out, xs, None, create_graph=True)
        return gs[0] if single_in else gs

    return jacobian(gradient, inputs[0] if single_in else inputs, create_graph=create_graph)
