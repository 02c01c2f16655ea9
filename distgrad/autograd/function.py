"""``Function``: an op's forward and backward side by side. An instance is the op's backward node.

``Function.apply`` runs ``forward`` with recording off, and when any input requires grad it turns
the instance into a node of the tape: a sequence number, the edges to the inputs' nodes, and the
tensors saved for backward. The engine (``engine.py``) later calls ``backward`` on it.
"""
from __future__ import annotations

import itertools
import traceback

import numpy as _np

from distgrad.autograd import anomaly_mode
from distgrad.autograd.grad_mode import state as _grad_state
from distgrad.autograd.node import Node, as_array, grad_accumulator
from distgrad.autograd.tracing import state as _tracing
from distgrad.dtypes import FLOATING, LOW_PRECISION
from distgrad.tensor import Tensor

_sequence = itertools.count()

FREED_GRAPH_MESSAGE = (
    "Trying to backward through the graph a second time (or directly access saved tensors after "
    "they have already been freed). Saved intermediate values of the graph are freed when you call "
    ".backward() or autograd.grad(). Specify retain_graph=True if you need to backward through the "
    "graph a second time or if you need to access saved tensors after calling backward."
)


class _NeedsInputGrad:
    """``ctx.needs_input_grad``: per input, whether it needs a gradient. Worked out from the edges on
    first use and then kept in the instance (a non-data descriptor), so recording an op whose backward
    never asks does not pay for it."""

    def __get__(self, ctx, owner=None):
        if ctx is None:
            return self
        needs = tuple([edge is not None for edge in ctx.next_functions])
        ctx.__dict__["needs_input_grad"] = needs
        return needs


class Function(Node):
    """Subclass with static ``forward(ctx, *args)`` and ``backward(ctx, *grads)``; call ``apply``.

    Inside ``forward`` the inputs are Tensors and nothing is recorded; it may return arrays or Tensors.
    ``backward`` receives one gradient Tensor per output and returns one per input (None for inputs
    that need none), written with Tensor ops so that ``create_graph=True`` can differentiate it again.
    """

    is_view = False  # True for ops whose output shares memory with their first input
    needs_input_grad = _NeedsInputGrad()
    _output_meta = None  # (shape, dtype, xp) per output, kept for ops with several outputs
    # True when backward is plain arithmetic on its gradients (valid for arrays as for Tensors): a
    # first-order backward then runs it on the arrays, with no Tensor per intermediate result.
    arithmetic_backward = False
    # distgrad's own ops return float32/float64 gradients in their inputs' dtype, so backward skips the
    # conversion for them (W3: ~0.3 us a node); a user's Function gets PyTorch's cast to the input dtype.
    _own_op = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._own_op = cls.__module__.startswith("distgrad.")

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

    @property
    def saved_tensors(self) -> tuple:
        """What forward saved, each checked to be unmodified since (outputs come back as Tensors)."""
        return tuple(t.unpack(self) if t.__class__ is _SavedOutput else t for t in self._checked_saved())

    @property
    def saved_arrays(self) -> tuple:
        """The arrays of ``saved_tensors`` (same checks), for a backward that runs on arrays."""
        return tuple(None if t is None else t.array for t in self._checked_saved())

    def _checked_saved(self) -> tuple:
        saved = self._saved
        if saved is None:
            raise RuntimeError(FREED_GRAPH_MESSAGE)
        if saved:
            for t, version in zip(saved, self._saved_versions):
                if t is not None and t._version[0] != version:
                    shape = list(t.array.shape)
                    raise RuntimeError(
                        f"one of the variables needed for gradient computation has been modified by an "
                        f"inplace operation: [{t.array.dtype.name} {shape}] is at version {t._version[0]}; "
                        f"expected version {version} instead (saved by {self.name})."
                    )
        return saved

    def mark_non_differentiable(self, *tensors) -> None:
        self._non_differentiable = {id(t) for t in tensors}

    # --- recording -----------------------------------------------------------------------------
    @classmethod
    def apply(cls, *args, **kwargs):
        """Runs ``forward`` and, when an input requires grad and grad mode is on, records the node."""
        if _tracing.hook is not None:  # dg.onnx.export is recording the ops (autograd/tracing.py)
            return _tracing.hook(cls, args, kwargs)
        ctx = cls.__new__(cls)
        ctx._saved = ()
        grad_on = _grad_state.enabled
        if grad_on:
            edges = tuple([(a.grad_fn or grad_accumulator(a), a.output_nr) if isinstance(a, Tensor) and a.requires_grad
                           else None for a in args])
            ctx.next_functions = edges
            if edges.count(None) == len(edges):
                edges = None
        else:
            edges = None
        _grad_state.enabled = False
        try:
            out = cls.forward(ctx, *args, **kwargs)
        except Exception as exc:
            _raise_device_mismatch(cls, args, exc)
            raise
        finally:
            _grad_state.enabled = grad_on

        if out.__class__ is not tuple:  # one output: the common case, kept short
            out = Tensor(out) if out.__class__ is _np.ndarray else _as_output(out, args)
            if cls.is_view:
                out._version = args[0]._version
            if edges is not None:
                dtype = out.array.dtype
                if dtype in FLOATING and "_non_differentiable" not in ctx.__dict__:
                    out.requires_grad = True
                    out.grad_fn = ctx
                    ctx._input_dtypes = (_dtypes_if_promoted(edges, args, dtype) if cls._own_op
                                         else _dtypes_of_inputs(edges, args))
                    ctx._attach(edges, (out,))
            return out
        outs = tuple(_as_output(o, args) for o in out)
        if cls.is_view:
            outs[0]._version = args[0]._version
        if edges is not None:
            ctx._input_dtypes = _dtypes_of_inputs(edges, args)
            nondiff = ctx.__dict__.get("_non_differentiable", ())
            for nr, o in enumerate(outs):
                if o.array.dtype in FLOATING and id(o) not in nondiff:
                    o.requires_grad = True
                    o.grad_fn = ctx
                    o.output_nr = nr
            ctx.num_outputs = len(outs)
            ctx._output_meta = tuple((o.shape, o.dtype, o._xp) for o in outs)
            ctx._attach(edges, outs)
        return outs

    def _attach(self, edges, outs) -> None:
        """Makes this ctx a node of the tape: a sequence number, edges to the inputs' nodes, and
        the saved tensors' versions."""
        self.seq = next(_sequence)
        if self._saved:
            self._keep_saved(outs)
        if anomaly_mode.enabled:
            self.forward_trace = "".join(traceback.format_stack()[:-2])

    def _keep_saved(self, outputs) -> None:
        """Notes each saved tensor's version; outputs are kept without their grad_fn (no cycle)."""
        versions = []
        saved = []
        for t in self._saved:
            if t is None:
                versions.append(None)
                saved.append(None)
                continue
            versions.append(t._version[0])
            for nr, o in enumerate(outputs):
                if t is o:
                    t = _SavedOutput(o.array, o._version, nr)
                    break
            saved.append(t)
        self._saved_versions = versions
        self._saved = saved

    # --- called by the engine ------------------------------------------------------------------
    def run_backward(self, grads: list, as_arrays: bool):
        """Calls ``backward`` with one gradient per output; returns one gradient per input.

        With ``as_arrays`` (a first-order pass) gradients come and go as arrays: an
        ``arithmetic_backward`` runs on them as they are, any other gets and returns Tensors."""
        if self._saved is None:
            raise RuntimeError(FREED_GRAPH_MESSAGE)
        meta = self._output_meta
        if meta is not None:
            grads = [g if g is not None else xp.zeros(s, dt) if as_arrays else Tensor(xp.zeros(s, dt))
                     for g, (s, dt, xp) in zip(grads, meta)]
        if not as_arrays:
            result = type(self).backward(self, *grads)
        elif self.arithmetic_backward:
            result = type(self).backward(self, *grads)  # may hold NumPy scalars: see as_array
        else:
            result = type(self).backward(self, *[None if g is None else Tensor(as_array(g)) for g in grads])
            result = (_unwrap(result),) if result.__class__ is not tuple else tuple(_unwrap(r) for r in result)
        if result.__class__ is not tuple:
            result = (result,)
        if len(result) != len(self.next_functions):
            if len(result) > len(self.next_functions) and all(r is None for r in result[len(self.next_functions):]):
                result = result[: len(self.next_functions)]
            else:
                raise RuntimeError(
                    f"function {self.name} returned an incorrect number of gradients "
                    f"(expected {len(self.next_functions)}, got {len(result)})"
                )
        return result if self._input_dtypes is None else _in_input_dtypes(result, self._input_dtypes)


def _dtypes_of_inputs(edges: tuple, args: tuple) -> list:
    """Each input's dtype (None where it needs no gradient): what backward converts its gradients to."""
    return [None if e is None else a.array.dtype for e, a in zip(edges, args)]


def _dtypes_if_promoted(edges: tuple, args: tuple, out_dtype) -> list | None:
    """``_dtypes_of_inputs``, or None when every input has the output's dtype, float32 or float64: the
    gradients of distgrad's own ops come back in it. (16-bit outputs keep the list: their backwards may
    compute, and return, float32.)"""
    if out_dtype not in LOW_PRECISION:
        for edge, a in zip(edges, args):
            if edge is not None and a.array.dtype != out_dtype:
                break
        else:
            return None
    return _dtypes_of_inputs(edges, args)


def _in_input_dtypes(grads: tuple, dtypes: list) -> tuple:
    """Each gradient (an array, or a Tensor under ``create_graph``) in its input's dtype, as PyTorch's
    engine gives it: an op whose operands were promoted (float16 * float32) computes in the wider one."""
    for i, (g, dtype) in enumerate(zip(grads, dtypes)):
        if g is not None and dtype is not None and g.dtype != dtype:
            g = CastGradient.apply(g, dtype) if isinstance(g, Tensor) else g.astype(dtype)
            grads = grads[:i] + (g,) + grads[i + 1:]
    return grads


class CastGradient(Function):
    """A gradient converted to its input's dtype (differentiable, for ``create_graph=True``)."""

    @staticmethod
    def forward(ctx, g, dtype):
        ctx.in_dtype = g.dtype
        return g.array.astype(dtype)

    @staticmethod
    def backward(ctx, grad):
        return CastGradient.apply(grad, ctx.in_dtype), None


def _unwrap(r):
    """A backward's Tensor result as the array carried in a first-order pass."""
    return None if r is None else r.array if isinstance(r, Tensor) else r


def _as_output(o, args):
    """A Tensor for a forward result: arrays are wrapped; an input returned as-is is aliased."""
    if o.__class__ is _np.ndarray:
        return Tensor(o)
    if isinstance(o, Tensor):
        for a in args:
            if o is a:
                return o.detach()
        return o
    if isinstance(o, _np.generic):  # NumPy turns 0-d results into scalars
        o = _np.asarray(o)
    return Tensor(o)



class _SavedOutput:
    """A saved output, kept without its grad_fn so that node and output do not form a cycle."""

    __slots__ = ("array", "_version", "output_nr")

    def __init__(self, data, version, output_nr):
        self.array = data
        self._version = version
        self.output_nr = output_nr

    @property
    def shape(self):
        return self.array.shape

    def unpack(self, node):
        t = Tensor(self.array)
        t._version = self._version
        t.requires_grad = True
        t.grad_fn = node
        t.output_nr = self.output_nr
        return t


def _raise_device_mismatch(cls, args, exc):
    devices = []
    for a in args:
        if isinstance(a, Tensor) and a.device not in devices:
            devices.append(a.device)
    if len(devices) > 1:
        raise RuntimeError(
            f"Expected all tensors to be on the same device, but found at least two devices, "
            f"{devices[0]} and {devices[1]}! (when checking arguments for {cls.__name__})"
        ) from exc
