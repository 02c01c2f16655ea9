"""Resizing images and signals: ``interpolate`` (nearest, nearest-exact, linear, bilinear, bicubic, trilinear,
area) and the channel-to-space rearrangements ``pixel_shuffle`` / ``pixel_unshuffle``.

Every interpolation mode is separable: the output along one spatial dim is a fixed linear map of the input
along that dim. ``interpolate`` builds that map as an (out, in) matrix per dim, with PyTorch's source
coordinates and weights, and applies it with ``matmul``; nearest modes pick rows with ``index_select``.
Both are differentiable ops, so the backward (and double backward) comes from theirs: a transposed
matrix product, or a scatter-add. The matrices are small (output size by input size of one dim).

Source coordinates, as in PyTorch: with ``align_corners=True`` the corner pixels' centres line up,
``src = dst * (in - 1) / (out - 1)``; otherwise ``src = (dst + 0.5) * scale - 0.5`` (clamped at 0 for the
linear modes), where ``scale`` is ``1 / scale_factor`` when a scale factor is given (and not recomputed),
else ``in / out``. The scale is computed in float32 for float32 inputs and the nearest modes, as
PyTorch's kernels do, so that the same source pixels are picked.
"""
from __future__ import annotations

import math

import numpy as np

from distgrad.dtypes import compute_dtype, is_floating_point
from distgrad.ops.autocasting import autocast_op
from distgrad.ops.indexing import index_select
from distgrad.ops.linalg import matmul
from distgrad.ops.pooling import averaging_matrix
from distgrad.tensor import Tensor

__all__ = ["interpolate", "pixel_shuffle", "pixel_unshuffle"]

_MODE_DIMS = {"linear": 1, "bilinear": 2, "bicubic": 2, "trilinear": 3}
_MODES = ("nearest", "nearest-exact", "linear", "bilinear", "bicubic", "trilinear", "area")
_CUBIC_A = -0.75  # the cubic convolution's parameter in PyTorch (and OpenCV)


# --- the per-dim maps ------------------------------------------------------------------------------
def _scale(size: int, out: int, scale_factor, align_corners: bool, dtype):
    """The step in input coordinates per output pixel, in ``dtype`` (PyTorch's area_pixel_compute_scale)."""
    if align_corners:
        return dtype.type((size - 1) / (out - 1)) if out > 1 else dtype.type(0)
    if scale_factor is not None:
        return dtype.type(1.0 / scale_factor)
    return dtype.type(size) / dtype.type(out)


def nearest_indices(size: int, out: int, scale_factor, exact: bool) -> np.ndarray:
    """The input index each output index copies (``nearest``: floor(dst * scale); ``-exact``: of the centre).

    ``nearest`` copies when the sizes are equal and halves the index when the output is twice the input,
    whatever the scale factor, as PyTorch's kernel does.
    """
    if not exact and out in (size, 2 * size):
        return np.arange(out) // (out // size)
    dst = np.arange(out, dtype=np.float32)
    if exact:
        dst += np.float32(0.5)
    scale = _scale(size, out, scale_factor, False, np.dtype(np.float32))
    return np.minimum(np.floor(dst * scale).astype(np.int64), size - 1)


def _source_coordinates(size: int, out: int, scale_factor, align_corners: bool, cubic: bool, dtype) -> np.ndarray:
    scale = _scale(size, out, scale_factor, align_corners, dtype)
    dst = np.arange(out, dtype=dtype)
    if align_corners:
        return dst * scale
    src = (dst + dtype.type(0.5)) * scale - dtype.type(0.5)
    return src if cubic else np.maximum(src, 0)


def linear_matrix(size: int, out: int, scale_factor, align_corners: bool, dtype) -> np.ndarray:
    """(out, size): each output is a blend of the two input pixels around its source coordinate."""
    src = _source_coordinates(size, out, scale_factor, align_corners, False, dtype)
    left = np.minimum(np.floor(src).astype(np.int64), size - 1)
    weight = np.clip(src - left, 0, 1)
    right = left + (left < size - 1)
    matrix = np.zeros((out, size), dtype)
    rows = np.arange(out)
    np.add.at(matrix, (rows, left), 1 - weight)
    np.add.at(matrix, (rows, right), weight)
    return matrix


def _cubic_weights(t):
    """The four weights of pixels at offsets -1, 0, 1, 2 from ``floor(src)``, for fraction ``t``."""
    a = _CUBIC_A

    def near(x):  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x):  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return far(t + 1), near(t), near(1 - t), far(2 - t)


def cubic_matrix(size: int, out: int, scale_factor, align_corners: bool, dtype) -> np.ndarray:
    """(out, size): cubic convolution of the four pixels around each source coordinate (edges repeated)."""
    src = _source_coordinates(size, out, scale_factor, align_corners, True, dtype)
    base = np.floor(src)
    weights = _cubic_weights(src - base)
    matrix = np.zeros((out, size), dtype)
    rows = np.arange(out)
    for offset, weight in zip(range(-1, 3), weights):
        np.add.at(matrix, (rows, np.clip(base.astype(np.int64) + offset, 0, size - 1)), weight)
    return matrix


def _apply_along(x: Tensor, dim: int, matrix: np.ndarray) -> Tensor:
    """``matrix`` (out, in) applied along dim ``dim`` of ``x`` (a spatial dim, counted from the front)."""
    m = Tensor(x._xp.asarray(matrix.astype(x.dtype, copy=False)))
    if dim == x.ndim - 1:
        return matmul(x, m.t())
    lead, rest = x.shape[:dim], x.shape[dim + 1:]
    out = matmul(m, x.reshape(lead + (x.shape[dim], math.prod(rest))))
    return out.reshape(lead + (matrix.shape[0],) + rest)


# --- interpolate -------------------------------------------------------------------------------------------
def _output_size(input: Tensor, size, scale_factor, spatial: int) -> tuple:
    if size is not None and scale_factor is not None:
        raise ValueError("only one of size or scale_factor should be defined")
    if size is None and scale_factor is None:
        raise ValueError("either size or scale_factor should be defined")
    in_sizes = list(input.shape[2:])
    if size is not None:
        sizes = list(size) if isinstance(size, (tuple, list)) else [size] * spatial
        if len(sizes) != spatial:
            raise ValueError(f"Input and output must have the same number of spatial dimensions, but got input with "
                             f"spatial dimensions of {in_sizes} and output size of {sizes}. Please provide input "
                             "tensor in (N, C, d1, d2, ...,dK) format and output size in (o1, o2, ...,oK) format.")
        return tuple(int(s) for s in sizes), (None,) * spatial
    factors = list(scale_factor) if isinstance(scale_factor, (tuple, list)) else [scale_factor] * spatial
    if len(factors) != spatial:
        raise ValueError(f"Input and scale_factor must have the same number of spatial dimensions, but got input "
                         f"with spatial dimensions of {in_sizes} and scale_factor of shape {factors}. Please provide "
                         "input tensor in (N, C, d1, d2, ...,dK) format and scale_factor in (s1, s2, ...,sK) format.")
    return tuple(math.floor(float(n * f)) for n, f in zip(in_sizes, factors)), tuple(float(f) for f in factors)


@autocast_op()
def interpolate(input: Tensor, size=None, scale_factor=None, mode: str = "nearest", align_corners: bool | None = None,
                recompute_scale_factor: bool | None = None, antialias: bool = False) -> Tensor:
    """Resizes the spatial dims of (N, C, L), (N, C, H, W) or (N, C, D, H, W) ``input`` to ``size``, or by
    ``scale_factor``, as ``torch.nn.functional.interpolate`` (``antialias`` is not supported)."""
    if mode not in _MODES:
        raise NotImplementedError(f"Input Error: Only 3D, 4D and 5D input Tensors supported (got {input.ndim}D) "
                                  f"for the modes: {' | '.join(_MODES)} (got {mode})")
    if input.ndim not in (3, 4, 5):
        raise NotImplementedError(f"Input Error: Only 3D, 4D and 5D input Tensors supported (got {input.ndim}D) "
                                  f"for the modes: {' | '.join(_MODES)} (got {mode})")
    spatial = input.ndim - 2
    if mode in _MODE_DIMS and _MODE_DIMS[mode] != spatial:
        raise NotImplementedError(f"Got {input.ndim}D input, but {mode} mode needs {_MODE_DIMS[mode] + 2}D input")
    if mode in ("nearest", "nearest-exact", "area") and align_corners is not None:
        raise ValueError("align_corners option can only be set with the interpolating modes: "
                         "linear | bilinear | bicubic | trilinear")
    if antialias:
        raise NotImplementedError("interpolate: antialias=True is not supported by distgrad")
    out_sizes, factors = _output_size(input, size, scale_factor, spatial)
    if recompute_scale_factor:
        factors = (None,) * spatial
    if any(s <= 0 for s in out_sizes):
        raise RuntimeError(f"Input and output sizes should be greater than 0, but got input {list(input.shape[2:])} "
                           f"and output {list(out_sizes)}")
    if mode == "area":
        return _area(input, out_sizes)
    if not is_floating_point(input.dtype):
        raise RuntimeError(f"interpolate: expected a floating point input, got {input.dtype.name}")
    dtype = compute_dtype(input.dtype)
    out = input
    for axis, (n, m, factor) in enumerate(zip(input.shape[2:], out_sizes, factors), start=2):
        if mode in ("nearest", "nearest-exact"):
            index = nearest_indices(n, m, factor, exact=mode == "nearest-exact")
            if not np.array_equal(index, np.arange(n)):
                out = index_select(out, axis, Tensor(input._xp.asarray(index)))
        elif n == m and factor is None:
            continue  # the source coordinates are the output's own: nothing to blend
        elif mode == "bicubic":
            out = _apply_along(out, axis, cubic_matrix(n, m, factor, bool(align_corners), dtype))
        else:
            out = _apply_along(out, axis, linear_matrix(n, m, factor, bool(align_corners), dtype))
    return out if out is not input else input.clone()  # a new tensor, as PyTorch returns


def _area(input: Tensor, out_sizes: tuple) -> Tensor:
    """``mode='area'``: adaptive average pooling, window i spanning [floor(i*n/out), ceil((i+1)*n/out))."""
    out = input
    for axis, (n, m) in enumerate(zip(input.shape[2:], out_sizes), start=2):
        if n != m:
            out = _apply_along(out, axis, averaging_matrix(n, m, np, input.dtype))
    return out if out is not input else input.clone()


# --- pixel shuffle -----------------------------------------------------------------------------------------
def _check_rearrangement(op: str, input: Tensor, factor: int, name: str) -> int:
    if input.ndim < 3:
        raise RuntimeError(f"{op} expects input to have at least 3 dimensions, but got input with {input.ndim} "
                           "dimension(s)")
    if int(factor) <= 0:
        raise RuntimeError(f"{op} expects a positive {name}, but got {factor}")
    return int(factor)


def pixel_shuffle(input: Tensor, upscale_factor: int) -> Tensor:
    """(*, C * r**2, H, W) -> (*, C, H * r, W * r): each group of r**2 channels becomes an r-by-r block of pixels."""
    r = _check_rearrangement("pixel_shuffle", input, upscale_factor, "upscale_factor")
    *lead, channels, h, w = input.shape
    if channels % (r * r):
        raise RuntimeError(f"pixel_shuffle expects its input's 'channel' dimension to be divisible by the square of "
                           f"upscale_factor, but input.size(-3)={channels} is not divisible by {r * r}")
    c, k = channels // (r * r), len(lead)
    blocks = input.reshape(*lead, c, r, r, h, w)
    order = tuple(range(k)) + (k, k + 3, k + 1, k + 4, k + 2)
    return blocks.permute(order).reshape(*lead, c, h * r, w * r)


def pixel_unshuffle(input: Tensor, downscale_factor: int) -> Tensor:
    """(*, C, H * r, W * r) -> (*, C * r**2, H, W): the inverse of ``pixel_shuffle``."""
    r = _check_rearrangement("pixel_unshuffle", input, downscale_factor, "downscale_factor")
    *lead, c, height, width = input.shape
    if height % r or width % r:
        raise RuntimeError(f"pixel_unshuffle expects height and width to be divisible by downscale_factor, but "
                           f"input.size(-2)={height} and input.size(-1)={width} are not both divisible by {r}")
    k = len(lead)
    blocks = input.reshape(*lead, c, height // r, r, width // r, r)
    order = tuple(range(k)) + (k, k + 2, k + 4, k + 1, k + 3)
    return blocks.permute(order).reshape(*lead, c * r * r, height // r, width // r)
