"""Matrix products through cuBLAS called with ctypes: the GEMMs of a step captured in a CUDA graph.

CuPy refuses every cuBLAS call while a stream is capturing (``cublas.setStream`` raises
NotImplementedError, CuPy 14), although cuBLAS GEMMs can be captured. ``backend.matmul`` therefore sends
products made during a capture here: ``cublasGemmEx`` / ``cublasGemmStridedBatchedEx`` on the library CuPy
has loaded, with distgrad's own handle, bound to the capturing stream, and a workspace that distgrad owns
(``cublasSetStream`` resets the workspace, so it is set again after each; with a fixed workspace cuBLAS
allocates nothing during capture). See ``distgrad/cuda_graphs.py`` for the options weighed.

Row-major ``C = A @ B`` is column-major ``C^T = B^T A^T``: cuBLAS gets B first. A C-contiguous operand is,
read column-major, its own transpose (no transpose flag); an F-contiguous one (a ``.T`` view) is the
matrix itself, so it takes ``CUBLAS_OP_T``. ``gemm_arguments`` works that out without a GPU, and the tests
check it against NumPy by replaying the arguments on host buffers (``reference_gemm``).

This module imports no CuPy: ``backend`` hands it CuPy's module and the arrays.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import sys
from dataclasses import dataclass

import numpy as np

OP_N, OP_T = 0, 1
CUDA_R_32F, CUDA_R_64F, CUDA_R_16F, CUDA_R_16BF = 0, 1, 2, 14
COMPUTE_32F, COMPUTE_32F_FAST_TF32, COMPUTE_64F = 68, 77, 70
GEMM_DEFAULT = -1
WORKSPACE_BYTES = 32 << 20  # what PyTorch gives cuBLAS on Hopper (4096 KiB x 8)


@dataclass(frozen=True)
class GemmArguments:
    """What ``cublasGemm(StridedBatched)Ex`` takes for row-major ``out (batch, M, N) = a @ b``: the first cuBLAS
    operand is ``b``. Strides are in elements; ``batch`` is 1 for a plain GEMM."""

    trans_first: int
    trans_second: int
    m: int
    n: int
    k: int
    ld_first: int
    ld_second: int
    ld_out: int
    stride_first: int
    stride_second: int
    stride_out: int
    batch: int


def _operand(shape: tuple, strides: tuple, itemsize: int):
    """(transpose flag, leading dimension, batch stride) of a row-major (batch, rows, cols) operand, given
    its element strides; None when its last two dims are neither C- nor F-ordered."""
    rows, cols = shape[-2:]
    s_rows, s_cols = (s // itemsize for s in strides[-2:])
    batch_stride = strides[0] // itemsize if len(shape) == 3 else 0
    if s_cols == 1 and (s_rows >= max(1, cols) or rows == 1):  # C-ordered: read column-major as its transpose
        return OP_N, max(1, s_rows if rows > 1 else cols), batch_stride
    if s_rows == 1 and (s_cols >= max(1, rows) or cols == 1):  # F-ordered (a .T view): the matrix itself
        return OP_T, max(1, s_cols if cols > 1 else rows), batch_stride
    return None


def gemm_arguments(a_shape, a_strides, b_shape, b_strides, itemsize: int) -> GemmArguments | None:
    """cuBLAS's arguments for ``a @ b`` with a (M, K) or (batch, M, K), b (K, N) or (batch, N, K)... of equal
    batch (or a 2-D b shared by every batch); None when an operand's layout needs a copy first."""
    m, k = a_shape[-2:]
    n = b_shape[-1]
    first, second = _operand(b_shape, b_strides, itemsize), _operand(a_shape, a_strides, itemsize)
    if first is None or second is None:
        return None
    batch = a_shape[0] if len(a_shape) == 3 else 1
    if len(b_shape) == 3 and b_shape[0] != batch:
        return None
    return GemmArguments(first[0], second[0], n, m, k, first[1], second[1], n, first[2], second[2], m * n, batch)


def reference_gemm(args: GemmArguments, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """What cuBLAS computes from ``args`` on the flat buffers ``first`` (b's memory) and ``second`` (a's),
    in NumPy: column-major ``op(B') @ op(A')``, returned row-major as (batch, M, N). For the tests."""
    def column_major(buffer, trans, rows, cols, ld, stride, index):
        # the matrix op() is applied to: (rows, cols) when not transposed, else (cols, rows)
        shape = (rows, cols) if trans == OP_N else (cols, rows)
        view = np.lib.stride_tricks.as_strided(buffer[index * stride:], shape=shape,
                                               strides=(buffer.itemsize, ld * buffer.itemsize))
        return view if trans == OP_N else view.T

    out = np.empty((args.batch, args.n, args.m), np.float64)
    for i in range(args.batch):
        op_first = column_major(first, args.trans_first, args.m, args.k, args.ld_first, args.stride_first, i)
        op_second = column_major(second, args.trans_second, args.k, args.n, args.ld_second, args.stride_second, i)
        out[i] = (op_first.astype(np.float64) @ op_second.astype(np.float64)).T  # column-major (m, n) -> row-major
    return out


# --- the library --------------------------------------------------------------------------------------------
_DTYPES = {np.dtype(np.float32): CUDA_R_32F, np.dtype(np.float64): CUDA_R_64F, np.dtype(np.float16): CUDA_R_16F}


def _data_type(dtype) -> int:
    if np.dtype(dtype).name == "bfloat16":
        return CUDA_R_16BF
    try:
        return _DTYPES[np.dtype(dtype)]
    except KeyError:
        raise TypeError(f"matmul in a CUDA graph: cuBLAS has no GEMM for {np.dtype(dtype).name}") from None


def compute_type(dtype, allow_tf32: bool) -> int:
    if np.dtype(dtype) == np.float64:
        return COMPUTE_64F
    return COMPUTE_32F_FAST_TF32 if allow_tf32 and np.dtype(dtype) == np.float32 else COMPUTE_32F


def library_candidates() -> list:
    """Where libcublas may be: the sonames (found when CuPy has loaded it), then NVIDIA's wheels."""
    names = ["libcublas.so.13", "libcublas.so.12", "libcublas.so"]
    for root in sys.path:
        names += sorted(glob.glob(os.path.join(root, "nvidia", "*", "lib", "libcublas.so*")))
        names += sorted(glob.glob(os.path.join(root, "nvidia", "cublas", "lib", "libcublas.so*")))
    found = ctypes.util.find_library("cublas")
    return names + ([found] if found else [])


class Cublas:
    """distgrad's cuBLAS handle on one GPU, its workspace, and ``matmul``."""

    def __init__(self, cp):
        self.cp = cp
        self.lib = self._load()
        handle = ctypes.c_void_p()
        self._check(self.lib.cublasCreate_v2(ctypes.byref(handle)), "cublasCreate")
        self.handle = handle
        self.workspace = cp.empty(WORKSPACE_BYTES, np.uint8)  # kept for the handle's lifetime

    @staticmethod
    def _load():
        errors = []
        for name in library_candidates():
            try:
                return ctypes.CDLL(name, mode=ctypes.RTLD_GLOBAL)
            except OSError as e:
                errors.append(str(e))
        raise RuntimeError("matmul in a CUDA graph needs libcublas, which was not found: " + "; ".join(errors[:3]))

    def _check(self, status: int, call: str) -> None:
        if status:
            raise RuntimeError(f"{call} failed with cuBLAS status {status}")

    def matmul(self, a, b, allow_tf32: bool = False):
        """``a @ b`` for 2-D or 3-D CuPy arrays of one dtype (3-D: equal batches, or b 2-D), queued on the
        current stream."""
        cp = self.cp
        if a.ndim > 3 or b.ndim > 3 or a.ndim == 3 and b.ndim == 3 and a.shape[0] != b.shape[0] or \
                a.ndim == 2 and b.ndim == 3:  # one batch dim, equal on both sides (or a 2-D b)
            batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
            a3 = cp.ascontiguousarray(cp.broadcast_to(a, batch + a.shape[-2:])).reshape((-1,) + a.shape[-2:])
            b3 = cp.ascontiguousarray(cp.broadcast_to(b, batch + b.shape[-2:])).reshape((-1,) + b.shape[-2:])
            return self.matmul(a3, b3, allow_tf32).reshape(batch + (a.shape[-2], b.shape[-1]))
        if a.ndim == 1 or b.ndim == 1:
            out = self.matmul(a.reshape(1, -1) if a.ndim == 1 else a, b.reshape(-1, 1) if b.ndim == 1 else b,
                              allow_tf32)
            return out.reshape(out.shape[:-2] + ((out.shape[-2],) if a.ndim > 1 else ()) +
                               ((out.shape[-1],) if b.ndim > 1 else ()))
        args = gemm_arguments(a.shape, a.strides, b.shape, b.strides, a.dtype.itemsize)
        if args is None:
            a, b = cp.ascontiguousarray(a), cp.ascontiguousarray(b)
            args = gemm_arguments(a.shape, a.strides, b.shape, b.strides, a.dtype.itemsize)
        out = cp.empty((args.batch, args.n, args.m) if a.ndim == 3 else (args.n, args.m), a.dtype)
        if out.size == 0:
            return out
        if args.k == 0:
            out.fill(0)
            return out
        lib = self.lib
        self._check(lib.cublasSetStream_v2(self.handle, ctypes.c_void_p(cp.cuda.get_current_stream().ptr)),
                    "cublasSetStream")
        self._check(lib.cublasSetWorkspace_v2(self.handle, ctypes.c_void_p(self.workspace.data.ptr),
                                              ctypes.c_size_t(WORKSPACE_BYTES)), "cublasSetWorkspace")
        dtype, compute = _data_type(a.dtype), compute_type(a.dtype, allow_tf32)
        scalar = ctypes.c_double if compute == COMPUTE_64F else ctypes.c_float
        one, zero = scalar(1), scalar(0)
        common = (self.handle, args.trans_first, args.trans_second, args.m, args.n, args.k, ctypes.byref(one))
        if args.batch == 1 and a.ndim == 2:
            status = lib.cublasGemmEx(*common, ctypes.c_void_p(b.data.ptr), dtype, args.ld_first,
                                      ctypes.c_void_p(a.data.ptr), dtype, args.ld_second, ctypes.byref(zero),
                                      ctypes.c_void_p(out.data.ptr), dtype, args.ld_out, compute, GEMM_DEFAULT)
        else:
            status = lib.cublasGemmStridedBatchedEx(
                *common, ctypes.c_void_p(b.data.ptr), dtype, args.ld_first, ctypes.c_longlong(args.stride_first),
                ctypes.c_void_p(a.data.ptr), dtype, args.ld_second, ctypes.c_longlong(args.stride_second),
                ctypes.byref(zero), ctypes.c_void_p(out.data.ptr), dtype, args.ld_out,
                ctypes.c_longlong(args.stride_out), args.batch, compute, GEMM_DEFAULT)
        self._check(status, "cublasGemmEx")
        return out


_handles: dict = {}


def handle(cp) -> Cublas:
    """The handle of the current GPU (made on first use: make it before a capture, as warm-up does)."""
    device = cp.cuda.runtime.getDevice()
    if device not in _handles:
        cp.cuda.device.get_cublas_handle()  # makes CuPy load libcublas, so that its soname resolves
        _handles[device] = Cublas(cp)
    return _handles[device]
