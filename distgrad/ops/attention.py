"""``scaled_dot_product_attention``: softmax attention as one op whose backward keeps only P.

Shapes (``*`` are batch dimensions that broadcast as in ``matmul``; usually (N, heads))::

    query (*, L, E)   key (*, S, E)   value (*, S, Ev)   attn_mask broadcastable to (*, L, S)
    scores  = query @ key^T * scale                  (*, L, S)   scale defaults to 1/sqrt(E)
    scores += attn_mask  (float: added;  bool: -inf where False;  is_causal: -inf above the diagonal)
    P       = softmax(scores, -1)                    (*, L, S)   a row with every key masked is 0
    Pd      = P * keep / (1 - dropout_p)             (*, L, S)   keep ~ Bernoulli(1 - dropout_p)
    out     = Pd @ value                             (*, L, Ev)

Backward, from ``g = d loss / d out`` (and ``gw = d loss / d Pd`` when the weights are an output)::

    d value = Pd^T @ g        dPd = g @ value^T + gw        dP = dPd * keep / (1 - dropout_p)
    d scores = P * (dP - rowsum(dP * P))                     (the softmax's Jacobian, row by row)
    d query = d scores @ key * scale     d key = d scores^T @ query * scale     d attn_mask = d scores

Only P (and the boolean ``keep`` when there is dropout) is saved between forward and backward: the
scores are never kept, and ``Pd`` is rebuilt from P. With ``create_graph=True`` the backward recomputes
P from query and key with differentiable ops, so second derivatives work. Grouped-query attention
(``enable_gqa``: fewer key/value heads than query heads, dim -3) repeats each key/value head for its
group of query heads before the op, so its gradient is summed back over the group.

Rows whose every key is masked give zeros (output and gradients), as PyTorch's kernels do.
The GPU path is the same array code on CuPy; a fused kernel is future work (issue 11).
"""
from __future__ import annotations

import math

import numpy as np

from distgrad.autograd.function import Function
from distgrad.autograd.grad_mode import is_grad_enabled
from distgrad.ops.activation import softmax
from distgrad.ops.broadcast import sum_to
from distgrad.ops.dropout import draw_keep
from distgrad.tensor import Tensor

__all__ = ["scaled_dot_product_attention"]


# --- the forward on arrays ------------------------------------------------------------------------
def _causal_allowed(xp, length: int, source_length: int):
    """True where query i may attend key j: j <= i (the top-left aligned lower triangle, as PyTorch)."""
    return xp.tri(length, source_length, dtype=bool)


def _masked_scores(q, k, mask, causal: bool, scale: float):
    """``q @ k^T * scale`` with the mask applied: (*, L, S), a new array."""
    xp = q._xp
    scores = xp.matmul(q.array, xp.swapaxes(k.array, -1, -2))
    scores *= scores.dtype.type(scale)
    if causal:
        xp.copyto(scores, -np.inf, where=~_causal_allowed(xp, *scores.shape[-2:]))
    elif mask is not None and mask.dtype == np.bool_:
        xp.copyto(scores, -np.inf, where=~mask.array)
    elif mask is not None:
        scores += mask.array
    return scores


def _softmax_rows_in_place(xp, scores):
    """Softmax along the last axis, written over ``scores``; rows of -inf only become zeros."""
    if scores.shape[-1] == 0:
        return scores
    top = scores.max(axis=-1, keepdims=True)
    top[top == -np.inf] = 0  # a fully masked row: exp(-inf - 0) = 0 everywhere rather than NaN
    scores -= top
    xp.exp(scores, out=scores)
    total = scores.sum(axis=-1, keepdims=True)
    total[total == 0] = 1
    scores /= total
    return scores


class ScaledDotProductAttention(Function):
    """``softmax(q k^T * scale + mask) @ v`` with dropout on the probabilities (see the module docstring).

    Inputs: q, k, v Tensors whose batch dims broadcast; ``mask`` None, a bool Tensor (True = attend) or a
    float Tensor (added); ``causal``; ``scale``; ``dropout_p``; ``need_weights``: also return ``Pd``.
    """

    @staticmethod
    def forward(ctx, q, k, v, mask, causal, scale, dropout_p, need_weights):
        xp = q._xp
        probs = _softmax_rows_in_place(xp, _masked_scores(q, k, mask, causal, scale))
        keep = None
        if dropout_p > 0:
            keep = draw_keep(probs.shape, probs.dtype, q.device, dropout_p)
            dropped = probs * keep
            if dropout_p < 1:
                dropped *= dropped.dtype.type(1 / (1 - dropout_p))
        else:
            dropped = probs
        out = xp.matmul(dropped, v.array)
        probs = Tensor(probs)
        ctx.keep, ctx.causal, ctx.scale, ctx.dropout_p = keep, causal, scale, dropout_p
        ctx.save_for_backward(q, k, v, mask, probs)
        if not need_weights:
            return out
        return out, probs if keep is None else Tensor(dropped)

    @staticmethod
    def backward(ctx, grad_out, grad_weights=None):
        q, k, v, mask, probs = ctx.saved_tensors
        if is_grad_enabled():  # create_graph: P as a function of q, k and the mask, to differentiate again
            probs = _probabilities(q, k, mask, ctx.causal, ctx.scale)
        keep = None
        if ctx.keep is not None:
            factor = 1 / (1 - ctx.dropout_p) if ctx.dropout_p < 1 else 0.0
            keep = Tensor(ctx.keep.astype(probs.dtype) * probs.dtype.type(factor))
        dropped = probs if keep is None else probs * keep
        grad_q = grad_k = grad_v = grad_mask = None
        if ctx.needs_input_grad[2]:
            grad_v = sum_to(dropped.mT @ grad_out, v.shape)
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1] or ctx.needs_input_grad[3]:
            grad_dropped = grad_out @ v.mT
            if grad_weights is not None:
                grad_dropped = grad_dropped + grad_weights
            grad_probs = grad_dropped if keep is None else grad_dropped * keep
            grad_scores = probs * (grad_probs - (grad_probs * probs).sum(-1, keepdim=True))
            if ctx.needs_input_grad[0]:
                grad_q = sum_to(grad_scores @ k * ctx.scale, q.shape)
            if ctx.needs_input_grad[1]:
                grad_k = sum_to(grad_scores.mT @ q * ctx.scale, k.shape)
            if ctx.needs_input_grad[3]:
                grad_mask = sum_to(grad_scores, mask.shape)
        return grad_q, grad_k, grad_v, grad_mask, None, None, None, None


def _probabilities(q: Tensor, k: Tensor, mask: Tensor | None, causal: bool, scale: float) -> Tensor:
    """P of the forward, built from differentiable ops (for ``create_graph``)."""
    scores = q @ k.mT * scale
    xp = q._xp
    if causal:
        scores = scores.masked_fill(Tensor(~_causal_allowed(xp, *scores.shape[-2:])), -math.inf)
    elif mask is not None and mask.dtype == np.bool_:
        scores = scores.masked_fill(Tensor(~mask.array), -math.inf)
    elif mask is not None:
        scores = scores + mask
    dead = Tensor(scores.array.max(axis=-1, keepdims=True) == -np.inf) if scores.shape[-1] else None
    if dead is None or not bool(dead.array.any()):
        return softmax(scores, -1)
    return softmax(scores.masked_fill(dead, 0.0), -1).masked_fill(dead, 0.0)


# --- checks and the public function ---------------------------------------------------------------
def _check(query: Tensor, key: Tensor, value: Tensor, attn_mask, dropout_p: float, is_causal: bool) -> None:
    if query.ndim < 2 or key.ndim < 2 or value.ndim < 2:
        raise RuntimeError(f"Expected query, key, and value to all be  at least 2 dimensional, but got query.dim: "
                           f"{query.ndim} key.dim: {key.ndim} and value.dim: {value.ndim} instead.")
    if not (query.dtype == key.dtype == value.dtype):
        raise RuntimeError(f"Expected query, key, and value to have the same dtype, but got query.dtype: "
                           f"{query.dtype.name} key.dtype: {key.dtype.name} and value.dtype: {value.dtype.name} "
                           f"instead.")
    if query.dtype.kind != "f":
        raise RuntimeError(f"scaled_dot_product_attention: expected floating point query, key and value, got "
                           f"{query.dtype.name}")
    if query.shape[-1] != key.shape[-1]:
        raise RuntimeError(f"scaled_dot_product_attention: query (shape {list(query.shape)}) and key (shape "
                           f"{list(key.shape)}) must have the same embedding size (last dim)")
    if key.shape[-2] != value.shape[-2]:
        raise RuntimeError(f"scaled_dot_product_attention: key (shape {list(key.shape)}) and value (shape "
                           f"{list(value.shape)}) must have the same sequence length (dim -2)")
    if not dropout_p <= 1:
        raise RuntimeError(f"dropout probability has to be between 0 and 1, but got {dropout_p}")
    if attn_mask is not None:
        if is_causal:
            raise RuntimeError("_scaled_dot_product_attention: Explicit attn_mask should not be set when "
                               "is_causal=True")
        if attn_mask.dtype != np.bool_ and attn_mask.dtype != query.dtype:
            raise RuntimeError(f"Expected attn_mask dtype to be bool or float or to match query dtype, but got "
                               f"attn_mask.dtype: {attn_mask.dtype.name} and  query.dtype: {query.dtype.name} "
                               f"instead.")


def _repeat_heads(t: Tensor, groups: int) -> Tensor:
    """(*, H, S, E) -> (*, H * groups, S, E), each head repeated ``groups`` times in place (GQA's layout)."""
    if groups == 1:
        return t
    *batch, heads, s, e = t.shape
    return t.unsqueeze(-3).expand(*batch, heads, groups, s, e).reshape(*batch, heads * groups, s, e)


def _gqa_groups(query: Tensor, other: Tensor, name: str) -> int:
    if query.ndim < 3 or other.ndim < 3:
        return 1
    hq, h = query.shape[-3], other.shape[-3]
    if hq % h:
        raise RuntimeError(f"Number of heads in key and value must divide the number of heads in query; got "
                           f"query heads {hq} and {name} heads {h}")
    return hq // h


def _check_batch(query: Tensor, key: Tensor, value: Tensor, attn_mask) -> None:
    """Batch dims broadcast; the mask may broadcast to the scores' shape but never widen it (PyTorch's rule)."""
    try:
        batch = np.broadcast_shapes(query.shape[:-2], key.shape[:-2], value.shape[:-2])
    except ValueError:
        raise RuntimeError(f"scaled_dot_product_attention: the batch dims of query {list(query.shape)}, key "
                           f"{list(key.shape)} and value {list(value.shape)} do not broadcast") from None
    scores = batch + (query.shape[-2], key.shape[-2])
    if attn_mask is not None:
        try:
            widened = np.broadcast_shapes(scores, attn_mask.shape)
        except ValueError:
            widened = None
        if widened != scores:
            raise RuntimeError(f"scaled_dot_product_attention: attn_mask of shape {list(attn_mask.shape)} does not "
                               f"broadcast to the attention scores' shape {list(scores)}")


def attention(query: Tensor, key: Tensor, value: Tensor, attn_mask: Tensor | None = None, dropout_p: float = 0.0,
              is_causal: bool = False, scale: float | None = None, enable_gqa: bool = False,
              need_weights: bool = False):
    """``scaled_dot_product_attention``; with ``need_weights`` returns ``(output, weights)``, the weights
    (*, L, S) being the attention probabilities after dropout (what ``MultiheadAttention`` returns)."""
    _check(query, key, value, attn_mask, dropout_p, is_causal)
    if enable_gqa:
        key = _repeat_heads(key, _gqa_groups(query, key, "key"))
        value = _repeat_heads(value, _gqa_groups(query, value, "value"))
    _check_batch(query, key, value, attn_mask)
    scale = 1 / math.sqrt(query.shape[-1]) if scale is None else float(scale)
    return ScaledDotProductAttention.apply(query, key, value, attn_mask, is_causal, scale, max(dropout_p, 0.0),
                                           need_weights)


def scaled_dot_product_attention(query: Tensor, key: Tensor, value: Tensor, attn_mask: Tensor | None = None,
                                 dropout_p: float = 0.0, is_causal: bool = False, scale: float | None = None,
                                 enable_gqa: bool = False) -> Tensor:
    """Softmax attention of ``query`` (*, L, E) over ``key`` (*, S, E) and ``value`` (*, S, Ev): (*, L, Ev).

    ``attn_mask``: bool (True = may attend) or float (added to the scores), broadcastable to (*, L, S).
    ``is_causal``: query i attends keys 0..i (no ``attn_mask`` then). ``dropout_p``: dropout on the
    probabilities, drawn from distgrad's generator (pass 0 in evaluation: this function has no
    training flag, as in PyTorch). ``scale``: defaults to 1/sqrt(E). ``enable_gqa``: key/value may have
    fewer heads (dim -3) than query, each serving a group of consecutive query heads.
    """
    return attention(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)
