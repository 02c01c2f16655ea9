"""``distgrad.cuda``: is a GPU here, how many, and waiting for queued work."""
from distgrad import backend


def is_available() -> bool:
    return backend.cuda_is_available()


def device_count() -> int:
    return backend.cuda_device_count()


def synchronize() -> None:
    backend.synchronize()


def current_device() -> int:
    return backend.current_cuda_index()


def set_device(index: int) -> None:
    backend.cupy_module().cuda.Device(index).use()
