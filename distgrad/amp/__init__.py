"""Mixed precision, PyTorch's ``torch.amp``: ``autocast`` (ops in bfloat16/float16 where that is safe) and
``GradScaler`` (loss scaling for float16). See ``docs/amp.md``.

``GradScaler`` loads on first use: it reaches up to ``distgrad.distributed`` (ranks agree on skipped
steps), while the ops import ``autocast``'s state from here.
"""
import importlib

from distgrad.amp.autocast_mode import (autocast, clear_autocast_cache, get_autocast_dtype, is_autocast_available,
                                        is_autocast_cache_enabled, is_autocast_enabled, set_autocast_cache_enabled,
                                        set_autocast_dtype, set_autocast_enabled)

__all__ = ["autocast", "GradScaler", "is_autocast_available", "is_autocast_enabled", "set_autocast_enabled",
           "get_autocast_dtype", "set_autocast_dtype", "is_autocast_cache_enabled", "set_autocast_cache_enabled",
           "clear_autocast_cache"]


def __getattr__(name: str):
    if name == "GradScaler":
        return importlib.import_module("distgrad.amp.grad_scaler").GradScaler
    raise AttributeError(f"module 'distgrad.amp' has no attribute '{name}'")
