"""Anomaly mode: record each op's forward traceback, and stop at the first NaN/Inf in backward."""
from __future__ import annotations

enabled = False


def is_anomaly_enabled() -> bool:
    return enabled


class detect_anomaly:
    """Context manager: a NaN or Inf produced in backward raises, naming the op and where it was recorded."""

    def __init__(self, check_nan: bool = True):
        self.check_nan = check_nan

    def __enter__(self):
        global enabled
        self._prev = enabled
        enabled = self.check_nan

    def __exit__(self, *exc):
        global enabled
        enabled = self._prev
        return False


class set_detect_anomaly(detect_anomaly):
    """Turns anomaly mode on or off; usable as a function or a context manager."""

    def __init__(self, mode: bool):
        global enabled
        self._prev = enabled
        enabled = bool(mode)

    def __enter__(self):
        pass
