"""``distgrad.accelerator``: PyTorch's device-agnostic view of the GPU (``torch.accelerator``), which recent
scripts use in place of ``torch.cuda``. distgrad's only accelerator is a CUDA GPU driven by CuPy."""
from __future__ import annotations

from distgrad import backend


def is_available() -> bool:
    """True when a GPU is usable (CuPy imports and sees one)."""
    return backend.cuda_is_available()


def current_accelerator(check_available: bool = False) -> backend.Device | None:
    """``device('cuda')`` when distgrad can use a GPU here, else None (``check_available`` changes nothing more)."""
    return backend.Device("cuda") if is_available() else None


def device_count() -> int:
    return backend.cuda_device_count()


def current_device_index() -> int:
    """The current GPU's index (-1 without a GPU, as PyTorch)."""
    return backend.current_cuda_index() if is_available() else -1


def set_device_index(device) -> None:
    """Makes GPU ``device`` (an index, ``'cuda:N'`` or a device) the current one."""
    backend.cupy_module().cuda.Device(backend.as_device(device).index).use()


def synchronize(device=None) -> None:
    """Waits for the work queued on the GPU (nothing without one)."""
    backend.synchronize()


current_device_idx = current_device_index
set_device_idx = set_device_index
