"""Launchers for ``cuda/flash_attention.cu`` and the NumPy reference of what they compute.

``forward(q, k, v, scale, causal)`` returns the attention output and the log-sum-exp of each query's
scores (float32), which is all the backward keeps: ``backward`` recomputes the probabilities from q, k
and lse tile by tile. Arrays are (n, L, D) / (n, S, D) with n = batch * heads, C-contiguous, one dtype
(float32, float16 or bfloat16), head dim D in ``HEAD_DIMS``.

Tile sizes (64 query rows, 64 or 32 key rows, 128 threads) and the shared memory each kernel asks for are
set here, in ``TILES`` and ``shared_bytes``: up to 116 KB of a Hopper SM's 228 KB, so one or two blocks
share an SM; the kernels opt in above 48 KB (``runtime.launch``).
"""
from __future__ import annotations

import numpy as np

from distgrad import backend
from distgrad.kernels import policy
from distgrad.kernels.sources import KernelFile
from distgrad.kernels.runtime import launch, type_name

ROWS = 64  # query rows per block (forward, dq); key rows per block (dk/dv)
THREADS = 128
TILES = {16: 64, 32: 64, 64: 64, 128: 32}  # head dim -> rows of the other operand's tile
HEAD_DIMS = tuple(TILES)
_TYPES = ("float", "dg_half", "dg_bf16")
FILE = KernelFile("flash_attention.cu", [f"{kernel}<{t}, {d}, {tile}>"
                                         for kernel in ("flash_forward", "flash_backward_dq", "flash_backward_dkdv")
                                         for t in _TYPES for d, tile in TILES.items()])


def shared_floats(kernel: str, d: int) -> int:
    """Floats of dynamic shared memory ``kernel`` uses for head dim ``d`` (the layouts in the .cu file)."""
    tile, pad = TILES[d], d + 1
    if kernel == "flash_forward":  # q, k (padded), v, p
        return ROWS * pad + tile * pad + tile * d + ROWS * (tile + 1)
    if kernel == "flash_backward_dq":  # q, dout, k, v (padded), ds
        return 2 * ROWS * pad + 2 * tile * pad + ROWS * (tile + 1)
    # dk/dv: k, v, q, dout (padded), p and ds transposed, lse and delta of a query tile
    return 2 * ROWS * pad + 2 * tile * pad + 2 * ROWS * (tile + 1) + 2 * tile


def shared_bytes(kernel: str, d: int) -> int:
    return 4 * shared_floats(kernel, d)


def applies(q, k, v, mask, dropout_p: float, need_weights: bool) -> bool:
    """No mask other than ``is_causal``, no dropout, no weights returned, one batch shape for q, k and v,
    equal head dims in ``HEAD_DIMS``, on the GPU in one kernel dtype."""
    return (mask is None and dropout_p == 0 and not need_weights and policy.on_kernel_path(q, k, v)
            and q.ndim >= 2 and q.shape[:-2] == k.shape[:-2] == v.shape[:-2]
            and q.shape[-1] == k.shape[-1] == v.shape[-1] in TILES and q.dtype == k.dtype == v.dtype
            and q.shape[-2] > 0 and k.shape[-2] > 0 and q.size // q.shape[-1] < 2**31)


def _name(kernel: str, dtype, d: int) -> str:
    return f"{kernel}<{type_name(dtype)}, {d}, {TILES[d]}>"


def _flat(a):
    return a.reshape((-1,) + a.shape[-2:])


def forward(q, k, v, scale: float, causal: bool):
    """``(out, lse)``: out shaped like q (v's head dim), lse (n, L) float32 with n the product of batch dims."""
    xp = backend.array_module(q)
    qf, kf, vf = _flat(q), _flat(k), _flat(v)
    n, length, d = qf.shape
    out = xp.empty_like(qf)
    lse = xp.empty((n, length), np.float32)
    launch(FILE, _name("flash_forward", q.dtype, d), (-(-length // ROWS), n), THREADS,
           (qf, kf, vf, out, lse, np.int32(length), np.int32(kf.shape[1]), np.float32(scale), np.int32(causal)),
           shared_mem=shared_bytes("flash_forward", d))
    return out.reshape(q.shape), lse


def backward(grad_out, q, k, v, out, lse, scale: float, causal: bool):
    """``(dq, dk, dv)`` from the output's gradient, recomputing the probabilities from q, k and lse."""
    xp = backend.array_module(q)
    qf, kf, vf = _flat(q), _flat(k), _flat(v)
    dof = _flat(xp.ascontiguousarray(grad_out))
    n, length, d = qf.shape
    source = kf.shape[1]
    delta = (dof.astype(np.float32) * _flat(out).astype(np.float32)).sum(axis=-1)  # (n, L): dout_i . out_i
    dq, dk, dv = xp.empty_like(qf), xp.empty_like(kf), xp.empty_like(vf)
    common = (np.int32(length), np.int32(source), np.float32(scale), np.int32(causal))
    launch(FILE, _name("flash_backward_dq", q.dtype, d), (-(-length // ROWS), n), THREADS,
           (qf, kf, vf, dof, lse, delta, dq) + common, shared_mem=shared_bytes("flash_backward_dq", d))
    launch(FILE, _name("flash_backward_dkdv", q.dtype, d), (-(-source // ROWS), n), THREADS,
           (qf, kf, vf, dof, lse, delta, dk, dv) + common, shared_mem=shared_bytes("flash_backward_dkdv", d))
    return dq.reshape(q.shape), dk.reshape(k.shape), dv.reshape(v.shape)


def _probabilities(q, k, scale: float, causal: bool):
    s = _flat(q).astype(np.float32) @ np.swapaxes(_flat(k).astype(np.float32), -1, -2) * np.float32(scale)
    if causal:
        s = np.where(np.tri(s.shape[-2], s.shape[-1], dtype=bool), s, -np.inf)
    lse = np.log(np.exp(s - s.max(-1, keepdims=True)).sum(-1)) + s.max(-1)
    return np.exp(s - lse[..., None]), lse


def reference_forward(q, k, v, scale: float, causal: bool):
    """What ``forward`` computes, in float32 NumPy: ``(softmax(q k^T scale) v`` rounded to q's dtype, lse)."""
    p, lse = _probabilities(q, k, scale, causal)
    out = p @ _flat(v).astype(np.float32)
    return out.reshape(q.shape).astype(q.dtype), lse.astype(np.float32)


def reference_backward(grad_out, q, k, v, scale: float, causal: bool):
    p, _ = _probabilities(q, k, scale, causal)
    g = _flat(grad_out).astype(np.float32)
    qf, kf, vf = (_flat(a).astype(np.float32) for a in (q, k, v))
    dv = np.swapaxes(p, -1, -2) @ g
    dp = g @ np.swapaxes(vf, -1, -2)
    ds = p * (dp - (dp * p).sum(-1, keepdims=True))
    dq, dk = ds @ kf * np.float32(scale), np.swapaxes(ds, -1, -2) @ qf * np.float32(scale)
    return tuple(a.reshape(t.shape).astype(t.dtype) for a, t in ((dq, q), (dk, k), (dv, v)))
