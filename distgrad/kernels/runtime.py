"""Compiling and launching the kernels of ``distgrad/kernels/cuda/*.cu``.

A ``KernelFile`` (``sources.py``) is one source file and the template instantiations launched from it
(NVRTC's "name expressions", such as ``softmax_forward<float, true>``). CuPy compiles its text with
NVRTC, one instantiation at a time, when first launched (then CuPy caches it on disk).

``launch`` takes the arguments as CuPy's ``RawKernel`` does: arrays (pointers), None (a null pointer)
and NumPy scalars typed exactly as the kernel's parameters (``np.int32`` for ``int``, ``np.int64`` for
``dg_int64``, ``np.float32``, ``np.uint64``). Device arrays go to CuPy; host arrays, which reach here
only inside ``policy.emulated()``, go to the emulator.
"""
from __future__ import annotations

import functools

import numpy as np

from distgrad import backend
from distgrad.dtypes import bfloat16, float16, float32
from distgrad.kernels import policy
from distgrad.kernels.sources import KernelFile

STATIC_SHARED_LIMIT = 48 * 1024  # bytes of shared memory a block gets without opting in
TYPE_NAMES = {np.dtype(float32): "float", np.dtype(float16): "dg_half", np.dtype(bfloat16): "dg_bf16"}


def type_name(dtype) -> str:
    """The C++ type a kernel reads for arrays of ``dtype``."""
    return TYPE_NAMES[np.dtype(dtype)]


def launch(file: KernelFile, name: str, grid: tuple, block: tuple, args: tuple, shared_mem: int = 0) -> None:
    """Runs kernel ``name`` of ``file`` on a ``grid`` of ``block``-sized blocks with ``args``."""
    if name not in file.names:
        raise KeyError(f"{name} is not among the kernels of {file.filename}: {file.names}")
    grid, block = _dims(grid), _dims(block)
    if any(backend.is_device_array(a) for a in args):
        kernel = _cupy_kernel(file, name, backend.current_cuda_index())
        if shared_mem > STATIC_SHARED_LIMIT and kernel.max_dynamic_shared_size_bytes < shared_mem:
            kernel.max_dynamic_shared_size_bytes = shared_mem  # Hopper allows up to 227 KB per block
        kernel(grid, block, args, shared_mem=shared_mem)
        return
    if not policy.is_emulated():
        raise RuntimeError(f"kernel {name} was given host arrays outside distgrad.kernels.policy.emulated()")
    from distgrad.kernels import emulator
    emulator.launch(file, name, grid, block, args, shared_mem)


def _dims(d) -> tuple:
    d = (d,) if isinstance(d, int) else tuple(d)
    return d + (1,) * (3 - len(d))


@functools.cache
def _cupy_kernel(file: KernelFile, name: str, device: int):
    """Kernel ``name`` compiled by NVRTC on its own (one module per instantiation: the first use of one
    attention kernel does not pay for the other 35), cached here per GPU and by CuPy on disk."""
    cp = backend.cupy_module()
    return cp.RawModule(code=file.text, options=("--std=c++17",), name_expressions=[name]).get_function(name)


def blocks_for(n: int, threads: int, limit: int = 65536) -> int:
    """Blocks of ``threads`` for a grid-stride loop over ``n`` elements (at least 1, at most ``limit``)."""
    return max(1, min(limit, -(-n // threads)))


def row_threads(cols: int) -> int:
    """Threads per block for a kernel with one block per row of ``cols``: whole warps, 32 to 1024."""
    warps = min(32, max(1, -(-cols // (32 * 4))))  # about 4 elements per thread, then more per thread
    return 32 * warps
