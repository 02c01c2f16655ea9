"""Classification losses with PyTorch's signatures and semantics: ``cross_entropy`` (fused) and ``nll_loss``,
and the ``reduction`` helpers every loss shares; the per-element regression and binary losses live in
``pointwise_loss.py``. Every loss takes ``reduction='none' | 'mean' | 'sum'``.

``cross_entropy`` is one Function (log-softmax and NLL fused): the training hot path records a single node
and its backward is ``(softmax(x) * Q - q) * grad`` with ``q`` the weighted target distribution.
Class weights (``weight``) are constants here, as in PyTorch's ``nll_loss``: they receive no gradient.
PyTorch's deprecated ``size_average``/``reduce`` arguments do not exist: the options after them are
keyword-only, so an old positional call fails loudly instead of being misread.
"""
from __future__ import annotations

import numpy as np

from distgrad import backend
from distgrad.autograd.function import Function
from distgrad.autograd.grad_mode import is_grad_enabled
from distgrad.dtypes import FLOATING
from distgrad.ops.autocasting import autocast_op
from distgrad.kernels import rows as row_kernels
from distgrad.ops.activation import log_softmax, reduced_shape, softmax
from distgrad.ops.broadcast import sum_to
from distgrad.ops.conversion import computes_in_float32
from distgrad.tensor import Tensor

__all__ = ["cross_entropy", "nll_loss"]

_REDUCTIONS = ("none", "mean", "sum")


def check_reduction(reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{reduction} is not a valid value for reduction")


def reduce_array(per_element, reduction: str, denominator=None):
    """The array ``per_element`` reduced; ``mean`` divides by ``denominator`` (default: its size)."""
    if reduction == "none":
        return per_element
    total = per_element.sum()
    if reduction == "sum":
        return total
    return total / (per_element.size if denominator is None else denominator)


def _grad_scale(grad: Tensor, reduction: str, denominator) -> Tensor:
    """The factor the incoming gradient puts on every element (before any reshape for 'none')."""
    return grad / denominator if reduction == "mean" else grad


def as_constant(value: Tensor | None) -> Tensor | None:
    """``value`` outside the graph: class and element weights take no gradient."""
    return None if value is None else value.detach()


# --- class-index targets -----------------------------------------------------------------------------
def _class_dim(input: Tensor, op: str) -> int:
    if input.ndim == 0:
        raise RuntimeError(f"{op}: input must have a class dimension, got a 0-d tensor")
    return 0 if input.ndim == 1 else 1


def _check_index_target(input: Tensor, target: Tensor) -> None:
    if target.dtype.kind not in "iu":
        raise RuntimeError(f"expected target dtype to be Long or Byte, but got {target.dtype.name}")
    if input.ndim == 1:
        if target.ndim != 0:
            raise RuntimeError(f"Expected a 0-d target for an unbatched input of shape {list(input.shape)}, "
                               f"got target of shape {list(target.shape)}")
        return
    if input.ndim == 2 and target.ndim != 1:
        raise RuntimeError("0D or 1D target tensor expected, multi-target not supported")
    if target.ndim == 0 or target.shape[0] != input.shape[0]:
        got = target.shape[0] if target.ndim else 0
        raise ValueError(f"Expected input batch_size ({input.shape[0]}) to match target batch_size ({got}).")
    expected = (input.shape[0],) + input.shape[2:]
    if target.shape != expected:
        raise RuntimeError(f"Expected target size {list(expected)}, got {list(target.shape)}")


def _check_weight(weight, num_classes: int):
    if weight is None:
        return None
    if weight.shape != (num_classes,):
        raise RuntimeError(f"weight tensor should be defined either for all {num_classes} classes or no classes "
                           f"but got weight tensor of shape: {list(weight.shape)}")
    return weight.array


def _index_target_weights(input: Tensor, target: Tensor, weight, ignore_index: int, class_dim: int):
    """Checks index targets; returns (target with ignored entries set to 0, weight of each target (0 where
    ignored), mask of the targets not ignored)."""
    _check_index_target(input, target)
    num_classes = input.shape[class_dim]
    xp = input._xp
    t = target.array
    kept = t != ignore_index
    out_of_range = kept & ((t < 0) | (t >= num_classes))
    if not backend.capturing() and bool(out_of_range.any()):  # a host read: a captured step goes unchecked
        raise IndexError(f"Target {int(t[out_of_range].ravel()[0])} is out of bounds.")
    safe = xp.where(kept, t, 0)
    w = _check_weight(weight, num_classes)
    per_target = kept.astype(input.dtype) if w is None else xp.where(kept, w.astype(input.dtype)[safe], 0)
    return safe, per_target, kept


def _take_class(values, index, class_dim: int):
    """``values[n, index[n, ...], ...]``: each sample's entry at its class (``index`` has no class dim)."""
    xp = backend.array_module(values)
    return xp.take_along_axis(values, xp.expand_dims(index, class_dim), axis=class_dim).squeeze(class_dim)


def _one_hot_weights(xp, shape, dtype, index, per_target, class_dim: int):
    """An array of ``shape``: ``per_target`` at each sample's class, 0 elsewhere."""
    dense = xp.zeros(shape, dtype)
    xp.put_along_axis(dense, xp.expand_dims(index, class_dim), xp.expand_dims(per_target, class_dim), axis=class_dim)
    return dense


def _class_view(values, ndim: int, class_dim: int):
    """A per-class 1-d array shaped to broadcast along ``class_dim`` of an ``ndim``-d array."""
    return values.reshape((-1,) + (1,) * (ndim - class_dim - 1))


def _expand_class_dim(scale: Tensor, reduction: str, input_shape: tuple, class_dim: int) -> Tensor:
    """With reduction 'none' the gradient has no class dim: put one back so it broadcasts over classes."""
    return scale.reshape(reduced_shape(input_shape, class_dim)) if reduction == "none" else scale


# --- cross_entropy and nll_loss ---------------------------------------------------------------------
class CrossEntropy(Function):
    """``log_softmax`` + NLL in one node: ``loss = -sum(q * log_softmax(input))`` over the class dim, ``q`` the
    sample's target distribution (one-hot or given probabilities, smoothed, times the class weights)."""

    @staticmethod
    def forward(ctx, input, target, weight, ignore_index, reduction, label_smoothing):
        xp = input._xp
        class_dim = _class_dim(input, "cross_entropy")
        ctx.lse = None
        if weight is None and not label_smoothing and row_kernels.cross_entropy_applies(input.array, target.array):
            return _forward_kernel(ctx, input, target, ignore_index, reduction)
        shifted = input.array - input.array.max(axis=class_dim, keepdims=True)
        probs = xp.exp(shifted)
        total = probs.sum(axis=class_dim, keepdims=True)
        probs /= total
        log_probs = shifted
        log_probs -= xp.log(total)

        ctx.class_dim, ctx.reduction, ctx.label_smoothing = class_dim, reduction, label_smoothing
        ctx.probability_target = target.dtype in FLOATING and target.shape == input.shape
        w = _check_weight(weight, input.shape[class_dim])
        ctx.class_weights = None if w is None else _class_view(w.astype(input.dtype), input.ndim, class_dim)
        if ctx.probability_target:
            per_sample = -(_smoothed(target.array, ctx, input.shape) * log_probs).sum(axis=class_dim)
            denominator = per_sample.size
        else:
            per_sample = _index_target_loss(ctx, input, target, weight, ignore_index, log_probs)
            denominator = ctx.per_target.sum()
        ctx.denominator = xp.asarray(denominator, dtype=input.dtype)
        ctx.save_for_backward(input, target, Tensor(probs))
        with _quiet_nan():
            return reduce_array(per_sample, reduction, ctx.denominator)

    @staticmethod
    def backward(ctx, grad):
        input, target, probs = ctx.saved_tensors
        class_dim = ctx.class_dim
        if ctx.lse is not None and not is_grad_enabled() and ctx.needs_input_grad[0]:
            scale = grad.array.astype(np.float32) / (ctx.denominator if ctx.reduction == "mean" else 1)
            return (Tensor(row_kernels.cross_entropy_backward(input.array, target.array, ctx.lse, scale,
                                                              ctx.ignore_index)),) + (None,) * 5
        if probs is None:
            probs = softmax(input, class_dim)
        scale = _grad_scale(grad, ctx.reduction, Tensor(ctx.denominator))
        scale = _expand_class_dim(scale, ctx.reduction, input.shape, class_dim)
        grad_input = grad_target = None
        if ctx.needs_input_grad[0]:
            if is_grad_enabled():  # create_graph: a differentiable softmax, so that second derivatives flow
                probs = softmax(input, class_dim)
            dist, dist_total = _target_distribution(ctx, input, target)
            grad_input = (probs * dist_total - dist) * scale
        if ctx.probability_target and ctx.needs_input_grad[1]:
            grad_target = _smoothed(log_softmax(input, class_dim), ctx, input.shape, shift=False) * -scale
        return grad_input, grad_target, None, None, None, None


def _forward_kernel(ctx, input, target, ignore_index: int, reduction: str):
    """The GPU kernel's path: per-row losses and log-sum-exps in one pass over the logits; backward
    recomputes the softmax from the saved log-sum-exps (no probabilities kept)."""
    ctx.class_dim, ctx.reduction, ctx.label_smoothing, ctx.probability_target = 1, reduction, 0.0, False
    ctx.class_weights, ctx.ignore_index = None, ignore_index
    ctx.target, ctx.per_target, ctx.kept = _index_target_weights(input, target, None, ignore_index, 1)
    per_sample, ctx.lse = row_kernels.cross_entropy(input.array, target.array, ignore_index)
    ctx.denominator = ctx.per_target.sum()
    ctx.save_for_backward(input, target, None)
    with _quiet_nan():
        return reduce_array(per_sample.astype(input.dtype, copy=False), reduction, ctx.denominator)


def _smoothed(target, ctx, shape: tuple, shift: bool = True):
    """``(target * (1 - smoothing) + smoothing / C) * class_weights`` (array or Tensor); ``shift=False``
    leaves out ``smoothing / C``, giving the derivative of that expression applied to ``target``."""
    smoothing = ctx.label_smoothing
    out = target * (1 - smoothing) if smoothing else target
    if shift and smoothing:
        out = out + smoothing / shape[ctx.class_dim]
    if ctx.class_weights is None:
        return out
    return out * (Tensor(ctx.class_weights) if isinstance(out, Tensor) else ctx.class_weights)


def _index_target_loss(ctx, input: Tensor, target: Tensor, weight, ignore_index: int, log_probs):
    """Per-sample loss for class-index targets; keeps on ``ctx`` what backward needs to rebuild ``q``."""
    class_dim, smoothing = ctx.class_dim, ctx.label_smoothing
    ctx.target, ctx.per_target, ctx.kept = _index_target_weights(input, target, weight, ignore_index, class_dim)
    per_sample = -(1 - smoothing) * ctx.per_target * _take_class(log_probs, ctx.target, class_dim)
    if smoothing:  # PyTorch's rule: the uniform part of q is weighted by every class's weight
        weighted = log_probs if ctx.class_weights is None else log_probs * ctx.class_weights
        per_sample -= (smoothing / input.shape[class_dim]) * input._xp.where(ctx.kept, weighted.sum(axis=class_dim), 0)
    return per_sample


def _target_distribution(ctx, input: Tensor, target: Tensor):
    """``(q, q.sum(class_dim, keepdim=True))`` as Tensors (for probability targets, functions of ``target``)."""
    class_dim, smoothing = ctx.class_dim, ctx.label_smoothing
    if ctx.probability_target:
        dist = _smoothed(target, ctx, input.shape)
        return dist, sum_to(dist, reduced_shape(input.shape, class_dim))
    xp = input._xp
    dist = _one_hot_weights(xp, input.shape, input.dtype, ctx.target, ctx.per_target * (1 - smoothing), class_dim)
    total = ctx.per_target * (1 - smoothing)
    if smoothing:
        num_classes = input.shape[class_dim]
        weights = xp.ones((num_classes,) + (1,) * (input.ndim - class_dim - 1), input.dtype) \
            if ctx.class_weights is None else ctx.class_weights
        kept = xp.expand_dims(ctx.kept, class_dim).astype(input.dtype)
        dist += (smoothing / num_classes) * weights * kept
        total = total + (smoothing / num_classes) * weights.sum() * ctx.kept
    return Tensor(dist), Tensor(xp.expand_dims(total, class_dim))


class NLLLoss(Function):
    @staticmethod
    def forward(ctx, input, target, weight, ignore_index, reduction):
        class_dim = _class_dim(input, "nll_loss")
        ctx.target, ctx.per_target, _ = _index_target_weights(input, target, weight, ignore_index, class_dim)
        ctx.class_dim, ctx.reduction, ctx.input_shape = class_dim, reduction, input.shape
        ctx.denominator = input._xp.asarray(ctx.per_target.sum(), dtype=input.dtype)
        per_sample = -ctx.per_target * _take_class(input.array, ctx.target, class_dim)
        with _quiet_nan():
            return reduce_array(per_sample, reduction, ctx.denominator)

    @staticmethod
    def backward(ctx, grad):
        scale = _grad_scale(grad, ctx.reduction, Tensor(ctx.denominator))
        scale = _expand_class_dim(scale, ctx.reduction, ctx.input_shape, ctx.class_dim)
        picked = _one_hot_weights(grad._xp, ctx.input_shape, grad.dtype, ctx.target, ctx.per_target, ctx.class_dim)
        return -(Tensor(picked) * scale), None, None, None, None


def _quiet_nan():
    """'mean' over only ignored targets is 0/0 = nan, as in PyTorch; NumPy need not warn about it."""
    return np.errstate(invalid="ignore", divide="ignore")


@autocast_op("cross_entropy_loss")
@computes_in_float32
def cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None, *, ignore_index: int = -100,
                  reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """Cross entropy of logits ``input`` (C), (N, C) or (N, C, d1, ...) against ``target``.

    ``target`` holds class indices (shape without C) or class probabilities (input's shape, float).
    """
    check_reduction(reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise RuntimeError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    if target.dtype in FLOATING and target.shape != input.shape and target.ndim == input.ndim:
        raise RuntimeError(f"cross_entropy: class-probability target must have the input's shape "
                           f"{list(input.shape)}, got {list(target.shape)}")
    return CrossEntropy.apply(input, target, as_constant(weight), ignore_index, reduction, float(label_smoothing))


@autocast_op()
@computes_in_float32
def nll_loss(input: Tensor, target: Tensor, weight: Tensor | None = None, *, ignore_index: int = -100,
             reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of log-probabilities ``input`` at class indices ``target``.

    'mean' divides by the summed weights of the targets that are not ``ignore_index`` (PyTorch's rule).
    """
    check_reduction(reduction)
    return NLLLoss.apply(input, target, as_constant(weight), ignore_index, reduction)
