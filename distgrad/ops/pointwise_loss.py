"""Per-element losses with PyTorch's signatures and semantics: the regression losses ``mse_loss``,
``l1_loss``, ``smooth_l1_loss``, ``huber_loss``, the binary ones ``binary_cross_entropy(_with_logits)``,
and the distribution ones ``kl_div``, ``poisson_nll_loss``, ``gaussian_nll_loss``.

Each computes one loss per element (optionally times a ``weight``) and reduces it with
``reduction='none' | 'mean' | 'sum'``; a weighted regression 'mean' divides by the summed weights.
Weights take no gradient.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from distgrad.autograd.function import Function
from distgrad.autograd.grad_mode import is_grad_enabled
from distgrad.ops.autocasting import autocast_op
from distgrad.ops.broadcast import sum_to
from distgrad.ops.elementwise import softplus, where
from distgrad.ops.loss import as_constant, check_reduction, reduce_array
from distgrad.tensor import Tensor

__all__ = ["mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "binary_cross_entropy",
           "binary_cross_entropy_with_logits", "kl_div", "poisson_nll_loss", "gaussian_nll_loss"]


# --- regression losses ------------------------------------------------------------------------------
def _warn_if_broadcast(input: Tensor, target: Tensor) -> None:
    if input.shape != target.shape:
        warnings.warn(f"Using a target size ({list(target.shape)}) that is different to the input size "
                      f"({list(input.shape)}). This will likely lead to incorrect results due to broadcasting. "
                      f"Please ensure they have the same size.", stacklevel=3)


def reduce_tensor(loss: Tensor, reduction: str, weight: Tensor | None = None) -> Tensor:
    """``loss`` (times ``weight``) reduced; a weighted 'mean' divides by the sum of the weights, as PyTorch."""
    check_reduction(reduction)
    if weight is not None:
        if weight.shape != loss.shape:
            raise ValueError("Weights and input must have the same size.")
        loss = loss * weight
    if reduction == "none":
        return loss
    total = sum_to(loss, ())
    if reduction == "sum":
        return total
    return total / (loss.numel() if weight is None else sum_to(weight, ()))


@autocast_op()
def mse_loss(input: Tensor, target: Tensor, *, reduction: str = "mean", weight: Tensor | None = None) -> Tensor:
    """``(input - target) ** 2``, optionally times ``weight`` (input's shape), reduced."""
    _warn_if_broadcast(input, target)
    diff = input - target
    return reduce_tensor(diff * diff, reduction, weight)


@autocast_op()
def l1_loss(input: Tensor, target: Tensor, *, reduction: str = "mean", weight: Tensor | None = None) -> Tensor:
    """``|input - target|``, optionally times ``weight``, reduced (gradient 0 where input equals target)."""
    _warn_if_broadcast(input, target)
    return reduce_tensor((input - target).abs(), reduction, weight)


@autocast_op()
def smooth_l1_loss(input: Tensor, target: Tensor, *, reduction: str = "mean", beta: float = 1.0) -> Tensor:
    """Huber-like: ``0.5 d**2 / beta`` where ``|d| < beta``, ``|d| - 0.5 beta`` elsewhere (``d = input - target``)."""
    if beta < 0:
        raise RuntimeError("smooth_l1_loss does not support negative values for beta.")
    _warn_if_broadcast(input, target)
    diff = input - target
    distance = diff.abs()
    if beta == 0:
        return reduce_tensor(distance, reduction)
    loss = where(distance < beta, diff * diff * (0.5 / beta), distance - 0.5 * beta)
    return reduce_tensor(loss, reduction)


@autocast_op()
def huber_loss(input: Tensor, target: Tensor, reduction: str = "mean", delta: float = 1.0,
               weight: Tensor | None = None) -> Tensor:
    """``0.5 d**2`` where ``|d| < delta``, ``delta * (|d| - 0.5 delta)`` elsewhere; ``smooth_l1_loss`` times ``delta``.

    With ``weight``, 'mean' is the plain mean of the weighted losses (PyTorch's rule for this loss).
    """
    if delta <= 0:
        raise RuntimeError(f"huber_loss does not support non-positive values for delta, got {delta}.")
    _warn_if_broadcast(input, target)
    diff = input - target
    distance = diff.abs()
    loss = where(distance < delta, diff * diff * 0.5, (distance - 0.5 * delta) * delta)
    if weight is None:
        return reduce_tensor(loss, reduction)
    if weight.shape != input.shape:
        raise ValueError("Weights and input must have the same size.")
    weighted = loss * weight
    return reduce_tensor(weighted, reduction) if reduction != "mean" else sum_to(weighted, ()) / weighted.numel()


# --- distribution losses ------------------------------------------------------------------------------
@autocast_op()
def kl_div(input: Tensor, target: Tensor, *, reduction: str = "mean", log_target: bool = False) -> Tensor:
    """``target * (log(target) - input)`` for log-probabilities ``input`` (0 where ``target`` is 0); with
    ``log_target``, ``exp(target) * (target - input)``.

    ``reduction='batchmean'`` divides the sum by the batch size (the KL divergence); ``'mean'`` divides by
    the number of elements and warns, as PyTorch does.
    """
    if reduction == "mean":
        warnings.warn("reduction: 'mean' divides the total loss by both the batch size and the support size."
                      "'batchmean' divides only by the batch size, and aligns with the KL div math definition."
                      "'mean' will be changed to behave the same as 'batchmean' in the next major release.",
                      stacklevel=2)
    if log_target:
        loss = target.exp() * (target - input)
    else:
        # xlogy(target, target): 0 where the target is 0, with a finite gradient there
        safe = where(target == 0, 1.0, target)
        loss = target * safe.log() - target * input
    if reduction != "batchmean":
        return reduce_tensor(loss, reduction)
    total = sum_to(loss, ())
    return total / input.shape[0] if input.ndim else total


@autocast_op()
def poisson_nll_loss(input: Tensor, target: Tensor, log_input: bool = True, full: bool = False, *,
                     eps: float = 1e-8, reduction: str = "mean") -> Tensor:
    """Negative log likelihood of ``target`` counts under Poisson rates ``exp(input)`` (``log_input``) or ``input``.

    ``full`` adds Stirling's approximation of ``log(target!)`` where ``target > 1``.
    """
    loss = input.exp() - target * input if log_input else input - target * (input + eps).log()
    if full:
        positive = where(target > 1, target, 1.0)  # Stirling's term is 0 where target <= 1
        stirling = positive * positive.log() - positive + 0.5 * (2 * math.pi * positive).log()
        loss = loss + where(target > 1, stirling, 0.0)
    return reduce_tensor(loss, reduction)


def gaussian_nll_loss(input: Tensor, target: Tensor, var, full: bool = False, eps: float = 1e-6,
                      reduction: str = "mean") -> Tensor:
    """``0.5 * (log(var) + (input - target)**2 / var)`` (plus ``0.5 log(2 pi)`` when ``full``).

    ``var`` is a number, a tensor of ``input``'s shape, or one with a single dim of size 1 (or the last
    dim missing). It is clamped at ``eps`` for the value only: its gradient passes as if unclamped, as in PyTorch.
    """
    if isinstance(var, (int, float)):
        if var < 0:
            raise ValueError("var has negative entry/entries")
        var = Tensor(input._xp.full(input.shape, float(var), input.dtype))
    elif bool((var.array < 0).any()):
        raise ValueError("var has negative entry/entries")
    if var.shape != input.shape:
        if input.shape[:-1] == var.shape:
            var = var.unsqueeze(-1)
        elif not (input.ndim == var.ndim and sum(v for i, v in zip(input.shape, var.shape) if i != v) == 1):
            raise ValueError("var is of incorrect size")
    check_reduction(reduction)
    var = var + (var.clamp(min=eps) - var).detach()
    diff = input - target
    loss = 0.5 * (var.log() + diff * diff / var)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return reduce_tensor(loss, reduction)


# --- binary losses ----------------------------------------------------------------------------------
def _check_binary_shapes(input: Tensor, target: Tensor, message: str) -> None:
    if input.shape != target.shape:
        raise ValueError(message.format(target=list(target.shape), input=list(input.shape)))


def _weighted(t: Tensor, weight: Tensor | None) -> Tensor:
    return t if weight is None else t * weight


class BinaryCrossEntropyWithLogits(Function):
    """``(1 - y) x + (1 + (pos_weight - 1) y) softplus(-x)``, with softplus computed without overflow."""

    @staticmethod
    def forward(ctx, input, target, weight, pos_weight, reduction):
        xp = input._xp
        x, y = input.array, target.array
        softplus_neg = xp.log1p(xp.exp(-xp.abs(x))) + xp.maximum(-x, 0)
        log_weight = 1 if pos_weight is None else 1 + (pos_weight.array - 1) * y
        loss = (1 - y) * x + log_weight * softplus_neg
        if weight is not None:
            loss = loss * weight.array
        ctx.reduction, ctx.numel = reduction, loss.size
        ctx.softplus_neg = softplus_neg if pos_weight is not None else None
        ctx.save_for_backward(input, target, weight, pos_weight)
        return reduce_array(loss, reduction)

    @staticmethod
    def backward(ctx, grad):
        input, target, weight, pos_weight = ctx.saved_tensors
        scale = _weighted(grad / ctx.numel if ctx.reduction == "mean" else grad, weight)
        grad_input = grad_target = None
        if ctx.needs_input_grad[0]:
            if pos_weight is None:
                grad_input = (input.sigmoid() - target) * scale
            else:
                log_weight = 1 + (pos_weight - 1) * target
                grad_input = (log_weight * input.sigmoid() - log_weight + 1 - target) * scale
            grad_input = sum_to(grad_input, input.shape)
        if ctx.needs_input_grad[1]:
            grad_target = -input
            if pos_weight is not None:
                grad_target = grad_target + (pos_weight - 1) * _softplus_of_negated(input, ctx.softplus_neg)
            grad_target = sum_to(grad_target * scale, target.shape)
        return grad_input, grad_target, None, None, None


def _softplus_of_negated(input: Tensor, value) -> Tensor:
    """``softplus(-input)``: the forward's array, or with create_graph the differentiable op."""
    return softplus(-input) if is_grad_enabled() else Tensor(value)


class BinaryCrossEntropy(Function):
    """``-(y log x + (1 - y) log(1 - x))`` with each log clamped at -100, as in PyTorch."""

    @staticmethod
    def forward(ctx, input, target, weight, reduction):
        xp = input._xp
        x, y = input.array, target.array
        if bool(((x < 0) | (x > 1)).any()):
            raise RuntimeError("all elements of input should be between 0 and 1")
        with np.errstate(divide="ignore"):
            loss = -(y * xp.maximum(xp.log(x), -100) + (1 - y) * xp.maximum(xp.log1p(-x), -100))
        if weight is not None:
            loss = loss * weight.array
        ctx.reduction, ctx.numel = reduction, loss.size
        ctx.save_for_backward(input, target, weight)
        return reduce_array(loss, reduction)

    @staticmethod
    def backward(ctx, grad):
        input, target, weight = ctx.saved_tensors
        scale = _weighted(grad / ctx.numel if ctx.reduction == "mean" else grad, weight)
        grad_input = grad_target = None
        if ctx.needs_input_grad[0]:
            # PyTorch's bound keeps the gradient finite where x is exactly 0 or 1
            grad_input = (input - target) / (input * (1 - input)).clamp(min=1e-12) * scale
        if ctx.needs_input_grad[1]:
            grad_target = ((1 - input).log() - input.log()) * scale
        return grad_input, grad_target, None, None


@autocast_op()
def binary_cross_entropy_with_logits(input: Tensor, target: Tensor, weight: Tensor | None = None, *,
                                     reduction: str = "mean", pos_weight: Tensor | None = None) -> Tensor:
    """Binary cross entropy of logits: a stable ``binary_cross_entropy(sigmoid(input), target)``.

    ``weight`` scales each element and ``pos_weight`` the positive term per class (both broadcast; they
    take no gradient).
    """
    check_reduction(reduction)
    _check_binary_shapes(input, target, "Target size ({target}) must be the same as input size ({input})")
    return BinaryCrossEntropyWithLogits.apply(input, target, as_constant(weight), as_constant(pos_weight), reduction)


@autocast_op()
def binary_cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None, *,
                         reduction: str = "mean") -> Tensor:
    """Binary cross entropy of probabilities ``input`` in [0, 1]; ``weight`` scales each element."""
    check_reduction(reduction)
    _check_binary_shapes(input, target, "Using a target size ({target}) that is different to the input size "
                                        "({input}) is deprecated. Please ensure they have the same size.")
    return BinaryCrossEntropy.apply(input, target, as_constant(weight), reduction)
