"""The nodes the engine walks, and the protocol it asks of the tensors they produce.

A node has a sequence number ``seq`` (recording order), ``next_functions`` (per input, the edge
``(node, output_nr)`` its gradient flows to, or None) and ``num_outputs``; it may carry pre-hooks.
``Function`` (``function.py``) is the node of a recorded op; ``AccumulateGrad`` is a leaf's node.

The engine knows tensors only through this protocol, never the ``Tensor`` class: ``t.array`` (the
NumPy/CuPy array), ``t.shape``, ``t.dtype``, ``t.grad``, ``t.grad_fn``, ``t.output_nr``,
``t.requires_grad``, ``t._version`` (a one-element list shared with views), ``t._hooks`` and
``t._post_accumulate_grad_hooks`` (dicts or None), ``t._accumulator``, and ``type(t)(array)`` to make
a new tensor of the same kind.
"""
from __future__ import annotations

import numpy as np

from distgrad.autograd.hooks import add_hook


class Node:
    """What the engine needs of a node: a sequence number, edges to the next nodes, hooks."""

    seq: int
    next_functions: tuple  # per input: (node, output_nr) or None when it needs no gradient
    num_outputs = 1
    pre_hooks = None  # {output_nr: {handle id: fn}}, made on the first register_prehook

    @property
    def name(self) -> str:
        return type(self).__name__

    def register_prehook(self, fn, output_nr: int = 0):
        """``fn(grad) -> grad | None`` runs before this node sees the gradient of output ``output_nr``."""
        if self.pre_hooks is None:
            self.pre_hooks = {}
        hooks = self.pre_hooks.setdefault(output_nr, {})
        return add_hook(hooks, fn)


class AccumulateGrad(Node):
    """The node of a leaf that requires grad: sums incoming gradients into ``leaf.grad``."""

    seq = float("inf")  # runs as soon as it is ready, so a leaf's grad is final as early as possible
    next_functions = ()

    def __init__(self, variable):
        self.variable = variable

    @property
    def name(self) -> str:
        return "AccumulateGrad"


def grad_accumulator(leaf) -> AccumulateGrad:
    """The leaf's one ``AccumulateGrad`` node, made on first use (hooks on it must outlive a step)."""
    node = leaf._accumulator
    if node is None:
        node = leaf._accumulator = AccumulateGrad(leaf)
    return node


def gradient_edge(t):
    """Where a gradient for ``t`` goes: its producer's output, its leaf accumulator, or None."""
    if t.grad_fn is not None:
        return t.grad_fn, t.output_nr
    if t.requires_grad:
        return grad_accumulator(t), 0
    return None


def as_array(g):
    """A gradient carried in a first-order pass, as an array: arithmetic on 0-d NumPy arrays gives
    NumPy scalars, which travel as they are until a Tensor is made of them."""
    return np.asarray(g) if isinstance(g, np.generic) else g


def increment_version(t) -> None:
    """Records an in-place write to ``t`` (PyTorch's ``torch.autograd.graph.increment_version``):
    a tensor saved for backward at an older version then refuses to be used."""
    t._version[0] += 1
