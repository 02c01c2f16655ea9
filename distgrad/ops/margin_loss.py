"""Losses that compare pairs or triplets against a margin, for embeddings and rankings, with PyTorch's
formulas: ``cosine_embedding_loss``, ``margin_ranking_loss``, ``hinge_embedding_loss``,
``triplet_margin_loss``, and the two-class ``soft_margin_loss`` and ``multilabel_soft_margin_loss``.

Targets are +1 / -1 (0 / 1 for the multilabel loss) and take no gradient. Each loss is a composition of
differentiable ops, reduced with ``reduction='none' | 'mean' | 'sum'``; as in PyTorch's functional forms,
the options after the deprecated ``size_average``/``reduce`` are keyword-only here.
"""
from __future__ import annotations

from distgrad.ops.autocasting import autocast_op
from distgrad.ops.distance import pairwise_distance
from distgrad.ops.elementwise import softplus, where
from distgrad.ops.loss import check_reduction
from distgrad.ops.pointwise_activation import logsigmoid
from distgrad.ops.pointwise_loss import reduce_tensor
from distgrad.tensor import Tensor

__all__ = ["cosine_embedding_loss", "margin_ranking_loss", "hinge_embedding_loss", "soft_margin_loss",
           "multilabel_soft_margin_loss", "triplet_margin_loss"]

_EPSILON = 1e-12  # PyTorch's guard on the squared norms of cosine_embedding_loss


@autocast_op()
def cosine_embedding_loss(input1: Tensor, input2: Tensor, target: Tensor, margin: float = 0, *,
                          reduction: str = "mean") -> Tensor:
    """``1 - cos(x1, x2)`` where ``target`` is 1 and ``max(0, cos(x1, x2) - margin)`` where it is -1.

    Inputs are (N, D) with targets (N,), or (D,) with a 0-d target.
    """
    if input1.ndim not in (1, 2) or input1.shape != input2.shape:
        raise RuntimeError(f"cosine_embedding_loss: expected 1-D or 2-D inputs of one shape, got "
                           f"{list(input1.shape)} and {list(input2.shape)}")
    if target.ndim > 1:
        raise RuntimeError("0D or 1D target tensor expected, multi-target not supported")
    if target.ndim != input1.ndim - 1:
        raise RuntimeError(f"{target.ndim}D target tensor expects {target.ndim + 1}D input tensors, but found "
                           f"inputs with sizes {list(input1.shape)} and {list(input2.shape)}.")
    dim = input1.ndim - 1
    dot = (input1 * input2).sum(dim)
    squared1 = (input1 * input1).sum(dim) + _EPSILON
    squared2 = (input2 * input2).sum(dim) + _EPSILON
    cos = dot / (squared1 * squared2).sqrt()
    loss = where(target == 1, 1 - cos, 0.0) + where(target == -1, (cos - margin).clamp_min(0), 0.0)
    return reduce_tensor(loss, reduction)


@autocast_op()
def margin_ranking_loss(input1: Tensor, input2: Tensor, target: Tensor, margin: float = 0, *,
                        reduction: str = "mean") -> Tensor:
    """``max(0, -target * (input1 - input2) + margin)``: ``input1`` should rank above ``input2`` where target is 1."""
    if not (input1.ndim == input2.ndim == target.ndim):
        raise RuntimeError(f"margin_ranking_loss : All input tensors should have same dimension but got sizes: "
                           f"input1: {list(input1.shape)}, input2: {list(input2.shape)}, target: {list(target.shape)} ")
    return reduce_tensor((-target * (input1 - input2) + margin).clamp_min(0), reduction)


@autocast_op()
def hinge_embedding_loss(input: Tensor, target: Tensor, margin: float = 1.0, *, reduction: str = "mean") -> Tensor:
    """``input`` where ``target`` is 1 and ``max(0, margin - input)`` where it is -1 (``input``: a distance)."""
    loss = where(target != 1, (margin - input).clamp_min(0), 0.0) + where(target != -1, input, 0.0)
    return reduce_tensor(loss, reduction)


@autocast_op()
def soft_margin_loss(input: Tensor, target: Tensor, *, reduction: str = "mean") -> Tensor:
    """The logistic loss ``log(1 + exp(-target * input))`` of targets +1 / -1."""
    return reduce_tensor(softplus(-target * input), reduction)


def multilabel_soft_margin_loss(input: Tensor, target: Tensor, weight: Tensor | None = None, *,
                                reduction: str = "mean") -> Tensor:
    """One logistic loss per class (targets 0 or 1), optionally weighted, averaged over the classes (last dim)."""
    loss = -(target * logsigmoid(input) + (1 - target) * logsigmoid(-input))
    if weight is not None:
        loss = loss * weight.detach()
    class_dim = input.ndim - 1
    return reduce_tensor(loss.sum(class_dim) / input.shape[class_dim], reduction)


@autocast_op()
def triplet_margin_loss(anchor: Tensor, positive: Tensor, negative: Tensor, margin: float = 1.0, p: float = 2,
                        eps: float = 1e-6, swap: bool = False, *, reduction: str = "mean") -> Tensor:
    """``max(0, d(anchor, positive) - d(anchor, negative) + margin)`` with ``d`` the ``pairwise_distance``;
    ``swap`` uses the smaller of d(anchor, negative) and d(positive, negative)."""
    check_reduction(reduction)
    if not (anchor.ndim == positive.ndim == negative.ndim):
        raise RuntimeError(f"The anchor, positive, and negative tensors are expected to have the same number of "
                           f"dimensions, but got: anchor {anchor.ndim}D, positive {positive.ndim}D, and negative "
                           f"{negative.ndim}D inputs")
    if margin <= 0:
        raise ValueError(f"margin must be greater than 0, got {margin}")
    d_positive = pairwise_distance(anchor, positive, p, eps)
    d_negative = pairwise_distance(anchor, negative, p, eps)
    if swap:
        d_swap = pairwise_distance(positive, negative, p, eps)
        d_negative = d_negative.minimum(d_swap)
    return reduce_tensor((margin + d_positive - d_negative).clamp_min(0), reduction)
