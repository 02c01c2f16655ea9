"""2-D convolution and transposed convolution, by im2col and GEMMs (and the 1-D forms, as 2-D ones over a
single row); on the GPU by cuDNN where it applies (``distgrad/kernels/cudnn_conv.py``), im2col + cuBLAS
staying the fallback.

Three Functions share the work, each written with the other two in its backward, so convolutions
can be differentiated any number of times (``gradgradcheck`` passes):

    y  = Conv2d(x, w, b)             im2col(x), then  W @ cols
    gx = ConvTranspose2d(gy, w, b)   W^T @ gy, then col2im      (also the gradient of y w.r.t. x)
    gw = ConvWeightGrad(x, gy)       im2col(x), then  gy @ cols^T

Memory layout: activations are kept batch-last, (C, H, W, N) memory seen as (N, C, H, W). The columns
are (C*kh*kw, Ho*Wo*N), so ``W @ cols`` writes the output as (O, Ho, Wo, N), returned as an
(N, O, Ho, Wo) view of that memory without a transposing copy; a gradient arriving in the same layout
is used by the next GEMM without a copy. With the batch innermost, the copies that build and sum the
columns move runs of Wo*N contiguous elements rather than rows of Wo: NumPy pays per row of a strided
copy, and on W2's sizes rows of 24 made im2col and col2im about twice as slow. Such tensors are not
contiguous; ``reshape``/``flatten`` copy them as needed (call ``.contiguous()`` before ``.view()``).
"""
from __future__ import annotations

from typing import NamedTuple

from distgrad.autograd.function import Function
from distgrad.backend import array_module, matmul
from distgrad.ops.autocasting import autocast_op
from distgrad.kernels import cudnn_conv
from distgrad.tensor import Tensor

__all__ = ["conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d"]


class ConvGeometry(NamedTuple):
    """Everything about a convolution but its operands. ``padding`` is (top, bottom, left, right)."""

    kernel: tuple
    stride: tuple
    padding: tuple
    dilation: tuple
    groups: int

    def output_size(self, height: int, width: int) -> tuple:
        (kh, kw), (sh, sw), (dh, dw) = self.kernel, self.stride, self.dilation
        top, bottom, left, right = self.padding
        return ((height + top + bottom - dh * (kh - 1) - 1) // sh + 1,
                (width + left + right - dw * (kw - 1) - 1) // sw + 1)


# --- the three array kernels ----------------------------------------------------------------------
SLAB_BYTES = 12 * 2**20
"""The most bytes of columns that ``conv_input_grad`` builds at once (see there)."""


def _as_strided(xp, array, shape, strides):
    return xp.lib.stride_tricks.as_strided(array, shape, strides)


def _batch_last(x, padding: tuple):
    """``x`` (N, C, H, W) as a (C, H, W, N) array, zero-padded by (top, bottom, left, right); a view when it can be."""
    xp = array_module(x)
    n, c, h, w = x.shape
    top, bottom, left, right = padding
    if not (top or bottom or left or right):
        return xp.ascontiguousarray(x.transpose(1, 2, 3, 0))
    padded = xp.zeros((c, h + top + bottom, w + left + right, n), x.dtype)
    padded[:, top:top + h, left:left + w] = x.transpose(1, 2, 3, 0)
    return padded


def im2col(x, geo: ConvGeometry, out_hw: tuple):
    """The columns of ``x`` (N, C, H, W): an array (C*kh*kw, Ho*Wo*N), one copy of a strided window view."""
    xp = array_module(x)
    n, c = x.shape[:2]
    x = _batch_last(x, geo.padding)
    (kh, kw), (sh, sw), (dh, dw) = geo.kernel, geo.stride, geo.dilation
    ho, wo = out_hw
    str_c, str_h, str_w, str_n = x.strides
    windows = _as_strided(xp, x, (c, kh, kw, ho, wo, n),
                          (str_c, str_h * dh, str_w * dw, str_h * sh, str_w * sw, str_n))
    cols = xp.empty(windows.shape, x.dtype)
    cols[...] = windows
    return cols.reshape(c * kh * kw, ho * wo * n)


def col2im_add(padded, cols, geo: ConvGeometry, out_hw: tuple) -> None:
    """The adjoint of ``im2col``: adds columns (C*kh*kw, Ho*Wo*N) into ``padded`` (C, Hp, Wp, N), the padded input.

    Loops over the kh*kw kernel offsets, each adding one strided slice for every pixel at once.
    """
    c, n = padded.shape[0], padded.shape[3]
    (kh, kw), (sh, sw), (dh, dw) = geo.kernel, geo.stride, geo.dilation
    ho, wo = out_hw
    cols = cols.reshape(c, kh, kw, ho, wo, n)
    for i in range(kh):
        for j in range(kw):
            padded[:, i * dh:i * dh + sh * (ho - 1) + 1:sh, j * dw:j * dw + sw * (wo - 1) + 1:sw] += cols[:, i, j]


def _channel_major(y, groups: int):
    """(N, O, Ho, Wo) -> (groups, O/groups, Ho*Wo*N); free when ``y`` is batch-last in memory."""
    n, o, ho, wo = y.shape
    return y.transpose(1, 2, 3, 0).reshape(groups, o // groups, ho * wo * n)


def _per_group(cols, groups: int):
    """Columns (C*kh*kw, M) -> (groups, C/groups*kh*kw, M): channels are the leading row index."""
    return cols.reshape(groups, cols.shape[0] // groups, cols.shape[1])


def conv_forward(x, w, b, geo: ConvGeometry, out_hw: tuple):
    """The cross-correlation of ``x`` (N, C, H, W) with ``w`` (O, C/g, kh, kw), plus ``b``; also its columns.

    ``out_hw`` is the output's (Ho, Wo): ``geo.output_size`` of the input, or less when a gradient
    must match a transposed convolution's input.
    """
    if cudnn_conv.applies(x, w, geo.groups):  # the GPU: cuDNN, unless it has no plan for this problem
        y = cudnn_conv.forward(x, w, b, geo, out_hw)
        if y is not None:
            return y, None
    xp = array_module(x)
    n = x.shape[0]
    o = w.shape[0]
    g = geo.groups
    cols = im2col(x, geo, out_hw)
    y = matmul(w.reshape(g, o // g, -1), _per_group(cols, g)).reshape(o, cols.shape[1])
    if b is not None:
        y += b[:, None]
    return y.reshape(o, *out_hw, n).transpose(3, 0, 1, 2), cols


def conv_input_grad(gy, w, x_shape: tuple, geo: ConvGeometry):
    """The gradient of ``conv_forward`` w.r.t. its input: the transposed convolution of ``gy`` with ``w``.

    Works through ``gy`` in slabs of output rows, each at most ``SLAB_BYTES`` of columns ``W^T @ gy``,
    all written into one buffer: a slab is summed into the input while it is still in cache, and no
    batch-sized array of columns is page-faulted in (on W2's sizes, fresh pages cost about as much as the sums).
    """
    if cudnn_conv.applies(gy, w, geo.groups):
        gx = cudnn_conv.input_grad(gy, w, x_shape, geo)
        if gx is not None:
            return gx
    xp = array_module(gy)
    g = geo.groups
    n, c, h, width = x_shape
    top, bottom, left, right = geo.padding
    ho, wo = gy.shape[2:]
    w_t = w.reshape(g, w.shape[0] // g, -1).transpose(0, 2, 1)
    rows_of_gy = gy.transpose(1, 2, 3, 0)  # (O, Ho, Wo, N)
    padded = xp.zeros((c, h + top + bottom, width + left + right, n), gy.dtype)
    col_rows = w_t.shape[0] * w_t.shape[1]
    slabs = min(ho, -(-ho * col_rows * wo * n * gy.itemsize // SLAB_BYTES))
    most_rows = -(-ho // slabs) if slabs else 0  # the slabs below hold floor or ceil(ho / slabs) rows
    buffer = xp.empty(col_rows * most_rows * wo * n, gy.dtype)
    for start, stop in ((k * ho // slabs, (k + 1) * ho // slabs) for k in range(slabs)):
        m = (stop - start) * wo * n
        cols = buffer[:col_rows * m].reshape(w_t.shape[0], w_t.shape[1], m)
        matmul(w_t, rows_of_gy[:, start:stop].reshape(g, w_t.shape[2], m), out=cols)
        col2im_add(padded[:, start * geo.stride[0]:], cols.reshape(col_rows, m), geo, (stop - start, wo))
    return padded[:, top:top + h, left:left + width].transpose(3, 0, 1, 2)


def conv_weight_grad(x, gy, w_shape: tuple, geo: ConvGeometry, cols=None):
    """The gradient of ``conv_forward`` w.r.t. its weight; ``cols`` are ``im2col(x)`` when already at hand."""
    if cudnn_conv.applies(gy, x, geo.groups):
        gw = cudnn_conv.weight_grad(x, gy, w_shape, geo)
        if gw is not None:
            return gw
    xp = array_module(gy)
    g = geo.groups
    if cols is None:
        cols = im2col(x, geo, gy.shape[2:])
    cols, gy = _per_group(cols, g), _channel_major(gy, g)
    # OpenBLAS runs this long-and-thin product faster with its longer side as the rows (10-30% on W2's shapes)
    if cols.shape[1] > gy.shape[1]:
        return matmul(cols, gy.transpose(0, 2, 1)).transpose(0, 2, 1).reshape(w_shape)
    return matmul(gy, cols.transpose(0, 2, 1)).reshape(w_shape)


# --- the Functions --------------------------------------------------------------------------------
class Conv2d(Function):
    @staticmethod
    def forward(ctx, x, w, b, geo, out_hw):
        y, cols = conv_forward(x.array, w.array, None if b is None else b.array, geo, out_hw)
        ctx.geo = geo
        weight_needs_grad = getattr(ctx, "needs_input_grad", (False, False))[1]
        # the columns are kept for the weight gradient: recomputing them costs a copy as big as they are
        ctx.save_for_backward(x, w, Tensor(cols) if weight_needs_grad and cols is not None else None)
        return y

    @staticmethod
    def backward(ctx, grad):
        x, w, cols = ctx.saved_tensors
        geo = ctx.geo
        # both GEMMs read the gradient batch-last: one transposing copy here (none when it already is)
        # rather than one in each of them
        grad = grad.permute(1, 2, 3, 0).contiguous().permute(3, 0, 1, 2)
        gx = ConvTranspose2d.apply(grad, w, None, geo, x.shape) if ctx.needs_input_grad[0] else None
        gw = ConvWeightGrad.apply(x, grad, geo, w.shape, cols) if ctx.needs_input_grad[1] else None
        gb = grad.sum(dim=(0, 2, 3)) if ctx.needs_input_grad[2] else None
        return gx, gw, gb, None, None


class ConvTranspose2d(Function):
    """The transposed convolution of ``y`` with ``w`` (O, C/g, kh, kw) into an output of ``x_shape``."""

    @staticmethod
    def forward(ctx, y, w, b, geo, x_shape):
        ctx.geo = geo
        ctx.save_for_backward(y, w)
        x = conv_input_grad(y.array, w.array, x_shape, geo)
        if b is not None:
            x = x + b.array[:, None, None]
        return x

    @staticmethod
    def backward(ctx, grad):
        y, w = ctx.saved_tensors
        geo = ctx.geo
        gy = Conv2d.apply(grad, w, None, geo, y.shape[2:]) if ctx.needs_input_grad[0] else None
        gw = ConvWeightGrad.apply(grad, y, geo, w.shape, None) if ctx.needs_input_grad[1] else None
        gb = grad.sum(dim=(0, 2, 3)) if ctx.needs_input_grad[2] else None
        return gy, gw, gb, None, None


class ConvWeightGrad(Function):
    """The weight gradient of a convolution of ``x`` whose output had gradient ``gy``; bilinear in both."""

    @staticmethod
    def forward(ctx, x, gy, geo, w_shape, cols):
        ctx.geo = geo
        ctx.save_for_backward(x, gy)
        return conv_weight_grad(x.array, gy.array, w_shape, geo, None if cols is None else cols.array)

    @staticmethod
    def backward(ctx, grad):
        x, gy = ctx.saved_tensors
        geo = ctx.geo
        gx = ConvTranspose2d.apply(gy, grad, None, geo, x.shape) if ctx.needs_input_grad[0] else None
        ggy = Conv2d.apply(x, grad, None, geo, gy.shape[2:]) if ctx.needs_input_grad[1] else None
        return gx, ggy, None, None, None


# --- arguments, checks and the public functions ---------------------------------------------------
def as_pair(value, name: str) -> tuple:
    """``value`` as a pair of ints: an int is repeated; a tuple or list must have two entries."""
    if isinstance(value, (tuple, list)):
        if len(value) == 1:
            value = (value[0], value[0])
        if len(value) != 2:
            raise RuntimeError(f"expected {name} to be a single integer value or a list of 2 values to match "
                               f"the convolution dimensions, but got {name}={list(value)}")
        return int(value[0]), int(value[1])
    return int(value), int(value)


def _geometry(weight: Tensor, stride, padding, dilation, groups: int) -> ConvGeometry:
    stride, dilation = as_pair(stride, "stride"), as_pair(dilation, "dilation")
    kernel = tuple(weight.shape[2:])
    if min(stride) <= 0:
        raise RuntimeError("non-positive stride is not supported")
    if min(dilation) <= 0:
        raise RuntimeError("non-positive dilation is not supported")
    if isinstance(padding, str):
        if padding == "valid":
            padding = (0, 0, 0, 0)
        elif padding == "same":
            if stride != (1, 1):
                raise RuntimeError("padding='same' is not supported for strided convolutions")
            total_h, total_w = (d * (k - 1) for d, k in zip(dilation, kernel))
            # an odd total puts the extra row/column at the bottom/right, as torch does
            padding = (total_h // 2, total_h - total_h // 2, total_w // 2, total_w - total_w // 2)
        else:
            raise RuntimeError(f"Invalid padding string: '{padding}'")
    else:
        ph, pw = as_pair(padding, "padding")
        if ph < 0 or pw < 0:
            raise RuntimeError("negative padding is not supported")
        padding = (ph, ph, pw, pw)
    return ConvGeometry(kernel, stride, padding, dilation, groups)


def _check_operands(input: Tensor, weight: Tensor, bias, groups: int, op: str, transposed: bool) -> None:
    if input.ndim not in (3, 4):
        raise RuntimeError(f"Expected 3D (unbatched) or 4D (batched) input to {op}, but got input of size: "
                           f"{list(input.shape)}")
    if weight.ndim != 4:
        raise RuntimeError(f"{op}: expected a 4-D weight, but got weight of size {list(weight.shape)}")
    if groups <= 0:
        raise RuntimeError("non-positive groups is not supported")
    if weight.shape[0] % groups:
        raise RuntimeError(f"Given groups={groups}, expected weight to be divisible by {groups} at dimension 0, "
                           f"but got weight of size [{list(weight.shape)}] instead")
    channels = weight.shape[0] if transposed else weight.shape[1] * groups
    if input.shape[-3] != channels:
        given = f"transposed=1, weight of size {list(weight.shape)}" if transposed else \
            f"groups={groups}, weight of size {list(weight.shape)}"
        shape = list(input.shape) if input.ndim == 4 else [1] + list(input.shape)
        raise RuntimeError(f"Given {given}, expected input{shape} to have {channels} channels, but got "
                           f"{input.shape[-3]} channels instead")
    if weight.dtype != input.dtype:
        raise RuntimeError(f"Input type ({input.dtype.name}) and weight type ({weight.dtype.name}) should be the same")
    if bias is not None:
        out_channels = weight.shape[1] * groups if transposed else weight.shape[0]
        if bias.ndim != 1 or bias.shape[0] != out_channels:
            given = "transposed=1, weight" if transposed else "weight"
            raise RuntimeError(f"Given {given} of size {list(weight.shape)}, expected bias to be 1-dimensional with "
                               f"{out_channels} elements, but got bias of size {list(bias.shape)} instead")
        if bias.dtype != input.dtype:
            raise RuntimeError(f"Input type ({input.dtype.name}) and bias type ({bias.dtype.name}) should be the same")


def _batched(input: Tensor, fn) -> Tensor:
    """Runs ``fn`` on ``input`` with a batch dimension, added and removed again for a 3-D (C, H, W) input."""
    if input.ndim == 3:
        return fn(input.unsqueeze(0)).squeeze(0)
    return fn(input)


@autocast_op()
def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1,
           groups: int = 1) -> Tensor:
    """The 2-D cross-correlation of ``input`` (N, C, H, W) or (C, H, W) with ``weight`` (O, C/groups, kH, kW).

    ``padding`` is an int, a pair, ``'valid'`` or ``'same'`` (stride 1 only). The output is not
    contiguous (see the module docstring).
    """
    _check_operands(input, weight, bias, groups, "conv2d", transposed=False)
    geo = _geometry(weight, stride, padding, dilation, groups)
    height, width = input.shape[-2:]
    top, bottom, left, right = geo.padding
    if any(size + pads < span for size, pads, span in zip(
            (height, width), (top + bottom, left + right), _kernel_span(geo))):
        raise RuntimeError(f"Calculated padded input size per channel: ({height + top + bottom} x "
                           f"{width + left + right}). Kernel size: ({_kernel_span(geo)[0]} x {_kernel_span(geo)[1]}). "
                           "Kernel size can't be greater than actual input size")
    out_hw = geo.output_size(height, width)
    return _batched(input, lambda x: Conv2d.apply(x, weight, bias, geo, out_hw))


def _kernel_span(geo: ConvGeometry) -> tuple:
    """The extent of the dilated kernel."""
    return tuple(d * (k - 1) + 1 for d, k in zip(geo.dilation, geo.kernel))


@autocast_op()
def conv_transpose2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
                     output_padding=0, groups: int = 1, dilation=1) -> Tensor:
    """The transposed 2-D convolution (the gradient of ``conv2d`` w.r.t. its input) of ``input`` with ``weight``.

    ``weight`` has shape (in_channels, out_channels / groups, kH, kW); the output has
    (H - 1) * stride - 2 * padding + dilation * (kH - 1) + output_padding + 1 rows (columns alike).
    """
    _check_operands(input, weight, bias, groups, "conv_transpose2d", transposed=True)
    if isinstance(padding, str):
        raise RuntimeError("conv_transpose2d: padding must be an int or a pair of ints, not a string")
    geo = _geometry(weight, stride, padding, dilation, groups)
    (sh, sw), (dh, dw) = geo.stride, geo.dilation
    oph, opw = as_pair(output_padding, "output_padding")
    if not (oph < sh or oph < dh) or not (opw < sw or opw < dw) or oph < 0 or opw < 0:
        raise RuntimeError(f"output padding must be smaller than either stride or dilation, but got "
                           f"output_padding_height: {oph} output_padding_width: {opw} stride_height: {sh} "
                           f"stride_width: {sw} dilation_height: {dh} dilation_width: {dw}")
    (kh, kw), (top, _, left, _) = geo.kernel, geo.padding
    height, width = input.shape[-2:]
    out_h = (height - 1) * sh - 2 * top + dh * (kh - 1) + oph + 1
    out_w = (width - 1) * sw - 2 * left + dw * (kw - 1) + opw + 1
    if out_h <= 0 or out_w <= 0:
        raise RuntimeError(f"conv_transpose2d: the output size ({out_h} x {out_w}) is too small for input "
                           f"{list(input.shape)}, weight {list(weight.shape)}, stride {geo.stride} and padding "
                           f"{(top, left)}")
    channels = weight.shape[1] * groups

    def run(x: Tensor) -> Tensor:
        return ConvTranspose2d.apply(x, weight, bias, geo, (x.shape[0], channels, out_h, out_w))
    return _batched(input, run)


# --- 1-D: the 2-D ops over a single row ------------------------------------------------------------
def _row(value, name: str, fill: int):
    """A 1-D argument as the 2-D one over a single row: (``fill``, value); strings (padding modes) pass."""
    if isinstance(value, str):
        return value
    if isinstance(value, (tuple, list)):
        if len(value) != 1:
            raise RuntimeError(f"expected {name} to be a single integer value or a list of 1 values to match the "
                               f"convolution dimensions, but got {name}={list(value)}")
        value = value[0]
    return fill, int(value)


def _check_1d(op: str, input: Tensor, weight: Tensor) -> None:
    if input.ndim not in (2, 3):
        raise RuntimeError(f"Expected 2D (unbatched) or 3D (batched) input to {op}, but got input of size: "
                           f"{list(input.shape)}")
    if weight.ndim != 3:
        raise RuntimeError(f"{op}: expected a 3-D weight, but got weight of size {list(weight.shape)}")


@autocast_op()
def conv1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1,
           groups: int = 1) -> Tensor:
    """The 1-D cross-correlation of ``input`` (N, C, L) or (C, L) with ``weight`` (O, C/groups, K)."""
    _check_1d("conv1d", input, weight)
    out = conv2d(input.unsqueeze(-2), weight.unsqueeze(-2), bias, _row(stride, "stride", 1),
                 _row(padding, "padding", 0), _row(dilation, "dilation", 1), groups)
    return out.squeeze(-2)


@autocast_op()
def conv_transpose1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
                     output_padding=0, groups: int = 1, dilation=1) -> Tensor:
    """The transposed 1-D convolution of ``input`` (N, C, L) or (C, L) with ``weight`` (C, O/groups, K)."""
    _check_1d("conv_transpose1d", input, weight)
    out = conv_transpose2d(input.unsqueeze(-2), weight.unsqueeze(-2), bias, _row(stride, "stride", 1),
                           _row(padding, "padding", 0), _row(output_padding, "output_padding", 0), groups,
                           _row(dilation, "dilation", 1))
    return out.squeeze(-2)
