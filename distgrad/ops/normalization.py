"""``layer_norm``, ``batch_norm``, ``group_norm``, ``instance_norm``, ``rms_norm``: standardise, then scale and shift.

All five share one Function, ``Normalize``: ``(x - mean) / sqrt(var + eps) * weight + bias`` with the
statistics taken over the axes where ``stats_shape`` is 1. Its backward is the closed form
``rstd * (g - mean(g) - xhat * mean(g * xhat))`` (``g`` the gradient of ``xhat``), written with Tensor
ops so that second derivatives work. ``rms_norm`` does not centre (``mean`` is 0, ``var`` the mean
square), and the ``mean(g)`` term, which comes from the centring, drops out of its backward.
"""
from __future__ import annotations

import math

import numpy as np

from distgrad import parallel
from distgrad.autograd.function import Function
from distgrad.autograd.grad_mode import is_grad_enabled
from distgrad.autograd.node import increment_version
from distgrad.dtypes import compute_dtype
from distgrad.ops.autocasting import autocast_op
from distgrad.kernels import rows as row_kernels
from distgrad.ops.broadcast import sum_to
from distgrad.tensor import Tensor

__all__ = ["layer_norm", "batch_norm", "group_norm", "instance_norm", "rms_norm"]


def _standardize(x: Tensor, stats_shape: tuple, eps: float, center: bool = True):
    """``(xhat, rstd, mean, var)`` of ``x`` with statistics reduced to ``stats_shape`` (biased variance).

    Without ``center``, ``mean`` is 0 and ``var`` the mean square (RMS normalisation).
    """
    count = x.numel() // math.prod(stats_shape)
    mean = sum_to(x, stats_shape) / count if center else Tensor(x._xp.zeros(stats_shape, x.dtype))
    centered = x - mean if center else x
    var = sum_to(centered * centered, stats_shape) / count
    rstd = (var + eps) ** -0.5
    return centered * rstd, rstd, mean, var


def _trailing_size(input: Tensor, stats_shape: tuple, weight, bias) -> int | None:
    """D when each statistic covers the last dims of ``input`` (D elements in all) and ``weight``/``bias``
    have exactly those dims (layer_norm, rms_norm, group_norm's grouped view); else None."""
    lead = len(stats_shape)
    while lead and stats_shape[lead - 1] == 1:
        lead -= 1
    trailing = input.shape[lead:]
    if stats_shape[:lead] != input.shape[:lead] or any(t is not None and t.shape != trailing for t in (weight, bias)):
        return None
    return math.prod(trailing)


def _row_means(xp, rows):
    """(R, D) -> (R, 1) means, as one matrix-vector product: NumPy's reduction along a short last axis is
    several times slower than BLAS (W7's LayerNorm over 128 features)."""
    return xp.matmul(rows, xp.full((rows.shape[1], 1), 1 / rows.shape[1], rows.dtype))


def _column_sums(xp, rows):
    return xp.matmul(xp.ones((1, rows.shape[0]), rows.dtype), rows).reshape(-1)


def _affine(xhat, weight, bias):
    """``xhat * weight + bias`` on arrays (either may be None), written over ``xhat`` when it is scaled."""
    out = xhat if weight is None else xhat * weight
    if bias is not None:
        out += bias
    return out


def _normalize_rows(x: Tensor, size: int, eps: float, center: bool, weight, bias, out_dtype):
    """The forward for statistics over the last ``size`` elements, in blocks of rows shared among threads
    (``distgrad.parallel``): (out (R, size) in ``out_dtype``, rstd, mean, var (R, 1) each). ``weight`` and
    ``bias``: flat arrays of ``size``, or None."""
    xp = x._xp
    rows = x.array.reshape(-1, size)
    out = xp.empty(rows.shape, out_dtype)
    mean, var, rstd = (xp.zeros((rows.shape[0], 1), rows.dtype) for _ in range(3))
    blocks = parallel.row_blocks(rows.shape[0], size)

    def normalize(i):  # writes rows b of out, mean, var and rstd only
        b = blocks[i]
        if center:
            mean[b] = _row_means(xp, rows[b])
            xhat = rows[b] - mean[b]
        else:
            xhat = rows[b].copy()
        var[b] = _row_means(xp, xhat * xhat)
        rstd[b] = 1 / xp.sqrt(var[b] + xhat.dtype.type(eps))
        xhat *= rstd[b]
        out[b] = _affine(xhat, weight, bias)

    parallel.run(normalize, len(blocks), rows)
    return out, rstd, mean, var


class Normalize(Function):
    """``xhat * weight + bias`` with ``xhat = (x - mean) * rstd``; ``weight``/``bias`` broadcast against x.

    With ``running_stats = (running_mean, running_var, momentum)`` the batch statistics are folded into
    the running ones in place (``running_var`` with the unbiased variance, as in PyTorch). With
    ``center=False`` the mean is taken as 0 (``rms_norm``).
    """

    @staticmethod
    def forward(ctx, input, weight, bias, stats_shape, eps, running_stats=None, center=True):
        ctx.stats_shape, ctx.eps, ctx.center = stats_shape, eps, center
        ctx.bias_shape = None if bias is None else bias.shape
        if running_stats is None and _on_kernel_path(input, weight, bias, stats_shape):
            return _forward_kernel(ctx, input, weight, bias)
        # float16/bfloat16 inputs are normalised in float32 (mean and rstd are kept so), as in PyTorch
        compute = compute_dtype(input.dtype)
        x = input if compute == input.dtype else Tensor(input.array.astype(compute))
        ctx.trailing = _trailing_size(x, stats_shape, weight, bias)
        if ctx.trailing is not None:  # rows of D elements: reductions as products; weight and bias flat
            out, rstd, mean, var = _normalize_rows(x, ctx.trailing, eps, center,
                                                   *(None if t is None else t.array.reshape(-1) for t in (weight, bias)),
                                                   input.dtype)
            mean, rstd, var = (Tensor(a.reshape(stats_shape)) for a in (mean, rstd, var))
        else:
            xhat, rstd, mean, var = _standardize(x, stats_shape, eps, center)
            # xhat is a new array: it may be written over
            out = _affine(xhat.array, *(None if t is None else t.array for t in (weight, bias)))
            out = out.astype(input.dtype, copy=False)
        if running_stats is not None:
            _update_running_stats(*running_stats, mean.array, var.array, input.numel() // mean.numel())
        ctx.save_for_backward(input, weight, mean, rstd)  # xhat is rebuilt in backward: less memory held
        return out.reshape(input.shape)

    @staticmethod
    def backward(ctx, grad):
        input, weight, mean, rstd = ctx.saved_tensors
        if is_grad_enabled():  # create_graph: xhat and rstd as functions of the input, to differentiate again
            xhat, rstd, _, _ = _standardize(input, ctx.stats_shape, ctx.eps, ctx.center)
        elif ctx.trailing is not None and _on_kernel_path(input, weight, None, ctx.stats_shape) \
                and grad.dtype == input.dtype and mean.dtype == np.float32:
            return _backward_kernel(ctx, grad, input, weight, mean, rstd)
        elif ctx.trailing is not None:
            return _backward_rows(ctx, grad, input, weight, mean, rstd)
        else:
            xhat = (input - mean) * rstd if ctx.center else input * rstd
        grad_input = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_xhat = grad * weight if weight is not None else grad
            count = input.numel() // math.prod(ctx.stats_shape)

            def average(t):  # over the normalised axes, keeping them as size 1
                return sum_to(t, ctx.stats_shape) / count

            centered_grad = grad_xhat - average(grad_xhat) if ctx.center else grad_xhat
            grad_input = rstd * (centered_grad - xhat * average(grad_xhat * xhat))
        if ctx.needs_input_grad[1]:
            grad_weight = sum_to(grad * xhat, weight.shape)
        if ctx.needs_input_grad[2]:
            grad_bias = sum_to(grad, ctx.bias_shape)
        return grad_input, grad_weight, grad_bias, None, None, None, None


def _backward_rows(ctx, grad, input, weight, mean, rstd) -> tuple:
    """``Normalize.backward``'s formulas on (R, D) arrays, for statistics over the trailing D elements, in
    blocks of rows shared among threads; the weight's and bias's gradients are summed within each block,
    then over the blocks in order (the same sums whichever threads ran them)."""
    xp, size = input._xp, ctx.trailing
    needs = ctx.needs_input_grad
    grads, rows = grad.array.reshape(-1, size), input.array.reshape(-1, size)
    mean, rstd = mean.array.reshape(-1, 1), rstd.array.reshape(-1, 1)
    w = None if weight is None else weight.array.reshape(-1)
    blocks = parallel.row_blocks(rows.shape[0], size)
    grad_input = xp.empty(grads.shape, grads.dtype if w is None else xp.result_type(grads, w)) if needs[0] else None
    weight_parts, bias_parts = [None] * len(blocks), [None] * len(blocks)

    def block_backward(i):  # writes rows b of grad_input and part i of the sums only
        b = blocks[i]
        g = grads[b]
        xhat = rows[b] - mean[b] if ctx.center else rows[b]
        xhat = xhat * rstd[b]
        if needs[0]:
            grad_xhat = g * w if w is not None else g.copy()
            projection = _row_means(xp, grad_xhat * xhat)
            if ctx.center:
                grad_xhat -= _row_means(xp, grad_xhat)
            grad_xhat -= xhat * projection
            grad_xhat *= rstd[b]
            grad_input[b] = grad_xhat
        if needs[1]:
            weight_parts[i] = _column_sums(xp, g * xhat)
        if needs[2]:
            bias_parts[i] = _column_sums(xp, g)

    parallel.run(block_backward, len(blocks), grads)
    grad_weight = Tensor(xp.stack(weight_parts).sum(axis=0).reshape(weight.shape)) if needs[1] else None
    grad_bias = Tensor(xp.stack(bias_parts).sum(axis=0).reshape(ctx.bias_shape)) if needs[2] else None
    return (None if grad_input is None else Tensor(grad_input.reshape(input.shape))), grad_weight, grad_bias, \
        None, None, None, None


def _on_kernel_path(input, weight, bias, stats_shape) -> bool:
    """Statistics over trailing dims, on the GPU with a kernel: LayerNorm, RMSNorm, GroupNorm's grouped view."""
    size = _trailing_size(input, stats_shape, weight, bias)
    return size is not None and row_kernels.layer_norm_applies(
        input.array, *(None if t is None else t.array for t in (weight, bias)), size)


def _forward_kernel(ctx, input, weight, bias):
    ctx.trailing = _trailing_size(input, ctx.stats_shape, weight, bias)
    out, mean, rstd = row_kernels.layer_norm(input.array, *(None if t is None else t.array for t in (weight, bias)),
                                             ctx.trailing, ctx.eps, ctx.center)
    ctx.save_for_backward(input, weight, Tensor(mean.reshape(ctx.stats_shape)), Tensor(rstd.reshape(ctx.stats_shape)))
    return out


def _backward_kernel(ctx, grad, input, weight, mean, rstd) -> tuple:
    needs = (ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[2])
    grads = row_kernels.layer_norm_backward(grad.array, input.array, None if weight is None else weight.array,
                                            mean.array.reshape(-1), rstd.array.reshape(-1), ctx.trailing,
                                            ctx.center, needs)
    shapes = (input.shape, None if weight is None else weight.shape, ctx.bias_shape)
    return tuple(None if g is None else Tensor(g.reshape(shape)) for g, shape in zip(grads, shapes)) + (None,) * 4


def _update_running_stats(running_mean, running_var, momentum, mean, var, count) -> None:
    for running, batch in ((running_mean, mean), (running_var, var * (count / max(count - 1, 1)))):
        if running is None:
            continue
        running.array *= 1 - momentum
        running.array += momentum * batch.reshape(running.shape).astype(running.dtype, copy=False)
        increment_version(running)


def _check_sizes(num_features: int, **tensors) -> None:
    """Each given per-channel tensor (None allowed) has ``num_features`` elements."""
    for name, t in tensors.items():
        if t is not None and t.numel() != num_features:
            raise RuntimeError(f"{name} should contain {num_features} elements not {t.numel()}")


def _channel_view(t: Tensor | None, ndim: int) -> Tensor | None:
    """A per-channel (C,) tensor shaped (C, 1, ...) to broadcast along dim 1 of an ``ndim``-d input."""
    return t if t is None or ndim <= 2 else t.reshape((-1,) + (1,) * (ndim - 2))


def _trailing_stats_shape(input: Tensor, normalized_shape, weight, bias) -> tuple:
    """The statistics' shape of a normalisation over the trailing ``normalized_shape`` dims (checked)."""
    normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    k = len(normalized_shape)
    if k == 0 or input.ndim < k or input.shape[input.ndim - k:] != normalized_shape:
        raise RuntimeError(f"Given normalized_shape={list(normalized_shape)}, expected input with shape "
                           f"[*, {', '.join(map(str, normalized_shape))}], but got input of size{list(input.shape)}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and t.shape != normalized_shape:
            raise RuntimeError(f"Expected {name} to be of same shape as normalized_shape, but got {name} of shape "
                               f"{list(t.shape)} and normalized_shape = {list(normalized_shape)}")
    return input.shape[:input.ndim - k] + (1,) * k


@autocast_op()
def layer_norm(input: Tensor, normalized_shape, weight: Tensor | None = None, bias: Tensor | None = None,
               eps: float = 1e-5) -> Tensor:
    """Standardises over the trailing ``normalized_shape`` dims, then ``* weight + bias`` (both of that shape)."""
    stats_shape = _trailing_stats_shape(input, normalized_shape, weight, bias)
    return Normalize.apply(input, weight, bias, stats_shape, eps)


def batch_norm(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
               weight: Tensor | None = None, bias: Tensor | None = None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Per-channel normalisation of (N, C), (N, C, L) or (N, C, H, W) input.

    Training: batch statistics, folded into ``running_mean``/``running_var`` in place when given.
    Evaluation: the running statistics.
    """
    if input.ndim < 2:
        raise ValueError(f"batch_norm: expected input of shape (N, C, *), got {list(input.shape)}")
    num_features = input.shape[1]
    _check_sizes(num_features, running_mean=running_mean, running_var=running_var, weight=weight, bias=bias)
    weight_view, bias_view = _channel_view(weight, input.ndim), _channel_view(bias, input.ndim)
    if training:
        if input.numel() // num_features <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got input size {list(input.shape)}")
        stats_shape = (1, num_features) + (1,) * (input.ndim - 2)
        running = None if running_mean is None and running_var is None else (running_mean, running_var, momentum)
        return Normalize.apply(input, weight_view, bias_view, stats_shape, eps, running)
    if running_mean is None or running_var is None:
        raise RuntimeError("running_mean must be defined in evaluation mode")
    shape = (num_features,) + (1,) * (input.ndim - 2)
    xp = input._xp
    rstd = Tensor((1 / xp.sqrt(running_var.array + eps)).reshape(shape).astype(input.dtype, copy=False))
    out = (input - Tensor(running_mean.array.reshape(shape).astype(input.dtype, copy=False))) * rstd
    if weight_view is not None:
        out = out * weight_view
    return out + bias_view if bias_view is not None else out


@autocast_op()
def group_norm(input: Tensor, num_groups: int, weight: Tensor | None = None, bias: Tensor | None = None,
               eps: float = 1e-5) -> Tensor:
    """Standardises each of ``num_groups`` channel groups of every sample, then per-channel ``* weight + bias``."""
    if input.ndim < 2 or input.shape[1] % num_groups:
        raise RuntimeError(f"Expected number of channels in input to be divisible by num_groups, but got input of "
                           f"shape {list(input.shape)} and num_groups={num_groups}")
    num_features = input.shape[1]
    _check_sizes(num_features, weight=weight, bias=bias)
    grouped = input.reshape(input.shape[0], num_groups, -1)
    out = Normalize.apply(grouped, None, None, (input.shape[0], num_groups, 1), eps).reshape(input.shape)
    if weight is not None:
        out = out * _channel_view(weight, input.ndim)
    return out + _channel_view(bias, input.ndim) if bias is not None else out


def instance_norm(input: Tensor, running_mean: Tensor | None = None, running_var: Tensor | None = None,
                  weight: Tensor | None = None, bias: Tensor | None = None, use_input_stats: bool = True,
                  momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Standardises each channel of each sample of (N, C, *) input over its spatial dims, then ``* weight + bias``.

    With ``use_input_stats``, the statistics are each instance's own and, when given, the running
    statistics move toward their average over the batch (``running_var`` with the unbiased variance),
    as in PyTorch; without, the running statistics are used, as ``batch_norm`` in evaluation.
    """
    if not use_input_stats:
        return batch_norm(input, running_mean, running_var, weight, bias, False, momentum, eps)
    if input.ndim < 2:
        raise ValueError(f"instance_norm: expected input of shape (N, C, *), got {list(input.shape)}")
    num_features = input.shape[1]
    _check_sizes(num_features, running_mean=running_mean, running_var=running_var, weight=weight, bias=bias)
    spatial = math.prod(input.shape[2:])
    if spatial <= 1:
        raise ValueError(f"Expected more than 1 spatial element when training, got input size {list(input.shape)}")
    if running_mean is not None or running_var is not None:
        axes = tuple(range(2, input.ndim))
        data = input.array.astype(compute_dtype(input.dtype), copy=False)
        _update_running_stats(running_mean, running_var, momentum, data.mean(axis=axes).mean(axis=0),
                              data.var(axis=axes).mean(axis=0), spatial)
    stats_shape = input.shape[:2] + (1,) * (input.ndim - 2)
    return Normalize.apply(input, _channel_view(weight, input.ndim), _channel_view(bias, input.ndim), stats_shape, eps)


@autocast_op()
def rms_norm(input: Tensor, normalized_shape, weight: Tensor | None = None, eps: float | None = None) -> Tensor:
    """``x / sqrt(mean(x**2) + eps) * weight`` over the trailing ``normalized_shape`` dims.

    ``eps`` defaults to the machine epsilon of the input's dtype, as in PyTorch.
    """
    stats_shape = _trailing_stats_shape(input, normalized_shape, weight, None)
    eps = float(np.finfo(input.dtype).eps) if eps is None else eps
    return Normalize.apply(input, weight, None, stats_shape, eps, None, center=False)
