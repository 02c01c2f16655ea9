"""Grad modes: whether ops record themselves on the tape.

The switch is one attribute of one object, so checking it costs a single attribute load per op.
"""
from __future__ import annotations

import functools
import threading


class _GradState(threading.local):
    def __init__(self):
        self.enabled = True
        self.inference = False


state = _GradState()


def is_grad_enabled() -> bool:
    return state.enabled


def is_inference_mode_enabled() -> bool:
    return state.inference


class _GradModeContext:
    """Base of the grad-mode context managers; each also works as a decorator."""

    _enable: bool = True

    def __enter__(self):
        self._prev = state.enabled
        state.enabled = self._enable

    def __exit__(self, *exc):
        state.enabled = self._prev
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.__class__():
                return fn(*args, **kwargs)
        return wrapper


class no_grad(_GradModeContext):
    """Ops inside record nothing: results have ``requires_grad=False``."""
    _enable = False


class enable_grad(_GradModeContext):
    """Turns recording back on inside a ``no_grad`` block."""
    _enable = True


class set_grad_enabled(_GradModeContext):
    """Sets recording on or off; usable as a function or a context manager."""

    def __init__(self, mode: bool):
        self._prev = state.enabled
        self._enable = bool(mode)
        state.enabled = self._enable

    def __enter__(self):
        pass

    def __call__(self, fn):
        mode = self._enable
        state.enabled = self._prev

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with set_grad_enabled(mode):
                return fn(*args, **kwargs)
        return wrapper


class inference_mode(_GradModeContext):
    """Like ``no_grad``; tensors made inside are marked as inference tensors."""

    def __init__(self, mode: bool = True):
        self._mode = bool(mode)

    def __enter__(self):
        self._prev = state.enabled
        self._prev_inference = state.inference
        if self._mode:
            state.enabled = False
            state.inference = True

    def __exit__(self, *exc):
        state.enabled = self._prev
        state.inference = self._prev_inference
        return False

    def __call__(self, fn):
        mode = self._mode

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with inference_mode(mode):
                return fn(*args, **kwargs)
        return wrapper
