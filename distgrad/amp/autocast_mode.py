"""``autocast``: regions where ops run in the dtype PyTorch's policy gives them, per device type.

The state is thread-local, as PyTorch's: for each device type ("cpu", "cuda") whether autocast is on
and its dtype, whether casts are cached, how deep the ``autocast`` blocks are nested, and the cache.
``active`` is True while any device type has autocast on: the ops' hook
(``distgrad/ops/autocasting.py``) reads that one attribute and does nothing more when it is False.

The cache holds the low-precision copies of float32 leaves that require grad (the parameters), so a
weight used by several ops in one forward is cast once; it empties when the outermost ``autocast``
block exits (the end of a forward). Unlike PyTorch, a copy made with grad mode off is not cached (a
later op with grad on would otherwise get a copy outside the graph), and a parameter changed in
place since its copy was made is cast again.
"""
from __future__ import annotations

import functools
import threading
import warnings

from distgrad import dtypes
from distgrad.amp.policy import DEFAULT_DTYPE_NAMES, DEVICE_TYPES

__all__ = ["autocast", "is_autocast_available", "is_autocast_enabled", "set_autocast_enabled", "get_autocast_dtype",
           "set_autocast_dtype", "is_autocast_cache_enabled", "set_autocast_cache_enabled", "clear_autocast_cache"]

_SUPPORTED = (dtypes.bfloat16, dtypes.float16)


class _AutocastState(threading.local):
    def __init__(self):
        self.active = False
        self.enabled = dict.fromkeys(DEVICE_TYPES, False)
        self.dtype = {device: dtypes.to_dtype(DEFAULT_DTYPE_NAMES[device]) for device in DEVICE_TYPES}
        self.cache_enabled = True
        self.nesting = 0
        self.cache = {}  # id(leaf) -> (leaf, its version when cast, the cast copy)

    def set_enabled(self, device_type: str, enabled: bool) -> None:
        self.enabled[device_type] = enabled
        self.active = any(self.enabled.values())

    def suspend(self) -> dict:
        """Turns autocast off on every device type; returns what ``resume`` restores. The engine runs
        backward so: backward ops run in the dtypes the forward chose, as PyTorch's do."""
        saved = dict(self.enabled)
        for device in saved:
            self.enabled[device] = False
        self.active = False
        return saved

    def resume(self, saved: dict) -> None:
        self.enabled.update(saved)
        self.active = any(saved.values())


state = _AutocastState()


def _device_type(device_type: str) -> str:
    if device_type not in DEVICE_TYPES:
        raise RuntimeError(f"User specified an unsupported autocast device_type '{device_type}'")
    return device_type


def is_autocast_available(device_type: str) -> bool:
    """Whether ``autocast`` knows ``device_type`` ("cpu" and "cuda")."""
    return device_type in DEVICE_TYPES


def is_autocast_enabled(device_type: str = "cuda") -> bool:
    """Whether autocast is on for ``device_type`` (PyTorch's old no-argument form asks about CUDA)."""
    return state.enabled[_device_type(device_type)]


def set_autocast_enabled(device_type: str, enabled: bool) -> None:
    state.set_enabled(_device_type(device_type), bool(enabled))


def get_autocast_dtype(device_type: str):
    """The dtype of autocast's low-precision ops on ``device_type`` (bfloat16 on the CPU, float16 on CUDA
    unless set)."""
    return state.dtype[_device_type(device_type)]


def set_autocast_dtype(device_type: str, dtype) -> None:
    state.dtype[_device_type(device_type)] = dtypes.to_dtype(dtype)


def is_autocast_cache_enabled() -> bool:
    return state.cache_enabled


def set_autocast_cache_enabled(enabled: bool) -> None:
    state.cache_enabled = bool(enabled)


def clear_autocast_cache() -> None:
    state.cache.clear()


class autocast:
    """Ops inside run in PyTorch's autocast dtypes for ``device_type``; a context manager or a decorator.

    ``dtype`` defaults to ``get_autocast_dtype(device_type)``: bfloat16 on the CPU, float16 on CUDA.
    ``enabled=False`` turns autocast off inside (nested in an enabled region, for a part that must run
    in the dtypes it is given). ``cache_enabled`` (default: ``is_autocast_cache_enabled()``, True)
    caches the low-precision copies of parameters until the outermost block exits. On CUDA without a
    GPU, or with a dtype other than bfloat16/float16 on the CPU, it warns and stays off, as PyTorch.

    Run backward outside the block: it uses the dtypes the forward chose.
    """

    def __init__(self, device_type: str, dtype=None, enabled: bool = True, cache_enabled: bool | None = None):
        if not isinstance(device_type, str):
            raise ValueError(f"Expected `device_type` of type `str`, got: `{type(device_type)}`")
        self.device = _device_type(device_type)
        self.fast_dtype = get_autocast_dtype(device_type) if dtype is None else dtypes.to_dtype(dtype)
        self._cache_enabled = is_autocast_cache_enabled() if cache_enabled is None else bool(cache_enabled)
        if enabled and self.device == "cuda":
            from distgrad import backend
            if not backend.cuda_is_available():
                warnings.warn("CUDA is not available. Disabling autocast.", stacklevel=2)
                enabled = False
        if enabled and self.fast_dtype not in _SUPPORTED:
            name = self.device.upper()
            warnings.warn(f"In {name} autocast, but the target dtype is not supported. Disabling autocast.\n"
                          f"{name} Autocast only supports dtypes of distgrad.bfloat16, distgrad.float16 currently.",
                          stacklevel=2)
            enabled = False
        self._enabled = bool(enabled)
        self._saved = []  # the state each __enter__ replaced, so one instance may be entered again inside

    def __enter__(self):
        self._saved.append((state.enabled[self.device], state.dtype[self.device], state.cache_enabled))
        state.set_enabled(self.device, self._enabled)
        state.dtype[self.device] = self.fast_dtype
        state.nesting += 1
        state.cache_enabled = self._cache_enabled
        return self

    def __exit__(self, *exc):
        state.nesting -= 1
        if state.nesting == 0:
            state.cache.clear()
        enabled, dtype, cache_enabled = self._saved.pop()
        state.set_enabled(self.device, enabled)
        state.dtype[self.device] = dtype
        state.cache_enabled = cache_enabled
        return False

    def __call__(self, func):
        if not callable(func):
            raise TypeError(f"autocast()(func) requires a callable, but got {type(func).__name__}. Did you mean to "
                            "use autocast as a context manager? For example:\n    with distgrad.autocast(device_type="
                            "...):\n        output = model(input)")

        @functools.wraps(func)
        def decorated(*args, **kwargs):
            with self:
                return func(*args, **kwargs)
        return decorated
