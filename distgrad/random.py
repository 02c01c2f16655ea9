"""Random number generation: one seed drives NumPy (CPU tensors) and CuPy (GPU tensors)."""
from __future__ import annotations

import numpy as np

from distgrad import backend


class Generator:
    """A seeded source of random arrays; ``manual_seed`` makes runs repeatable."""

    def __init__(self, device="cpu"):
        self.device = backend.Device(device)
        self.manual_seed(np.random.SeedSequence().entropy % (2**63))

    def manual_seed(self, seed: int) -> "Generator":
        self.initial_seed_value = int(seed)
        self.numpy = np.random.Generator(np.random.PCG64(int(seed)))
        self.cuda_seed = int(seed)
        self._cupy = None
        self.kernel_offset = 0
        return self

    def manual_seed_cuda(self, seed: int) -> "Generator":
        """Reseeds the GPU draws only (``dg.cuda.manual_seed``); the CPU stream goes on undisturbed."""
        self.cuda_seed = int(seed)
        self._cupy = None
        self.kernel_offset = 0
        return self

    def take_kernel_offset(self, count: int) -> int:
        """The first of ``count`` counter values for a draw of a counter-based kernel (the GPU dropout
        kernels hash (``cuda_seed``, counter)); the next draw starts after them. Seeding restarts at 0."""
        start = self.kernel_offset
        self.kernel_offset += int(count)
        return start

    def initial_seed(self) -> int:
        return self.initial_seed_value

    def for_device(self, device):
        """The array-module generator drawing on ``device``."""
        if device.type == "cpu":
            return self.numpy
        if self._cupy is None:
            cp = backend.cupy_module()
            self._cupy = cp.random.Generator(cp.random.XORWOW(self.cuda_seed))
        return self._cupy

    def get_state(self) -> dict:
        return {"seed": self.initial_seed_value, "numpy": self.numpy.bit_generator.state,
                "kernel_offset": self.kernel_offset}

    def set_state(self, state: dict) -> None:
        self.initial_seed_value = self.cuda_seed = state["seed"]
        self.numpy.bit_generator.state = state["numpy"]
        self._cupy = None
        self.kernel_offset = state.get("kernel_offset", 0)


default_generator = Generator()


def draw_dtype(dtype) -> np.dtype:
    """The dtype the generators draw floats in for a tensor of ``dtype``: float64 for float64, else float32
    (NumPy and CuPy draw no 16-bit floats; those tensors, and integer ones, take float32 draws converted)."""
    return np.dtype(np.float64) if dtype == np.float64 else np.dtype(np.float32)


def manual_seed(seed: int) -> Generator:
    """Seeds the default generator (CPU and GPU draws) and returns it."""
    return default_generator.manual_seed(seed)


def seed() -> int:
    s = int(np.random.SeedSequence().entropy % (2**63))
    manual_seed(s)
    return s


def initial_seed() -> int:
    return default_generator.initial_seed()


def get_rng_state() -> dict:
    return default_generator.get_state()


def set_rng_state(state: dict) -> None:
    default_generator.set_state(state)
