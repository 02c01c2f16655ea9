"""Mixed precision for the benchmark workloads, in either library: ``autocast`` and ``GradScaler`` by name.

``mixed_precision(lib, device, "bf16")`` gives what a training step needs (``lib`` is ``distgrad`` or
``torch``: both spell these the same), so that one step function serves float32, bfloat16 and float16
in both libraries (W7's GPT, W2's CNN and the W8 comparison of ``benchmarks/amp_step.py``).
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AMP_DTYPES", "MixedPrecision", "mixed_precision"]

AMP_DTYPES = {"bf16": "bfloat16", "fp16": "float16"}


@dataclass
class MixedPrecision:
    """How a training step runs: ``autocast`` (a reusable region; off for float32) around forward and
    loss, and ``scaler`` (a ``GradScaler``, enabled for float16 only) around backward and the step."""

    autocast: object
    scaler: object


def mixed_precision(lib, device, amp: str | None) -> MixedPrecision:
    """``lib``'s autocast to ``amp`` ("bf16", "fp16" or None: float32) on ``device``'s type, and its scaler."""
    device_type = "cuda" if str(device).startswith("cuda") else "cpu"
    dtype = getattr(lib, AMP_DTYPES[amp]) if amp else None
    return MixedPrecision(lib.autocast(device_type, dtype=dtype, enabled=amp is not None),
                          lib.amp.GradScaler(device_type, enabled=amp == "fp16"))
