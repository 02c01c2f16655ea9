"""``distgrad.backends``: the switches PyTorch scripts set, such as ``torch.backends.cudnn.benchmark = True``.

Scripts set them and run unchanged. Each flag does in distgrad what its docstring says; some say
"nothing" (distgrad has no MPS). The flags that mean something:

- ``backends.cuda.matmul.allow_tf32`` (and ``dg.set_float32_matmul_precision('high')``) let float32
  matrix products on GPUs use TF32 tensor cores, through CuPy's cuBLAS compute type (and the compute
  type of the GEMMs captured in CUDA graphs). Off by default.
- ``backends.cudnn``'s ``enabled``, ``benchmark``, ``deterministic`` and ``allow_tf32`` (on by default)
  steer the cuDNN convolutions (``distgrad/kernels/cudnn_conv.py``).
- ``dg.use_deterministic_algorithms(True)`` makes the one GPU kernel without a repeatable result (the
  atomic scatter-add of indexing and embedding backward) raise, or warn with ``warn_only=True``. CPU
  ops are deterministic already.
"""
from __future__ import annotations

from distgrad import backend
from distgrad.backends import cuda, cudnn, mps  # noqa: F401

__all__ = ["cuda", "cudnn", "mps", "use_deterministic_algorithms", "are_deterministic_algorithms_enabled",
           "is_deterministic_algorithms_warn_only_enabled", "set_float32_matmul_precision",
           "get_float32_matmul_precision"]

_PRECISIONS = ("highest", "high", "medium")


def use_deterministic_algorithms(mode: bool, *, warn_only: bool = False) -> None:
    """Requires repeatable kernels: GPU ops without one raise (or warn, with ``warn_only``), as in PyTorch."""
    backend.set_deterministic_algorithms(mode, warn_only)


def are_deterministic_algorithms_enabled() -> bool:
    return backend.deterministic_algorithms()["enabled"]


def is_deterministic_algorithms_warn_only_enabled() -> bool:
    return backend.deterministic_algorithms()["warn_only"]


def set_float32_matmul_precision(precision: str) -> None:
    """``'highest'``: float32 matrix products in full float32; ``'high'`` or ``'medium'``: TF32 on GPUs that
    have it (``'medium'`` lets PyTorch use bfloat16 products; distgrad uses TF32 for it too)."""
    if precision not in _PRECISIONS:
        raise RuntimeError(f"Invalid precision {precision!r}: expected one of {list(_PRECISIONS)}")
    backend.set_float32_matmul_tf32(precision != "highest")


def get_float32_matmul_precision() -> str:
    return "high" if backend.float32_matmul_tf32() else "highest"
