"""Runs distgrad's CUDA kernels on the CPU, for tests: the kernel file is compiled with g++ against
``cuda/emulator.h`` (one std::thread per CUDA thread, blocks one after another) and launched through
ctypes with the same argument tuple that CuPy's ``RawKernel`` takes.

This checks what a test on the CPU can check of a kernel: its indexing, its reductions and barriers,
its masking and its numerics in float32, and the Python code that sizes the grid and allocates the
outputs. It cannot check speed, or anything the GPU does differently from ``emulator.h``'s model.
Each launch is slow (a thread per CUDA thread): tests use small shapes.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile

import numpy as np

from distgrad.kernels.sources import SOURCE_DIR, KernelFile

_SCALARS = {np.dtype(np.int32): ctypes.c_int32, np.dtype(np.int64): ctypes.c_int64,
            np.dtype(np.uint32): ctypes.c_uint32, np.dtype(np.uint64): ctypes.c_uint64,
            np.dtype(np.float32): ctypes.c_float, np.dtype(np.float64): ctypes.c_double}


def compiler() -> str | None:
    """The C++ compiler the emulator builds with (``$CXX``, else g++), or None when there is none."""
    return shutil.which(os.environ.get("CXX", "g++"))


def available() -> bool:
    return compiler() is not None


def wrapped_source(file: KernelFile) -> str:
    """The kernel file followed by one ``extern "C"`` launcher per kernel name: ``dg_launch_<i>``."""
    launchers = "\n".join(
        f'extern "C" int dg_launch_{i}(const unsigned int* dims, unsigned long long shared, void** args, '
        f'const unsigned long long* sizes, int count) {{\n'
        f'    return dg_emu::launch(&{name}, dims, shared, args, (const std::uint64_t*)sizes, count);\n}}'
        for i, name in enumerate(file.names))
    return file.text + "\n" + launchers + "\n"


@functools.cache
def _library(file: KernelFile) -> ctypes.CDLL:
    cxx = compiler()
    if cxx is None:
        raise RuntimeError("the kernel emulator needs a C++20 compiler (g++), and none was found")
    text = wrapped_source(file)
    digest = hashlib.sha256(text.encode() + open(os.path.join(SOURCE_DIR, "emulator.h"), "rb").read()).hexdigest()[:16]
    folder = os.path.join(tempfile.gettempdir(), f"distgrad-kernel-emulator-{os.getuid()}")
    os.makedirs(folder, exist_ok=True)
    library = os.path.join(folder, f"{file.filename}.{digest}.so")
    if not os.path.exists(library):
        source = library[:-3] + ".cpp"
        with open(source, "w") as f:
            f.write(text)
        partial = library + f".{os.getpid()}"
        command = [cxx, "-std=c++20", "-O1", "-fPIC", "-shared", "-w", "-include",
                   os.path.join(SOURCE_DIR, "emulator.h"), source, "-o", partial]
        built = subprocess.run(command, capture_output=True, text=True)
        if built.returncode:
            raise RuntimeError(f"compiling {file.filename} for the emulator failed:\n{built.stderr[-4000:]}")
        os.replace(partial, library)  # atomic: a parallel test run sees the whole library or none
    return ctypes.CDLL(library)


def _argument(value):
    """(ctypes value, size in bytes) of one kernel argument."""
    if value is None:
        return ctypes.c_void_p(0), 8
    if isinstance(value, np.ndarray):  # stands for a device array: a pointer (0-d ones too)
        return ctypes.c_void_p(value.ctypes.data), 8
    if isinstance(value, np.generic) and value.dtype in _SCALARS:
        scalar = _SCALARS[value.dtype](value.item())
        return scalar, ctypes.sizeof(scalar)
    raise TypeError(f"kernel argument of type {type(value).__name__}: pass arrays, None or typed NumPy scalars "
                    f"(np.int32, np.int64, np.uint64, np.float32)")


def launch(file: KernelFile, name: str, grid: tuple, block: tuple, args: tuple, shared_mem: int = 0) -> None:
    library = _library(file)
    function = getattr(library, f"dg_launch_{file.names.index(name)}")
    values = [_argument(a) for a in args]
    for a in args:
        if isinstance(a, np.ndarray) and not a.flags.c_contiguous:
            raise ValueError(f"kernel {name}: arrays must be C-contiguous")
    argv = (ctypes.c_void_p * max(1, len(values)))(*[ctypes.addressof(v) for v, _ in values])
    sizes = (ctypes.c_uint64 * max(1, len(values)))(*[s for _, s in values])
    dims = (ctypes.c_uint32 * 6)(*grid, *block)
    status = function(dims, ctypes.c_uint64(shared_mem), argv, sizes, ctypes.c_int(len(values)))
    if status == -1:
        raise TypeError(f"kernel {name} was given {len(values)} arguments, not the number it takes")
    if status == -3:
        raise RuntimeError(f"kernel {name} deadlocked on the emulator: its threads wait at barriers that cannot "
                           f"complete (a __syncthreads or shuffle that some threads of a block or warp skip)")
    if status == -2:
        raise ValueError(f"kernel {name}: the emulator needs blocks of whole warps, got {block}")
    if status > 0:
        raise TypeError(f"kernel {name}: argument {status - 1} ({args[status - 1]!r:.40}) is {values[status - 1][1]} "
                        f"bytes, not the size of the kernel's parameter")
