"""``layer_norm``, ``batch_norm``, ``group_norm``, ``instance_norm``: standardise, then scale and shift.

All four share one Function, ``Normalize``: ``(x - mean) / sqrt(var + eps) * weight + bias`` with the
statistics taken over the axes where ``stats_shape`` is 1. Its backward is the closed form
``rstd * (g - mean(g) - xhat * mean(g * xhat))`` (``g`` the gradient of ``xhat``), written with Tensor
ops so that second derivatives work.
"""
from __future__ import annotations

import math

from distgrad.autograd.function import Function
from distgrad.autograd.grad_mode import is_grad_enabled
from distgrad.autograd.node import increment_version
from distgrad.ops.broadcast import sum_to
from distgrad.tensor import Tensor

__all__ = ["layer_norm", "batch_norm", "group_norm", "instance_norm"]


def _standardize(x: Tensor, stats_shape: tuple, eps: float):
    """``(xhat, rstd, mean, var)`` of ``x`` with statistics reduced to ``stats_shape`` (biased variance)."""
    count = x.numel() // math.prod(stats_shape)
    mean = sum_to(x, stats_shape) / count
    centered = x - mean
    var = sum_to(centered * centered, stats_shape) / count
    rstd = (var + eps) ** -0.5
    return centered * rstd, rstd, mean, var


class Normalize(Function):
    """``xhat * weight + bias`` with ``xhat = (x - mean) * rstd``; ``weight``/``bias`` broadcast against x.

    With ``running_stats = (running_mean, running_var, momentum)`` the batch statistics are folded into
    the running ones in place (``running_var`` with the unbiased variance, as in PyTorch).
    """

    @staticmethod
    def forward(ctx, input, weight, bias, stats_shape, eps, running_stats=None):
        xhat, rstd, mean, var = _standardize(input, stats_shape, eps)
        if running_stats is not None:
            _update_running_stats(*running_stats, mean.array, var.array, input.numel() // mean.numel())
        out = xhat.array * weight.array if weight is not None else xhat.array.copy()
        if bias is not None:
            out += bias.array
        ctx.stats_shape, ctx.eps = stats_shape, eps
        ctx.bias_shape = None if bias is None else bias.shape
        ctx.save_for_backward(input, weight, mean, rstd)  # xhat is rebuilt in backward: less memory held
        return out

    @staticmethod
    def backward(ctx, grad):
        input, weight, mean, rstd = ctx.saved_tensors
        if is_grad_enabled():  # create_graph: xhat and rstd as functions of the input, to differentiate again
            xhat, rstd, _, _ = _standardize(input, ctx.stats_shape, ctx.eps)
        else:
            xhat = (input - mean) * rstd
        grad_input = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_xhat = grad * weight if weight is not None else grad
            count = input.numel() // math.prod(ctx.stats_shape)

            def average(t):  # over the normalised axes, keeping them as size 1
                return sum_to(t, ctx.stats_shape) / count

            grad_input = rstd * (grad_xhat - average(grad_xhat) - xhat * average(grad_xhat * xhat))
        if ctx.needs_input_grad[1]:
            grad_weight = sum_to(grad * xhat, weight.shape)
        if ctx.needs_input_grad[2]:
            grad_bias = sum_to(grad, ctx.bias_shape)
        return grad_input, grad_weight, grad_bias, None, None, None


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


def layer_norm(input: Tensor, normalized_shape, weight: Tensor | None = None, bias: Tensor | None = None,
               eps: float = 1e-5) -> Tensor:
    """Standardises over the trailing ``normalized_shape`` dims, then ``* weight + bias`` (both of that shape)."""
    normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    k = len(normalized_shape)
    if k == 0 or input.ndim < k or input.shape[input.ndim - k:] != normalized_shape:
        raise RuntimeError(f"Given normalized_shape={list(normalized_shape)}, expected input with shape "
                           f"[*, {', '.join(map(str, normalized_shape))}], but got input of size{list(input.shape)}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and t.shape != normalized_shape:
            raise RuntimeError(f"Expected {name} to be of same shape as normalized_shape, but got {name} of shape "
                               f"{list(t.shape)} and normalized_shape = {list(normalized_shape)}")
    stats_shape = input.shape[:input.ndim - k] + (1,) * k
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
        data = input.array
        _update_running_stats(running_mean, running_var, momentum, data.mean(axis=axes).mean(axis=0),
                              data.var(axis=axes).mean(axis=0), spatial)
    stats_shape = input.shape[:2] + (1,) * (input.ndim - 2)
    return Normalize.apply(input, _channel_view(weight, input.ndim), _channel_view(bias, input.ndim), stats_shape, eps)
