"""2-D pooling: ``max_pool2d``, ``avg_pool2d``, ``adaptive_avg_pool2d`` (and their 1-D forms).

A pooling window has kh*kw offsets; for each offset, one strided slice of the (padded) input holds
that offset's element of every window at once. Forward and backward loop over the kh*kw offsets
and never over pixels. Each backward is linear in the incoming gradient and is itself a Function
whose backward is the forward again (or, for max pooling, a gather at the argmax), so pooling can
be differentiated twice.

Pooling treats every (H, W) plane alike, so it works on the array in the order memory holds it
(see ``PlaneLayout``): conv2d's outputs, (N, C, H, W) views of batch-last (C, H, W, N) memory, are
pooled without transposing copies and give outputs in the same layout.
"""
from __future__ import annotations

import math
from typing import NamedTuple

from distgrad.autograd.function import Function
from distgrad.backend import array_module
from distgrad.dtypes import FLOATING
from distgrad.ops.autocasting import autocast_op
from distgrad.ops.conv import as_pair
from distgrad.ops.linalg import matmul
from distgrad.tensor import Tensor

__all__ = ["max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "max_pool1d", "avg_pool1d"]


class PoolGeometry(NamedTuple):
    """A pooling over inputs of spatial size ``in_hw`` giving ``out_hw``; ``padding`` is (ph, pw)."""

    kernel: tuple
    stride: tuple
    padding: tuple
    dilation: tuple
    in_hw: tuple
    out_hw: tuple

    def padded_hw(self) -> tuple:
        """The padded input's size: the input, its padding, and room for windows that ceil_mode adds."""
        return tuple(max(size + 2 * pad, (out - 1) * s + d * (k - 1) + 1) for size, pad, out, s, d, k in zip(
            self.in_hw, self.padding, self.out_hw, self.stride, self.dilation, self.kernel))

    def tiles(self) -> bool:
        """Whether the windows cover the padded input exactly, each element in one window (as for kernel = stride)."""
        return all(out * k == size and (s == k and (d == 1 or k == 1)) for out, k, size, s, d in zip(
            self.out_hw, self.kernel, self.padded_hw(), self.stride, self.dilation))

    def window_slices(self):
        """(offset number, index) per kernel offset: the index picks that offset of every window."""
        (kh, kw), (sh, sw), (dh, dw) = self.kernel, self.stride, self.dilation
        ho, wo = self.out_hw
        for i in range(kh):
            for j in range(kw):
                yield i * kw + j, (slice(None), slice(i * dh, i * dh + sh * (ho - 1) + 1, sh),
                                   slice(j * dw, j * dw + sw * (wo - 1) + 1, sw))

    def interior(self) -> tuple:
        """The index of the input inside the padded input."""
        (ph, pw), (h, w) = self.padding, self.in_hw
        return slice(None), slice(ph, ph + h), slice(pw, pw + w)


class PlaneLayout(NamedTuple):
    """The memory order of an (N, C, H, W) array: ``order`` permutes its axes into the order memory holds them.

    Pooling works on the array's *planes*: the array in memory order, seen as (A, H, W, B) where A
    gathers the axes before the spatial ones and B those after them (the batch, for batch-last
    memory), so that window slices need no transposing copy.
    """

    order: tuple
    batch: int
    channels: int

    @staticmethod
    def of(a) -> PlaneLayout:
        """The layout of ``a``: batch-first, channel-first or batch-last memory, else (a copy) batch-first."""
        order = next((order for order in ((0, 1, 2, 3), (1, 0, 2, 3), (1, 2, 3, 0))
                      if a.transpose(order).flags.c_contiguous), (0, 1, 2, 3))
        return PlaneLayout(order, a.shape[0], a.shape[1])

    def planes(self, a):
        """``a`` (N, C, H, W) as contiguous planes (A, H, W, B), copied only when its memory is in another order."""
        in_order = array_module(a).ascontiguousarray(a.transpose(self.order))
        spatial = self.order.index(2)
        before, after = in_order.shape[:spatial], in_order.shape[spatial + 2:]
        return in_order.reshape(math.prod(before), *a.shape[2:], math.prod(after))

    def unplanes(self, planes):
        """Planes (A, H', W', B) as an (N, C, H', W') view."""
        sizes = (self.batch, self.channels) + planes.shape[1:3]
        inverse = tuple(self.order.index(axis) for axis in range(4))
        return planes.reshape(tuple(sizes[axis] for axis in self.order)).transpose(inverse)


def _pad(x, geo: PoolGeometry, fill):
    """Planes ``x`` in a buffer of ``geo.padded_hw()`` filled with ``fill`` around them (``x`` when none is needed)."""
    if geo.padded_hw() == tuple(x.shape[1:3]):
        return x
    xp = array_module(x)
    padded = xp.full(x.shape[:1] + geo.padded_hw() + x.shape[3:], fill, x.dtype)
    padded[geo.interior()] = x
    return padded


def _spread(values_per_offset, values_shape: tuple, dtype, xp, geo: PoolGeometry):
    """The adjoint of taking window slices: adds each offset's values (A, Ho, Wo, B) into planes (A, H, W, B)."""
    shape = values_shape[:1] + geo.padded_hw() + values_shape[3:]
    if geo.tiles():  # each element is written once: no zero fill, no read-modify-write
        padded = xp.empty(shape, dtype)
        for offset, index in geo.window_slices():
            padded[index] = values_per_offset(offset)
        return padded[geo.interior()]
    padded = xp.zeros(shape, dtype)
    for offset, index in geo.window_slices():
        padded[index] += values_per_offset(offset)
    return padded[geo.interior()]


# --- max pooling ----------------------------------------------------------------------------------
# Selections below are arithmetic (a maximum, a bitwise and) rather than masked copies: with the random
# masks that pooling produces, NumPy's masked copies and ``where`` are about ten times slower.
def _lowest(dtype, xp):
    return -xp.inf if dtype in FLOATING else xp.iinfo(dtype).min


_SAME_SIZE_INT = {1: "int8", 2: "int16", 4: "int32", 8: "int64"}


def _select(mask, values):
    """``values`` where ``mask`` is True, else exactly 0 (an inf or NaN elsewhere does not leak, as with ``* mask``)."""
    bits = values.view(_SAME_SIZE_INT[values.dtype.itemsize])
    return (bits & -mask.astype(bits.dtype)).view(values.dtype)


def _offset_dtype(geo: PoolGeometry, xp):
    """The smallest integer type that numbers the window offsets (small types make the passes over them cheap)."""
    return xp.uint8 if geo.kernel[0] * geo.kernel[1] <= 256 else xp.int32


class MaxPool2d(Function):
    """The maximum of each window (ties: the first; NaN wins, as in torch); with ``return_indices``, also
    each maximum's flat position in its input plane (an integer output, outside the graph)."""

    @staticmethod
    def forward(ctx, x, geo, return_indices):
        xp = x._xp
        layout = PlaneLayout.of(x.array)
        padded = _pad(layout.planes(x.array), geo, _lowest(x.dtype, xp))
        best = argmax = None
        for offset, index in geo.window_slices():
            window = padded[index]
            if best is None:
                best = window.copy()
                argmax = xp.zeros(best.shape, _offset_dtype(geo, xp))
                continue
            better = window > best
            if x.dtype in FLOATING:
                better |= xp.isnan(window)  # torch's CPU kernel: a NaN replaces the maximum so far
            xp.maximum(best, window, out=best)
            xp.maximum(argmax, better * argmax.dtype.type(offset), out=argmax)  # offsets grow: the latest better wins
        ctx.geo, ctx.argmax, ctx.layout = geo, argmax, layout
        best = layout.unplanes(best)
        return (best, layout.unplanes(_flat_indices(argmax, geo))) if return_indices else best

    @staticmethod
    def backward(ctx, grad, *_):
        return ScatterToArgmax.apply(grad, ctx.argmax, ctx.geo, ctx.layout), None, None


class ScatterToArgmax(Function):
    """Each window's value added at its maximum's position in an input-shaped array (max pooling's backward).

    ``argmax`` holds, as planes of ``layout``, each window's offset of its maximum."""

    @staticmethod
    def forward(ctx, g, argmax, geo, layout):
        ctx.argmax, ctx.geo, ctx.layout = argmax, geo, layout
        g_planes = layout.planes(g.array)
        spread = _spread(lambda offset: _select(argmax == offset, g_planes), argmax.shape, g.dtype, g._xp, geo)
        return layout.unplanes(spread)

    @staticmethod
    def backward(ctx, grad):
        return GatherAtArgmax.apply(grad, ctx.argmax, ctx.geo, ctx.layout), None, None, None


class GatherAtArgmax(Function):
    """Each window's element at its maximum's position (the adjoint of ``ScatterToArgmax``)."""

    @staticmethod
    def forward(ctx, x, argmax, geo, layout):
        ctx.argmax, ctx.geo, ctx.layout = argmax, geo, layout
        padded = _pad(layout.planes(x.array), geo, 0)
        out = x._xp.zeros(argmax.shape, x.dtype)
        for offset, index in geo.window_slices():
            out += _select(argmax == offset, padded[index])
        return layout.unplanes(out)

    @staticmethod
    def backward(ctx, grad):
        return ScatterToArgmax.apply(grad, ctx.argmax, ctx.geo, ctx.layout), None, None, None


def _flat_indices(argmax, geo: PoolGeometry):
    """torch's ``return_indices``: each maximum's position as ``h * W + w`` in its (unpadded) input plane, as planes."""
    xp = array_module(argmax)
    (sh, sw), (dh, dw), (ph, pw) = geo.stride, geo.dilation, geo.padding
    kw, width = geo.kernel[1], geo.in_hw[1]
    ho, wo = geo.out_hw
    argmax = argmax.astype(xp.int64)
    rows = (xp.arange(ho) * sh - ph)[:, None, None] + (argmax // kw) * dh
    cols = (xp.arange(wo) * sw - pw)[:, None] + (argmax % kw) * dw
    return rows * width + cols


# --- average pooling ------------------------------------------------------------------------------
def _window_counts(geo: PoolGeometry, count_include_pad: bool, divisor_override, xp, dtype):
    """The divisor of each window as torch computes it, (Ho, Wo, 1) to divide planes (A, Ho, Wo, B)."""
    if divisor_override is not None:
        return xp.asarray(divisor_override, dtype)
    sizes = []
    for size, pad, out, s, k in zip(geo.in_hw, geo.padding, geo.out_hw, geo.stride, geo.kernel):
        start = xp.arange(out) * s - pad
        end = xp.minimum(start + k, size + pad)  # windows that ceil_mode adds stop at the padding
        sizes.append(end - start if count_include_pad else xp.minimum(end, size) - xp.maximum(start, 0))
    return (sizes[0][:, None, None] * sizes[1][:, None]).astype(dtype)


class AvgPool2d(Function):
    """The sum of each window divided by ``divisor`` (Ho, Wo, 1)."""

    @staticmethod
    def forward(ctx, x, geo, divisor):
        ctx.geo, ctx.divisor = geo, divisor
        layout = PlaneLayout.of(x.array)
        padded = _pad(layout.planes(x.array), geo, 0)
        total = x._xp.zeros(padded.shape[:1] + geo.out_hw + padded.shape[3:], x.dtype)
        for _, index in geo.window_slices():
            total += padded[index]
        total /= divisor
        return layout.unplanes(total)

    @staticmethod
    def backward(ctx, grad):
        return SpreadOverWindows.apply(grad, ctx.geo, ctx.divisor), None, None


class SpreadOverWindows(Function):
    """Each window's value divided by ``divisor`` and added to every element of the window (avg pooling's backward)."""

    @staticmethod
    def forward(ctx, g, geo, divisor):
        ctx.geo, ctx.divisor = geo, divisor
        layout = PlaneLayout.of(g.array)
        share = layout.planes(g.array) / divisor
        return layout.unplanes(_spread(lambda offset: share, share.shape, g.dtype, g._xp, geo))

    @staticmethod
    def backward(ctx, grad):
        return AvgPool2d.apply(grad, ctx.geo, ctx.divisor), None, None


# --- arguments and the public functions -----------------------------------------------------------
def _pool_geometry(op: str, input: Tensor, kernel_size, stride, padding, dilation, ceil_mode: bool) -> PoolGeometry:
    if input.ndim not in (3, 4) or any(s == 0 for s in input.shape[-3:]):
        if input.ndim == 4 and input.shape[1] == 0:
            raise RuntimeError("Expected 3D or 4D (batch mode) tensor with optional 0 dim batch size for input, "
                               f"but got:{list(input.shape)}")
        raise RuntimeError("non-empty 3D or 4D (batch mode) tensor expected for input")
    kernel = _pool_pair(op, kernel_size, "kernel_size")
    stride = kernel if stride is None or stride == [] or stride == () else _pool_pair(op, stride, "stride")
    padding, dilation = _pool_pair(op, padding, "padding"), _pool_pair(op, dilation, "dilation")
    if min(stride) <= 0:
        raise RuntimeError("stride should not be zero")
    if min(kernel) <= 0:
        raise RuntimeError(f"kernel size should be greater than zero, but got kH: {kernel[0]} kW: {kernel[1]}")
    if min(dilation) <= 0:
        raise RuntimeError(f"dilation should be greater than zero, but got dilationH: {dilation[0]} "
                           f"dilationW: {dilation[1]}")
    for p, k, d in zip(padding, kernel, dilation):
        if p < 0 or p > (d * (k - 1) + 1) // 2:
            raise RuntimeError(f"pad should be at most half of effective kernel size, but got pad={p}, "
                               f"kernel_size={k} and dilation={d}")
    in_hw = tuple(input.shape[-2:])
    out_hw = tuple(_output_size(*args, ceil_mode) for args in zip(in_hw, kernel, stride, padding, dilation))
    if min(out_hw) < 1:
        channels = input.shape[-3]
        raise RuntimeError(f"Given input size: ({channels}x{in_hw[0]}x{in_hw[1]}). Calculated output size: "
                           f"({channels}x{out_hw[0]}x{out_hw[1]}). Output size is too small")
    return PoolGeometry(kernel, stride, padding, dilation, in_hw, out_hw)


def _pool_pair(op: str, value, name: str) -> tuple:
    if isinstance(value, (tuple, list)) and len(value) not in (1, 2):
        raise RuntimeError(f"{op}: {name} must either be a single int, or a tuple of two ints")
    return as_pair(value, name)


def _output_size(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """torch's pooling_output_shape: with ceil_mode, the last window must start inside the input or left padding."""
    span = size + 2 * p - d * (k - 1) - 1
    out = (span + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def _batched(input: Tensor, fn):
    """Runs ``fn`` on ``input`` with a batch dimension, added and removed again for a 3-D (C, H, W) input."""
    if input.ndim != 3:
        return fn(input)
    out = fn(input.unsqueeze(0))
    return tuple(o.squeeze(0) for o in out) if isinstance(out, tuple) else out.squeeze(0)


def max_pool2d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False):
    """The maximum over each (dilated) window of ``input`` (N, C, H, W) or (C, H, W), padded with -inf.

    With ``return_indices``, also each maximum's flat position ``h * W + w`` in its input plane.
    """
    geo = _pool_geometry("max_pool2d", input, kernel_size, stride, padding, dilation, ceil_mode)

    return _batched(input, lambda x: MaxPool2d.apply(x, geo, return_indices))


def avg_pool2d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: int | None = None) -> Tensor:
    """The mean over each window of ``input`` (N, C, H, W) or (C, H, W), zero-padded.

    The divisor is the window size (``count_include_pad``), the number of input elements in the
    window (otherwise), or ``divisor_override``.
    """
    if divisor_override is not None and divisor_override == 0:
        raise RuntimeError("divisor must be not zero")
    if input.dtype not in FLOATING:
        raise RuntimeError(f"avg_pool2d: expected a floating point input, but got {input.dtype.name} "
                           "(distgrad does not average integer tensors)")
    geo = _pool_geometry("avg_pool2d", input, kernel_size, stride, padding, 1, ceil_mode)
    divisor = _window_counts(geo, count_include_pad, divisor_override, input._xp, input.dtype)
    return _batched(input, lambda x: AvgPool2d.apply(x, geo, divisor))


@autocast_op()  # PyTorch's is one kernel, left alone by autocast; this one multiplies by averaging matrices
def adaptive_avg_pool2d(input: Tensor, output_size) -> Tensor:
    """Averages ``input`` into ``output_size`` (an int, or a pair whose None entries keep the input's size).

    Window i along a dimension of size n spans [floor(i * n / out), ceil((i + 1) * n / out)).
    """
    if input.ndim not in (3, 4):
        raise RuntimeError(f"adaptive_avg_pool2d(): Expected 3D or 4D tensor, but got {list(input.shape)}")
    for dim in range(input.ndim - 2, input.ndim):
        if input.shape[dim] == 0:
            raise RuntimeError(f"adaptive_avg_pool2d(): Expected input to have non-zero size for non-batch "
                               f"dimensions, but input has sizes {list(input.shape)} with dimension {dim} being empty")
    if isinstance(output_size, (tuple, list)) and len(output_size) != 2:
        raise RuntimeError("adaptive_avg_pool2d: output_size must be 2")
    if not isinstance(output_size, (tuple, list)):
        output_size = (output_size, output_size)
    in_h, in_w = input.shape[-2:]
    out_h, out_w = (n if o is None else int(o) for n, o in zip((in_h, in_w), output_size))
    if out_h == 0 or out_w == 0:
        return input[..., :out_h, :out_w]
    if in_h % out_h == 0 and in_w % out_w == 0:  # equal windows that tile the input: a plain average pooling
        return avg_pool2d(input, (in_h // out_h, in_w // out_w))
    rows = Tensor(averaging_matrix(in_h, out_h, input._xp, input.dtype))
    cols = Tensor(averaging_matrix(in_w, out_w, input._xp, input.dtype).T)
    return matmul(matmul(rows, input), cols)


def averaging_matrix(size: int, out: int, xp, dtype):
    """(out, size): row i averages the elements of adaptive window i."""
    i = xp.arange(out)[:, None]
    start, end = (i * size) // out, -((-(i + 1) * size) // out)
    inside = (xp.arange(size)[None, :] >= start) & (xp.arange(size)[None, :] < end)
    return (inside / (end - start)).astype(dtype)


def max_pool1d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False):
    """``max_pool2d`` over the last dimension of ``input`` (N, C, L) or (C, L)."""
    out = max_pool2d(input.unsqueeze(-2), _row(kernel_size, 1), None if stride is None else _row(stride, 1),
                     _row(padding, 0), _row(dilation, 1), ceil_mode, return_indices)
    return tuple(o.squeeze(-2) for o in out) if return_indices else out.squeeze(-2)


def avg_pool1d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True) -> Tensor:
    """``avg_pool2d`` over the last dimension of ``input`` (N, C, L) or (C, L)."""
    out = avg_pool2d(input.unsqueeze(-2), _row(kernel_size, 1), None if stride is None else _row(stride, 1),
                     _row(padding, 0), ceil_mode, count_include_pad)
    return out.squeeze(-2)


def _row(value, height: int) -> tuple:
    """A 1-D pooling argument as the 2-D one over a single row: (``height``, value)."""
    return height, value[0] if isinstance(value, (tuple, list)) else value
