"""Handles returned by every ``register_*`` call, so a hook can be removed again."""
from __future__ import annotations

import itertools

_next_hook_id = itertools.count()


class RemovableHandle:
    """Removes the hook it was returned for; also a context manager that removes on exit."""

    __slots__ = ("_hooks", "id")

    def __init__(self, hooks: dict):
        self._hooks = hooks
        self.id = next(_next_hook_id)

    def remove(self) -> None:
        self._hooks.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


def add_hook(hooks: dict, fn) -> RemovableHandle:
    if not callable(fn):
        raise TypeError(f"hook must be callable, got {type(fn).__name__}")
    handle = RemovableHandle(hooks)
    hooks[handle.id] = fn
    return handle
