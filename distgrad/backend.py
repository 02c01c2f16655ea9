"""NumPy/CuPy selection and devices: the one module that imports CuPy.

Every op is written once against an array module ``xp``; ``array_module(a)`` returns NumPy for
host arrays and CuPy for device arrays, so the same code runs on the CPU and on a GPU.
"""
from __future__ import annotations

import warnings

import numpy as np

from distgrad.dtypes import LOW_PRECISION, bfloat16, float32

try:  # CuPy is optional: the CPU build of distgrad needs NumPy alone.
    import cupy as _cupy
except Exception:  # ImportError, or a CuPy that cannot find its CUDA libraries
    _cupy = None


class Device:
    """A place where arrays live: ``Device('cpu')`` (NumPy) or ``Device('cuda', 0)`` (CuPy)."""

    __slots__ = ("type", "index")

    def __init__(self, type: str, index: int | None = None):
        if isinstance(type, Device):
            type, index = type.type, type.index
        elif ":" in type:
            type, _, idx = type.partition(":")
            if not idx.isdigit():
                raise ValueError(f"invalid device string {type}:{idx!r}; expected 'cpu', 'cuda' or 'cuda:N'")
            index = int(idx)
        if type not in ("cpu", "cuda"):
            raise ValueError(f"unknown device type {type!r}; expected 'cpu', 'cuda' or 'cuda:N'")
        if type == "cuda" and index is None:
            index = current_cuda_index() if _cupy is not None else 0
        self.type = type
        self.index = None if type == "cpu" else index

    def __eq__(self, other):
        if isinstance(other, str):
            other = Device(other)
        return isinstance(other, Device) and self.type == other.type and self.index == other.index

    def __hash__(self):
        return hash((self.type, self.index))

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self):
        return f"device(type='{self.type}'" + ("" if self.index is None else f", index={self.index}") + ")"


CPU = Device("cpu")


def cupy_module():
    """The CuPy module, or a clear error when CuPy or a GPU is missing."""
    if _cupy is None:
        raise RuntimeError("device 'cuda' needs CuPy: pip install 'distgrad[gpu]' (cupy-cuda12x)")
    return _cupy


def cupy_importable() -> bool:
    return _cupy is not None


def cuda_is_available() -> bool:
    """True when CuPy imports and sees at least one GPU."""
    return cuda_device_count() > 0


def cuda_device_count() -> int:
    if _cupy is None:
        return 0
    try:
        return _cupy.cuda.runtime.getDeviceCount()
    except Exception:
        return 0


def current_cuda_index() -> int:
    return _cupy.cuda.runtime.getDevice()


def is_device_array(a) -> bool:
    return _cupy is not None and isinstance(a, _cupy.ndarray)


def array_module(a):
    """NumPy for host arrays (and Python scalars), CuPy for device arrays."""
    if _cupy is not None and isinstance(a, _cupy.ndarray):
        return _cupy
    return np


def module_for(device: Device):
    return np if device.type == "cpu" else cupy_module()


def device_of(a) -> Device:
    if _cupy is not None and isinstance(a, _cupy.ndarray):
        return Device("cuda", a.device.id)
    return CPU


def to_device(a, device: Device):
    """Copy ``a`` to ``device`` (no copy when it is already there)."""
    if device.type == "cpu":
        if is_device_array(a):
            check_host_sync("copying a GPU tensor to the CPU", a)
            return _cupy.asnumpy(a)
        return np.asarray(a)
    if not is_device_array(a):
        check_host_sync("copying host memory to the GPU")
    cp = cupy_module()
    if device.index >= cuda_device_count():
        raise RuntimeError(f"device {device} is not available: CuPy sees {cuda_device_count()} GPU(s)")
    with cp.cuda.Device(device.index):
        return cp.asarray(a)


def cuda_device_context(device: Device):
    """A context manager making ``device`` current (a no-op for the CPU)."""
    if device.type == "cpu":
        import contextlib
        return contextlib.nullcontext()
    return cupy_module().cuda.Device(device.index)


def synchronize(device: Device | None = None) -> None:
    """Wait for all queued GPU work (a no-op on the CPU)."""
    if _cupy is not None and (device is None or device.type == "cuda"):
        _cupy.cuda.get_current_stream().synchronize()


# --- CUDA graph capture: what must not run while a step is being recorded ----------------------------
_capture = {"graph": None, "simulated": False, "rng": None}


def capturing() -> bool:
    """True while ``distgrad.cuda`` records a CUDA graph (or a CPU test simulates one)."""
    return _capture["graph"] is not None


def set_capture(graph: str | None, simulated: bool = False, rng=None) -> None:
    """Marks the start (``graph`` names it in messages) or, with None, the end of a graph capture. ``rng``
    is the capture's source of counter-based random draws (see ``capture_rng``)."""
    _capture.update(graph=graph, simulated=simulated, rng=rng)


def capture_rng():
    """While capturing: an object with ``seed``, ``counter`` (a device uint64 array of one element that the
    graph advances after each replay) and ``take(count)`` (the draw's offset from that counter); else None."""
    return _capture["rng"]


def check_host_sync(op: str, array=None) -> None:
    """Raises while a graph is being captured: ``op`` makes the host wait for the GPU (a value read back,
    a shape that depends on data, a host copy), which a CUDA graph cannot record. With ``array`` given,
    only a device array counts (a CPU tensor's ``item()`` is harmless), except in a simulated capture."""
    graph = _capture["graph"]
    if graph is None or array is not None and not is_device_array(array) and not _capture["simulated"]:
        return
    raise RuntimeError(f"{op} synchronizes with the host, which is not allowed while capturing a CUDA graph "
                       f"({graph}): do it outside the captured step, or keep the value on the GPU")


def from_dlpack(capsule_owner):
    """An array from any DLPack producer, on the producer's device, without a copy."""
    dev_type, _ = capsule_owner.__dlpack_device__()
    if int(dev_type) == 1:  # kDLCPU
        seen = _BFloat16AsBits(capsule_owner)
        array = np.from_dlpack(seen)
        return array.view(bfloat16) if seen.was_bfloat16 else array
    return cupy_module().from_dlpack(capsule_owner)  # CuPy 14 exchanges bfloat16 itself


def to_dlpack(a, *args, **kwargs):
    """``a.__dlpack__(...)``. NumPy refuses to export bfloat16, so a host bfloat16 array exports its
    uint16 bits under DLPack's bfloat16 type code (what a consumer such as PyTorch then sees)."""
    if a.dtype != bfloat16 or is_device_array(a):
        return a.__dlpack__(*args, **kwargs)
    capsule = a.view(np.uint16).__dlpack__(*args, **kwargs)
    _dlpack_dtype(capsule)[0] = _KDL_BFLOAT
    return capsule


# DLPack's C structs, as far as the dtype: a DLTensor is {void *data; int32 device_type, device_id;
# int32 ndim; uint8 code, bits; uint16 lanes; ...}; an unversioned capsule ("dltensor") points at a
# DLManagedTensor that starts with its DLTensor, a versioned one ("dltensor_versioned") at a
# DLManagedTensorVersioned, whose DLTensor follows {uint32 major, minor; void *ctx; void *deleter; uint64 flags}.
_KDL_UINT, _KDL_BFLOAT = 1, 4
_DTYPE_OFFSET = {b"dltensor": 20, b"dltensor_versioned": 32 + 20}


def _dlpack_dtype(capsule):
    """The (code, bits) bytes of the DLTensor in a DLPack capsule, writable."""
    import ctypes

    api = ctypes.pythonapi
    api.PyCapsule_GetName.restype = ctypes.c_char_p
    api.PyCapsule_GetName.argtypes = [ctypes.py_object]
    api.PyCapsule_GetPointer.restype = ctypes.c_void_p
    api.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
    name = api.PyCapsule_GetName(capsule)
    if name not in _DTYPE_OFFSET:
        raise BufferError(f"not an unconsumed DLPack capsule: {name!r}")
    address = api.PyCapsule_GetPointer(capsule, name)
    return (ctypes.c_uint8 * 2).from_address(address + _DTYPE_OFFSET[name])


class _BFloat16AsBits:
    """A DLPack producer seen through: a bfloat16 tensor is handed on as uint16 (NumPy refuses
    bfloat16), and ``was_bfloat16`` tells the caller to view the result as bfloat16 again."""

    def __init__(self, producer):
        self.producer, self.was_bfloat16 = producer, False

    def __dlpack_device__(self):
        return self.producer.__dlpack_device__()

    def __dlpack__(self, *args, **kwargs):
        capsule = self.producer.__dlpack__(*args, **kwargs)
        dtype = _dlpack_dtype(capsule)
        if (dtype[0], dtype[1]) == (_KDL_BFLOAT, 16):
            dtype[0], self.was_bfloat16 = _KDL_UINT, True
        return capsule


def matmul(a, b, out=None):
    """``a @ b`` of two arrays of one dtype; float16 and bfloat16 accumulate in float32 and round once.

    A stack of matrices times one matrix, (..., m, k) @ (k, n), runs as the one 2-D product
    (prod(...) * m, k) @ (k, n) it equals: NumPy multiplies stacks matrix by matrix outside BLAS, 10 to
    40 times slower on a transformer's shapes (NumPy 2.4), and CuPy's batched bfloat16 path fails.

    NumPy has no 16-bit matrix product worth the name (float16's is a scalar loop, thousands of times
    slower than BLAS; ml_dtypes' bfloat16 one returns float32), so on the CPU both compute in float32
    with BLAS and round on output, as PyTorch's CPU kernels do. CuPy multiplies float16 through cuBLAS
    with float32 accumulation itself. For bfloat16, CuPy 14.0-14.2 calls cuBLAS GEMM (bf16 in, fp32
    compute) for products of 1-D and 2-D operands only; its batched path rejects bfloat16 (later CuPy
    computes it in float32), so other batched bfloat16 products compute in float32.

    While a CUDA graph is captured, GPU products go through ``distgrad.cublas`` (ctypes cuBLAS), since
    CuPy refuses cuBLAS calls on a capturing stream.
    """
    if _capture["graph"] is not None and is_device_array(a):
        from distgrad import cublas
        result = cublas.handle(_cupy).matmul(a, b, float32_matmul_tf32())
    elif a.ndim > 2 and b.ndim == 2:
        result = _matmul(a.reshape(-1, a.shape[-1]), b).reshape(a.shape[:-1] + b.shape[-1:])
    else:
        result = _matmul(a, b)
    if out is None:
        return result
    out[...] = result
    return out


def _matmul(a, b):
    dtype = a.dtype
    xp = array_module(a)
    if dtype not in LOW_PRECISION or is_device_array(a) and (dtype != bfloat16 or a.ndim <= 2 and b.ndim <= 2):
        return xp.matmul(a, b)
    return xp.matmul(a.astype(float32), b.astype(float32)).astype(dtype)


def scatter_add(target, indices, values) -> None:
    """``target[indices] += values`` with repeated indices summed (``add.at`` of NumPy or CuPy).

    On a GPU the sums are atomic adds in no fixed order: not bitwise repeatable in floating point.
    A bfloat16 target on the GPU is summed in a float32 copy: CuPy's ``add.at`` works by atomic adds,
    which CuPy 14 does not promise for bfloat16, and float32 sums round once instead of per add.
    """
    if is_device_array(target):
        alert_not_deterministic("scatter_add (CuPy's add.at, used by indexing and embedding backward)")
    if target.dtype == bfloat16 and is_device_array(target):
        wide = target.astype(float32)
        _cupy.add.at(wide, indices, values.astype(float32))
        target[...] = wide.astype(bfloat16)
        return
    array_module(target).add.at(target, indices, values)


# --- the default device of new tensors -------------------------------------------------------------
_default_device = CPU


def as_device(device) -> Device:
    """A Device from a Device, a string (``'cpu'``, ``'cuda'``, ``'cuda:1'``) or a GPU index (``0``)."""
    if isinstance(device, Device):
        return device
    if isinstance(device, int) and not isinstance(device, bool):
        return Device("cuda", device)
    if isinstance(device, str):
        return Device(device)
    raise TypeError(f"expected a device (a string, an index or a distgrad.device), got {type(device).__name__}")


def default_device() -> Device:
    """Where factories (``zeros``, ``randn``, ``tensor`` of Python data ...) put tensors when given no device."""
    return _default_device


def set_default_device(device) -> None:
    """Makes ``device`` the default of the factories, as ``torch.set_default_device``; ``None`` restores the CPU."""
    global _default_device
    _default_device = CPU if device is None else as_device(device)


# --- switches that PyTorch scripts set (distgrad.backends and dg.use_deterministic_algorithms) ------
_deterministic_algorithms = {"enabled": False, "warn_only": False}


def set_deterministic_algorithms(enabled: bool, warn_only: bool = False) -> None:
    _deterministic_algorithms.update(enabled=bool(enabled), warn_only=bool(warn_only))


def deterministic_algorithms() -> dict:
    """``{'enabled': ..., 'warn_only': ...}`` as ``dg.use_deterministic_algorithms`` set them."""
    return dict(_deterministic_algorithms)


def alert_not_deterministic(op: str) -> None:
    """Raises (or warns, with ``warn_only``) when deterministic algorithms are required and ``op`` has none."""
    if not _deterministic_algorithms["enabled"]:
        return
    message = (f"{op} does not have a deterministic implementation, but you set "
               "'distgrad.use_deterministic_algorithms(True)'. You can turn off determinism just for this "
               "operation, or you can use the 'warn_only=True' option, if that's acceptable for your application.")
    if _deterministic_algorithms["warn_only"]:
        warnings.warn(message, UserWarning, stacklevel=3)
    else:
        raise RuntimeError(message)


_float32_matmul_tf32 = False


def float32_matmul_tf32() -> bool:
    return _float32_matmul_tf32


def set_float32_matmul_tf32(enabled: bool) -> None:
    """Lets float32 matrix products on GPUs use TF32 tensor cores (CuPy's cuBLAS compute type; the
    ``CUPY_TF32=1`` environment variable does the same for a whole run). Off by default, as in PyTorch."""
    global _float32_matmul_tf32
    _float32_matmul_tf32 = bool(enabled)
    if cuda_is_available():
        linalg = _cupy._core._routines_linalg  # CuPy keeps the compute type there (no public setter)
        linalg.set_compute_type(np.float32, linalg.COMPUTE_TYPE_TF32 if enabled else linalg.COMPUTE_TYPE_DEFAULT)
