"""``torch.backends.cuda``: ``matmul.allow_tf32`` switches TF32 GEMMs on GPUs; the rest is stored only."""
from __future__ import annotations

from distgrad import backend


class _MatmulFlags:
    """``backends.cuda.matmul``: its ``allow_tf32`` is live; the reduced-precision flags are stored only."""

    allow_fp16_reduced_precision_reduction = True
    allow_bf16_reduced_precision_reduction = True

    @property
    def allow_tf32(self) -> bool:
        """Float32 matrix products on GPUs may use TF32 tensor cores (CuPy's compute type); off by default."""
        return backend.float32_matmul_tf32()

    @allow_tf32.setter
    def allow_tf32(self, enabled: bool) -> None:
        backend.set_float32_matmul_tf32(enabled)


matmul = _MatmulFlags()


def is_built() -> bool:
    """True when CuPy imports, i.e. distgrad can use GPUs that are present."""
    return backend.cupy_importable()
