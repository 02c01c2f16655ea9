"""The tape engine: runs recorded nodes backward in reverse recording order.

From the roots, a depth-first walk counts how many edges lead into each node. A node is ready when
every node that feeds it has run; ready nodes wait in a heap ordered by sequence number, highest
(most recently recorded) first. A leaf's ``AccumulateGrad`` has an infinite sequence number, so it
runs the moment it is ready: its ``.grad`` is final, and its post-accumulate hooks fire, while the
rest of backward is still running. That is the moment data-parallel training starts communicating.
"""
from __future__ import annotations

import heapq
import threading

from distgrad.autograd import anomaly_mode
from distgrad.autograd.function import AccumulateGrad
from distgrad.autograd.grad_mode import state as _grad_state

_local = threading.local()


def queue_callback(fn) -> None:
    """Runs ``fn()`` once the backward pass now running has finished all its nodes."""
    task = getattr(_local, "task", None)
    if task is None:
        raise RuntimeError("queue_callback can only be called during the backward pass")
    task.callbacks.append(fn)


class _GraphTask:
    __slots__ = ("callbacks", "stored_arrays", "create_graph")

    def __init__(self, create_graph: bool):
        self.callbacks = []
        self.stored_arrays = set()  # ids of arrays already handed to some .grad in this pass
        self.create_graph = create_graph


def root_edge(t):
    if t.grad_fn is not None:
        return t.grad_fn, t.output_nr
    if t.requires_grad:
        return t._grad_accumulator(), 0
    return None


def run_backward(roots, root_grads, retain_graph: bool, create_graph: bool, inputs=None,
                 accumulate: bool = True):
    """Backpropagates ``root_grads`` from ``roots``.

    With ``inputs`` given, only the parts of the graph leading to them run; with ``accumulate``
    False the gradients of ``inputs`` are returned instead of added to ``.grad``.
    """
    edges = []
    for i, t in enumerate(roots):
        edge = root_edge(t)
        if edge is None:
            raise RuntimeError(f"element {i} of tensors does not require grad and does not have a grad_fn")
        edges.append(edge)

    deps, parents = _count_dependencies([e[0] for e in edges], want_parents=inputs is not None)
    targets = executable = None
    captured = None
    if inputs is not None:
        targets = {}
        for i, t in enumerate(inputs):
            edge = root_edge(t)
            if edge is None:
                raise RuntimeError(f"input {i} of autograd.grad does not require grad")
            targets.setdefault(edge[0], []).append((edge[1], i))
        executable = _strict_ancestors(targets, parents)
        captured = [None] * len(inputs)

    task = _GraphTask(create_graph)
    for g in root_grads:
        task.stored_arrays.add(id(g.array))
    buffers = {}
    for (node, nr), g in zip(edges, root_grads):
        _add_to_buffer(buffers, node, nr, g)
    heap = []
    for node in buffers:
        if deps.get(node, 0) == 0:
            heap.append((-node.seq, id(node), node))
    heapq.heapify(heap)

    prev_task = getattr(_local, "task", None)
    _local.task = task
    prev_grad = _grad_state.enabled
    _grad_state.enabled = create_graph
    push, pop = heapq.heappush, heapq.heappop
    ready = None  # the one ready node when nothing else is: a chain of ops skips the heap
    try:
        while heap or ready is not None:
            if ready is not None:
                node, ready = ready, None
            else:
                node = pop(heap)[2]
            grads = buffers.pop(node)
            if node.pre_hooks:
                _run_pre_hooks(node.pre_hooks, grads)
            if targets is not None and node in targets:
                for nr, i in targets[node]:
                    captured[i] = grads[nr]
            if node.__class__ is AccumulateGrad:
                if accumulate and grads[0] is not None:
                    _accumulate(node.variable, grads[0], task)
                continue
            if executable is not None and node not in executable:
                continue
            if grads[0] is not None or any(g is not None for g in grads):
                try:
                    outs = node.run_backward(grads)
                except Exception as exc:
                    _add_forward_trace(node, exc)
                    raise
                if anomaly_mode.enabled:
                    _check_finite(node, outs)
                if not retain_graph:
                    node._saved = None
            else:
                outs = (None,) * len(node.next_functions)
            for edge, g in zip(node.next_functions, outs):
                if edge is None:
                    continue
                nxt, nr = edge
                buf = buffers.get(nxt)
                if buf is None:
                    buf = buffers[nxt] = [None] * nxt.num_outputs
                if g is not None:
                    old = buf[nr]
                    buf[nr] = g if old is None else old + g
                left = deps[nxt] - 1
                deps[nxt] = left
                if left == 0 and (executable is None or nxt in executable or nxt in targets):
                    if ready is None and not heap:
                        ready = nxt
                    else:
                        if ready is not None:
                            push(heap, (-ready.seq, id(ready), ready))
                            ready = None
                        push(heap, (-nxt.seq, id(nxt), nxt))
        _grad_state.enabled = prev_grad
        while task.callbacks:
            task.callbacks.pop(0)()
    finally:
        _grad_state.enabled = prev_grad
        _local.task = prev_task
    return captured


def _count_dependencies(start, want_parents: bool):
    deps = {}
    parents = {} if want_parents else None
    seen = set(start)
    stack = list(seen)
    while stack:
        node = stack.pop()
        for edge in node.next_functions:
            if edge is None:
                continue
            nxt = edge[0]
            deps[nxt] = deps.get(nxt, 0) + 1
            if want_parents:
                parents.setdefault(nxt, []).append(node)
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return deps, parents


def _strict_ancestors(targets, parents):
    found = set()
    stack = list(targets)
    while stack:
        for p in parents.get(stack.pop(), ()):
            if p not in found:
                found.add(p)
                stack.append(p)
    return found


def _add_to_buffer(buffers, node, nr, g):
    buf = buffers.get(node)
    if buf is None:
        buf = buffers[node] = [None] * node.num_outputs
    buf[nr] = g if buf[nr] is None else buf[nr] + g


def _run_pre_hooks(pre_hooks, grads):
    for nr, hooks in pre_hooks.items():
        g = grads[nr]
        if g is None:
            continue
        for fn in tuple(hooks.values()):
            replaced = fn(g)
            if replaced is not None:
                g = replaced
        grads[nr] = g


def _add_forward_trace(node, exc) -> None:
    trace = getattr(node, "forward_trace", None)
    if trace is not None:
        exc.add_note(f"The forward call of {node.name} that raised in backward:\n{trace}")


def _check_finite(node, outs):
    for i, g in enumerate(outs):
        if g is None:
            continue
        xp = g._xp
        if not bool(xp.isfinite(g.array).all()):
            kind = "nan" if bool(xp.isnan(g.array).any()) else "inf"
            trace = getattr(node, "forward_trace", "(recorded outside detect_anomaly)")
            raise RuntimeError(
                f"Function '{node.name}' returned {kind} values in its {i}th output.\n"
                f"Traceback of the forward call that recorded {node.name}:\n{trace}"
            )


def _accumulate(var, g, task):
    hooks = var._hooks
    if hooks:
        for fn in tuple(hooks.values()):
            replaced = fn(g)
            if replaced is not None:
                g = replaced
    if g.shape != var.shape:
        raise RuntimeError(
            f"gradient of shape {list(g.shape)} does not match the leaf's shape {list(var.shape)}"
        )
    if var.grad is None:
        if task.create_graph:
            var.grad = g
        else:
            data = g.array
            if id(data) in task.stored_arrays or data.base is not None or data.dtype != var.dtype:
                data = data.astype(var.dtype, copy=True)
            task.stored_arrays.add(id(data))
            var.grad = type(g)(data)
    elif task.create_graph or var.grad.requires_grad:
        var.grad = var.grad + g
    else:
        var.grad.array += g.array
        var.grad._version[0] += 1
    post = var._post_accumulate_grad_hooks
    if post:
        for fn in tuple(post.values()):
            fn(var)
