"""The tape engine: runs recorded nodes backward in reverse recording order.

``run_backward`` takes four steps:

1. **Plan**: from the roots, a depth-first walk counts how many edges lead into each node. With
   ``inputs`` given (``autograd.grad``), only the nodes on a path to them are marked to run.
2. **Seed**: the roots' gradients go into their nodes' input buffers.
3. **Execute**: a node is ready when every node that feeds it has run; ready nodes wait in a heap
   ordered by sequence number, highest (most recently recorded) first. Each ready node runs its
   backward and adds what it returns into the buffers of the nodes it points to. A leaf's
   ``AccumulateGrad`` has an infinite sequence number, so it runs the moment it is ready: its
   ``.grad`` is final, and its post-accumulate hooks fire, while the rest of backward is still
   running. That is the moment data-parallel training starts communicating.
4. **Finish**: callbacks queued during the pass (``queue_callback``) run in order.

In a first-order pass (``create_graph=False``, grad mode off) the gradients in flight are bare
arrays: a node's backward of plain arithmetic runs on them directly, and a Tensor is made only where
one is handed out (hooks, ``.grad``, ``autograd.grad``'s results, a backward written with Tensor ops).
With ``create_graph=True`` they are Tensors, so that backward itself is recorded.

The engine knows nodes (``node.py``) and the small tensor protocol described there, not ``Tensor``.
"""
from __future__ import annotations

import heapq
import threading

from distgrad.amp.autocast_mode import state as _autocast_state
from distgrad.autograd import anomaly_mode
from distgrad.autograd.grad_mode import state as _grad_state
from distgrad.autograd.node import AccumulateGrad, as_array, gradient_edge, increment_version
from distgrad.backend import array_module

_local = threading.local()


def queue_callback(fn) -> None:
    """Runs ``fn()`` once the backward pass now running has finished all its nodes."""
    task = getattr(_local, "task", None)
    if task is None:
        raise RuntimeError("queue_callback can only be called during the backward pass")
    task.callbacks.append(fn)


class _GraphTask:
    """The state of one backward pass."""
    __slots__ = ("callbacks", "stored_arrays", "create_graph", "tensor_type")

    def __init__(self, create_graph: bool, tensor_type):
        self.callbacks = []
        self.stored_arrays = set()  # ids of arrays already handed to some .grad in this pass
        self.create_graph = create_graph
        self.tensor_type = tensor_type  # what a gradient handed out is made of (the roots' type)

    def as_tensor(self, g):
        """A gradient in flight as the tensor handed out (it already is one with create_graph)."""
        return g if self.create_graph else self.tensor_type(as_array(g))

    def in_flight(self, t):
        """A tensor (a hook's result, a root gradient) as the gradients in flight are carried."""
        return t if self.create_graph else t.array


class _Plan:
    """Step 1: how many edges lead into each node, and (for ``inputs``) which nodes must run."""
    __slots__ = ("deps", "targets", "executable", "captured")

    def __init__(self, root_nodes, inputs):
        self.deps, parents = _count_dependencies(root_nodes, want_parents=inputs is not None)
        self.targets = self.executable = self.captured = None
        if inputs is not None:
            self.targets = {}
            for i, t in enumerate(inputs):
                edge = gradient_edge(t)
                if edge is None:
                    raise RuntimeError(f"input {i} of autograd.grad does not require grad")
                self.targets.setdefault(edge[0], []).append((edge[1], i))
            self.executable = _strict_ancestors(self.targets, parents)
            self.captured = [None] * len(inputs)

    def should_run(self, node) -> bool:
        return self.executable is None or node in self.executable or node in self.targets


def run_backward(roots, root_grads, retain_graph: bool, create_graph: bool, inputs=None,
                 accumulate: bool = True):
    """Backpropagates ``root_grads`` from ``roots``.

    With ``inputs`` given, only the parts of the graph leading to them run; with ``accumulate``
    False the gradients of ``inputs`` are returned instead of added to ``.grad``.
    """
    edges = []
    for i, t in enumerate(roots):
        edge = gradient_edge(t)
        if edge is None:
            raise RuntimeError(f"element {i} of tensors does not require grad and does not have a grad_fn")
        edges.append(edge)
    plan = _Plan([e[0] for e in edges], inputs)
    task = _GraphTask(create_graph, type(roots[0]))
    buffers = _seed(edges, root_grads, task)

    prev_task = getattr(_local, "task", None)
    _local.task = task
    prev_grad = _grad_state.enabled
    _grad_state.enabled = create_graph
    # Backward runs in the dtypes the forward chose, even when called inside an autocast block.
    prev_autocast = _autocast_state.suspend() if _autocast_state.active else None
    try:
        _execute(plan, task, buffers, retain_graph, accumulate)
        _grad_state.enabled = prev_grad  # callbacks run in the caller's grad mode
        while task.callbacks:
            task.callbacks.pop(0)()
    finally:
        _grad_state.enabled = prev_grad
        _local.task = prev_task
        if prev_autocast is not None:
            _autocast_state.resume(prev_autocast)
    if plan.captured is None:
        return None
    return [None if g is None else task.as_tensor(g) for g in plan.captured]


def _seed(edges, root_grads, task) -> dict:
    """Step 2: the roots' gradients in their nodes' input buffers."""
    buffers = {}
    for (node, nr), g in zip(edges, root_grads):
        task.stored_arrays.add(id(g.array))
        g = task.in_flight(g)
        buf = buffers.get(node)
        if buf is None:
            buf = buffers[node] = [None] * node.num_outputs
        buf[nr] = g if buf[nr] is None else buf[nr] + g
    return buffers


def _execute(plan, task, buffers, retain_graph: bool, accumulate: bool) -> None:
    """Step 3: runs ready nodes, most recently recorded first, until none is left.

    The body runs once per node of the graph, so it is kept in one frame (no call per step)."""
    deps, targets, executable = plan.deps, plan.targets, plan.executable
    as_arrays = not task.create_graph
    check_finite = anomaly_mode.enabled
    heap = [(-node.seq, id(node), node) for node in buffers if deps.get(node, 0) == 0]
    heapq.heapify(heap)
    push, pop = heapq.heappush, heapq.heappop
    ready = None  # the one ready node when nothing else is: a chain of ops skips the heap
    node = None
    try:
        while heap or ready is not None:
            if ready is not None:
                node, ready = ready, None
            else:
                node = pop(heap)[2]
            grads = buffers.pop(node)
            if node.pre_hooks:
                _run_pre_hooks(node.pre_hooks, grads, task)
            if targets is not None and node in targets:
                for nr, i in targets[node]:
                    plan.captured[i] = grads[nr]
            if node.__class__ is AccumulateGrad:
                if accumulate and grads[0] is not None:
                    _accumulate(node.variable, grads[0], task)
                continue
            if executable is not None and node not in executable:
                continue
            if grads[0] is None and all(g is None for g in grads):
                outs = (None,) * len(node.next_functions)  # no gradient reached it: pass on nothing
            else:
                outs = node.run_backward(grads, as_arrays)
                if check_finite:
                    _check_finite(node, outs)
                if not retain_graph:
                    node._saved = None
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
                if left == 0 and (executable is None or plan.should_run(nxt)):
                    if ready is None and not heap:
                        ready = nxt
                    else:
                        if ready is not None:
                            push(heap, (-ready.seq, id(ready), ready))
                            ready = None
                        push(heap, (-nxt.seq, id(nxt), nxt))
    except Exception as exc:
        if node is not None and node.__class__ is not AccumulateGrad:
            _add_forward_trace(node, exc)
        raise


def _count_dependencies(start, want_parents: bool):
    """How many edges lead into each node reachable from ``start`` (and, on request, from where)."""
    deps = {}
    parents = {} if want_parents else None
    start = set(start)
    stack = list(start)
    while stack:
        node = stack.pop()
        for edge in node.next_functions:
            if edge is None:
                continue
            nxt = edge[0]
            count = deps.get(nxt, 0) + 1
            deps[nxt] = count
            if want_parents:
                parents.setdefault(nxt, []).append(node)
            if count == 1 and nxt not in start:  # first time seen: walk on from it
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


def _run_pre_hooks(pre_hooks, grads, task):
    for nr, hooks in pre_hooks.items():
        if grads[nr] is None:
            continue
        g = task.as_tensor(grads[nr])
        for fn in tuple(hooks.values()):
            replaced = fn(g)
            if replaced is not None:
                g = replaced
        grads[nr] = task.in_flight(g)


def _add_forward_trace(node, exc) -> None:
    trace = getattr(node, "forward_trace", None)
    if trace is not None:
        exc.add_note(f"The forward call of {node.name} that raised in backward:\n{trace}")


def _check_finite(node, outs):
    for i, g in enumerate(outs):
        if g is None:
            continue
        g = getattr(g, "array", g)  # a Tensor with create_graph, else an array
        xp = array_module(g)
        if not bool(xp.isfinite(g).all()):
            kind = "nan" if bool(xp.isnan(g).any()) else "inf"
            trace = getattr(node, "forward_trace", "(recorded outside detect_anomaly)")
            raise RuntimeError(
                f"Function '{node.name}' returned {kind} values in its {i}th output.\n"
                f"Traceback of the forward call that recorded {node.name}:\n{trace}"
            )


def _accumulate(var, g, task):
    """A leaf's gradient: through its hooks, into ``.grad`` (a fresh array the first time), then
    the post-accumulate hooks."""
    hooks = var._hooks
    if hooks:
        g = task.as_tensor(g)
        for fn in tuple(hooks.values()):
            replaced = fn(g)
            if replaced is not None:
                g = replaced
        g = task.in_flight(g)
    if g.shape != var.shape:
        raise RuntimeError(
            f"gradient of shape {list(g.shape)} does not match the leaf's shape {list(var.shape)}"
        )
    if var.grad is None:
        if task.create_graph:
            var.grad = g
        else:
            g = as_array(g)
            # The array may be shared (another leaf's grad, a view, a root gradient): copy it then.
            if id(g) in task.stored_arrays or g.base is not None or g.dtype != var.dtype:
                g = g.astype(var.dtype, copy=True)
            task.stored_arrays.add(id(g))
            var.grad = task.tensor_type(g)
    elif task.create_graph or var.grad.requires_grad:
        var.grad = var.grad + task.as_tensor(g)
    else:
        var.grad.array += g
        increment_version(var.grad)
    post = var._post_accumulate_grad_hooks
    if post:
        for fn in tuple(post.values()):
            fn(var)
