"""``Function``: an op's forward and backward side by side. An instance is the op's backward node.

``Function.apply`` runs ``forward`` with recording off, and when any input requires grad it turns
the instance into a node of the tape: a sequence number, the edges to the inputs' nodes, and the
tensors saved for backward. The engine (``engine.py``) later calls ``backward`` on it.
"""
from __future__ import annotations

import itertools
import traceback

import numpy as _np

from distgrad import backend
from distgrad.autograd import anomaly_mode
from distgrad.autograd.grad_mode import state as _grad_state
from distgrad.autograd.hooks import add_hook

_sequence = itertools.count()

FREED_GRAPH_MESSAGE = (
    "Trying to backward through the graph a second time (or directly access saved tensors after "
    "they have already been freed). Saved intermediate values of the graph are freed when you call "
    ".backward() or autograd.grad(). Specify retain_graph=True if you need to backward through the "
    "graph a second time or if you need to access saved tensors after calling backward."
)


class Node:
    """What the engine needs of a node: a sequence number, edges to the next nodes, hooks."""

    seq: int
    next_functions: tuple  # per input: (node, output_nr) or None when it needs no gradient

    @property
    def name(self) -> str:
        return type(self).__name__

    def register_prehook(self, fn, output_nr: int = 0):
        """``fn(grad) -> grad | None`` runs before this node sees the gradient of output ``output_nr``."""
        hooks = self.__dict__.setdefault("pre_hooks", {}).setdefault(output_nr, {})
        return add_hook(hooks, fn)


class Function(Node):
    """Subclass with static ``forward(ctx, *args)`` and ``backward(ctx, *grads)``; call ``apply``.

    Inside ``forward`` the inputs are Tensors and nothing is recorded; it may return arrays or Tensors.
    ``backward`` receives one gradient Tensor per output and returns one per input (None for inputs
    that need none), written with Tensor ops so that ``create_graph=True`` can differentiate it again.
    """

    is_view = False  # True for ops whose output shares memory with their first input

    @property
    def name(self) -> str:
        return type(self).__name__ + "Backward"

    def __repr__(self):
        return f"<{self.name}>"

    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError("a Function subclass must define forward(ctx, *args)")

    @staticmethod
    def backward(ctx, *grad_outputs):
        raise NotImplementedError("a Function subclass must define backward(ctx, *grad_outputs)")

    # --- ctx API -------------------------------------------------------------------------------
    def save_for_backward(self, *tensors) -> None:
        self._saved = tensors
        self._saved_versions = tuple(None if t is None else t._version[0] for t in tensors)

    @property
    def saved_tensors(self) -> tuple:
        saved = self._saved
        if saved is None:
            raise RuntimeError(FREED_GRAPH_MESSAGE)
        out = []
        for t, version in zip(saved, self._saved_versions):
            if isinstance(t, _SavedOutput):
                t = t.unpack(self)
            if t is not None and t._version[0] != version:
                raise RuntimeError(
                    f"one of the variables needed for gradient computation has been modified by an "
                    f"inplace operation: [{t.dtype.name} {list(t.shape)}] is at version {t._version[0]}; "
                    f"expected version {version} instead (saved by {self.name})."
                )
            out.append(t)
        return tuple(out)

    def mark_non_differentiable(self, *tensors) -> None:
        self._non_differentiable = {id(t) for t in tensors}

    # --- recording -----------------------------------------------------------------------------
    @classmethod
    def apply(cls, *args, **kwargs):
        from distgrad.tensor import Tensor

        ctx = cls.__new__(cls)
        ctx._saved = ()
        grad_on = _grad_state.enabled
        record = False
        if grad_on:
            needs = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
            record = True in needs
            ctx.needs_input_grad = needs
        _grad_state.enabled = False
        try:
            out = cls.forward(ctx, *args, **kwargs)
        except Exception as exc:
            _raise_device_mismatch(cls, args, exc)
            raise
        finally:
            _grad_state.enabled = grad_on

        single = not isinstance(out, tuple)
        outs = (out,) if single else out
        wrapped = []
        for nr, o in enumerate(outs):
            if not isinstance(o, Tensor):
                if isinstance(o, _np.generic):  # NumPy turns 0-d results into scalars
                    o = _np.asarray(o)
                o = Tensor(o)
            elif any(o is a for a in args):
                o = o.detach()
            wrapped.append(o)
        if cls.is_view:
            wrapped[0]._version = args[0]._version

        if record:
            ctx.seq = next(_sequence)
            ctx.next_functions = tuple(
                (a.grad_fn or a._grad_accumulator(), a.output_nr) if n else None
                for a, n in zip(args, needs)
            )
            nondiff = getattr(ctx, "_non_differentiable", ())
            for nr, o in enumerate(wrapped):
                if o.dtype.kind in "fc" and id(o) not in nondiff:
                    o.requires_grad = True
                    o.grad_fn = ctx
                    o.output_nr = nr
            if len(wrapped) > 1:
                ctx._output_meta = tuple((o.shape, o.dtype, o.data) for o in wrapped)
            if ctx._saved:
                ctx._saved = tuple(_SavedOutput.wrap(t, wrapped) for t in ctx._saved)
            if anomaly_mode.enabled:
                ctx.forward_trace = "".join(traceback.format_stack()[:-2])
        else:
            ctx._saved = None
        return wrapped[0] if single else tuple(wrapped)

    # --- called by the engine ------------------------------------------------------------------
    def run_backward(self, grads: list):
        """Calls ``backward`` with one gradient per output; returns one gradient per input."""
        if self._saved is None:
            raise RuntimeError(FREED_GRAPH_MESSAGE)
        meta = getattr(self, "_output_meta", None)
        if meta is not None:
            from distgrad.tensor import Tensor
            xp_zeros = backend.array_module
            grads = [g if g is not None else Tensor(xp_zeros(d).zeros(s, dt)) for g, (s, dt, d) in zip(grads, meta)]
        result = type(self).backward(self, *grads)
        if not isinstance(result, tuple):
            result = (result,)
        if len(result) != len(self.next_functions):
            if len(result) > len(self.next_functions) and all(r is None for r in result[len(self.next_functions):]):
                result = result[: len(self.next_functions)]
            else:
                raise RuntimeError(
                    f"function {self.name} returned an incorrect number of gradients "
                    f"(expected {len(self.next_functions)}, got {len(result)})"
                )
        return result

    def release_saved(self) -> None:
        self._saved = None
        self.__dict__.pop("_output_meta", None)


class _SavedOutput:
    """A saved output, kept without its grad_fn so that node and output do not form a cycle."""

    __slots__ = ("detached", "output_nr")

    def __init__(self, detached, output_nr):
        self.detached = detached
        self.output_nr = output_nr

    @staticmethod
    def wrap(t, outputs):
        for nr, o in enumerate(outputs):
            if t is o:
                return _SavedOutput(o.detach(), nr)
        return t

    def unpack(self, node):
        t = self.detached.detach()
        t.requires_grad = True
        t.grad_fn = node
        t.output_nr = self.output_nr
        return t


class AccumulateGrad(Node):
    """The node of a leaf that requires grad: sums incoming gradients into ``leaf.grad``."""

    seq = float("inf")  # runs as soon as it is ready, so a leaf's grad is final as early as possible
    next_functions = ()

    def __init__(self, variable):
        self.variable = variable

    @property
    def name(self) -> str:
        return "AccumulateGrad"


def _raise_device_mismatch(cls, args, exc):
    from distgrad.tensor import Tensor

    devices = []
    for a in args:
        if isinstance(a, Tensor) and a.device not in devices:
            devices.append(a.device)
    if len(devices) > 1:
        raise RuntimeError(
            f"Expected all tensors to be on the same device, but found at least two devices, "
            f"{devices[0]} and {devices[1]}! (when checking arguments for {cls.__name__})"
        ) from exc
