"""PyTorch's older per-device spellings: ``distgrad.cuda.amp`` and ``distgrad.cpu.amp`` (``autocast`` with
the device type fixed, and ``GradScaler`` for that device), as ``torch.cuda.amp``/``torch.cpu.amp``."""
from __future__ import annotations

import types

from distgrad import dtypes
from distgrad.amp.autocast_mode import autocast as _autocast
from distgrad.amp.grad_scaler import GradScaler as _GradScaler


def _namespace(device_type: str, default_dtype) -> types.SimpleNamespace:
    class autocast(_autocast):
        def __init__(self, enabled: bool = True, dtype=default_dtype, cache_enabled: bool = True):
            super().__init__(device_type, dtype=dtype, enabled=enabled, cache_enabled=cache_enabled)

    class GradScaler(_GradScaler):
        def __init__(self, init_scale: float = 2.0 ** 16, growth_factor: float = 2.0, backoff_factor: float = 0.5,
                     growth_interval: int = 2000, enabled: bool = True):
            super().__init__(device_type, init_scale, growth_factor, backoff_factor, growth_interval, enabled)

    for cls in (autocast, GradScaler):
        cls.__qualname__ = cls.__name__
        cls.__module__ = f"distgrad.{device_type}.amp"
    return types.SimpleNamespace(autocast=autocast, GradScaler=GradScaler)


cuda = _namespace("cuda", dtypes.float16)
cpu = _namespace("cpu", dtypes.bfloat16)
