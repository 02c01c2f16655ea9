"""A hook that sees every ``Function.apply`` of one thread: how ``dg.onnx.export`` records a forward.

``Function.apply`` reads ``state.hook`` once per call; while it is None (always, but inside a tracer)
that read is all it costs. A hook, ``hook(cls, args, kwargs) -> outputs``, runs the op itself by
calling ``cls.apply`` again inside ``paused()``, so that the ops an op's forward is built from reach
no tracer: a trace holds the ops the model called, each once.
"""
from __future__ import annotations

import contextlib
import threading


class _TracingState(threading.local):
    def __init__(self):
        self.hook = None


state = _TracingState()


@contextlib.contextmanager
def tracing(hook):
    """Calls ``hook(op, args, kwargs)`` in place of every op of this thread inside the block."""
    previous, state.hook = state.hook, hook
    try:
        yield
    finally:
        state.hook = previous


@contextlib.contextmanager
def paused():
    """No hook inside the block (a hook runs its op in here)."""
    previous, state.hook = state.hook, None
    try:
        yield
    finally:
        state.hook = previous


def run(op, args: tuple, kwargs: dict):
    """Runs the op a hook was given, unseen by the hook."""
    with paused():
        return op.apply(*args, **kwargs) if isinstance(op, type) else op(*args, **kwargs)
