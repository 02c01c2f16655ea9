"""Multi-head attention as a function: projections, masks, heads, ``scaled_dot_product_attention``, output.

``multi_head_attention_forward`` has PyTorch's signature and takes sequence-first (L, N, E) inputs;
``multi_head_attention`` is the same computation on batch-first (N, L, E) inputs, which is how
``MultiheadAttention(batch_first=True)`` calls it without transposing anything. The steps::

    q, k, v  = query W_q^T + b_q, key W_k^T + b_k, value W_v^T + b_v   (N, L, E), (N, S, E), (N, S, E)
               (one packed product when query is key is value)
    k, v    += one more position holding bias_k, bias_v                 (add_bias_kv)
    heads      (N, L, E) -> (N, H, L, E/H)
    k, v    += one more position of zeros                              (add_zero_attn)
    mask       attn_mask (L, S) or (N*H, L, S) and key_padding_mask (N, S), True = masked out, or added
               when float: merged into one bool "may attend" mask or one additive float mask (N|1, H|1, L, S)
    out, w     = scaled_dot_product_attention with that mask, dropout on w when training
    out        (N, H, L, E/H) -> (N, L, E), then out W_o^T + b_o; w averaged over heads when asked

Difference from PyTorch: with ``need_weights=True`` a query whose every key is masked gets zeros (output
and weights), as ``need_weights=False`` gives in both libraries; PyTorch's weights path gives NaN there.
``static_k``/``static_v`` are supported; PyTorch's inference fast path is not needed (the result is the same).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from distgrad import ops
from distgrad.dtypes import FLOATING
from distgrad.ops.attention import attention
from distgrad.tensor import Tensor

__all__ = ["multi_head_attention_forward", "multi_head_attention", "AttentionWeights"]


class AttentionWeights(NamedTuple):
    """The parameters of one multi-head attention (PyTorch's names); unused ones are None."""

    in_proj_weight: Tensor | None
    in_proj_bias: Tensor | None
    out_proj_weight: Tensor
    out_proj_bias: Tensor | None
    q_proj_weight: Tensor | None = None
    k_proj_weight: Tensor | None = None
    v_proj_weight: Tensor | None = None
    bias_k: Tensor | None = None
    bias_v: Tensor | None = None


# --- projections ----------------------------------------------------------------------------------
def _in_projections(query: Tensor, key: Tensor, value: Tensor, w: AttentionWeights, embed_dim: int):
    """q, k, v: each input times its (E, E_in) block of the in-projection, plus its bias block."""
    b = w.in_proj_bias
    bq, bk, bv = (None, None, None) if b is None else (b[:embed_dim], b[embed_dim:2 * embed_dim], b[2 * embed_dim:])
    if w.in_proj_weight is None:  # separate weights: key and value have their own widths
        return (ops.linear(query, w.q_proj_weight, bq), ops.linear(key, w.k_proj_weight, bk),
                ops.linear(value, w.v_proj_weight, bv))
    weight = w.in_proj_weight
    if query is key and key is value:  # self-attention: one product for all three
        return ops.linear(query, weight, b).chunk(3, dim=-1)
    if key is value:
        q = ops.linear(query, weight[:embed_dim], bq)
        kv = ops.linear(key, weight[embed_dim:], None if b is None else b[embed_dim:])
        return (q, *kv.chunk(2, dim=-1))
    return (ops.linear(query, weight[:embed_dim], bq), ops.linear(key, weight[embed_dim:2 * embed_dim], bk),
            ops.linear(value, weight[2 * embed_dim:], bv))


# --- masks ----------------------------------------------------------------------------------------
def _check_mask_dtype(mask: Tensor | None, name: str) -> None:
    if mask is not None and mask.dtype != np.bool_ and mask.dtype not in FLOATING:
        raise AssertionError(f"only bool and floating types of {name} are supported")


def _with_unmasked_key(mask: Tensor | None) -> Tensor | None:
    """``mask`` with one more key position (last dim) that nothing masks: False, or 0.0 when additive."""
    if mask is None:
        return None
    extra = Tensor(mask._xp.zeros(mask.shape[:-1] + (1,), mask.dtype))
    return ops.cat([mask, extra], dim=-1)


def _merged_mask(attn_mask: Tensor | None, key_padding_mask: Tensor | None, dtype) -> Tensor | None:
    """One mask for the op, from PyTorch's two (True = masked out): bool "may attend" when both are bool
    (or absent), else the sum of both as additive float masks (bool ones as 0 / -inf)."""
    masks = [m for m in (attn_mask, key_padding_mask) if m is not None]
    if not masks:
        return None
    # Tensor ops rather than array ones, so that dg.onnx.export records masks that are model inputs
    if all(m.dtype == np.bool_ for m in masks):
        allowed = ~masks[0]
        for m in masks[1:]:
            allowed = allowed & ~m
        return allowed
    additive = [m if m.dtype != np.bool_ else ops.where(m, -np.inf, 0.0).to(dtype) for m in masks]
    return additive[0] if len(additive) == 1 else additive[0] + additive[1]


def _head_mask(attn_mask: Tensor | None, n: int, num_heads: int, length: int, source: int) -> Tensor | None:
    """``attn_mask`` (L, S) or (N*H, L, S) as (1, 1, L, S) or (N, H, L, S), its shape checked as PyTorch does."""
    if attn_mask is None:
        return None
    if attn_mask.ndim == 2:
        if attn_mask.shape != (length, source):
            raise RuntimeError(f"The shape of the 2D attn_mask is {list(attn_mask.shape)}, but should be "
                               f"{[length, source]}.")
        return attn_mask.reshape(1, 1, length, source)
    if attn_mask.ndim == 3:
        if attn_mask.shape != (n * num_heads, length, source):
            raise RuntimeError(f"The shape of the 3D attn_mask is {list(attn_mask.shape)}, but should be "
                               f"{[n * num_heads, length, source]}.")
        return attn_mask.reshape(n, num_heads, length, source)
    raise RuntimeError(f"attn_mask's dimension {attn_mask.ndim} is not supported")


# --- the computation ------------------------------------------------------------------------------
def _split_heads(t: Tensor, num_heads: int) -> Tensor:
    """(N, L, E) -> (N, H, L, E/H)."""
    n, length, e = t.shape
    return t.reshape(n, length, num_heads, e // num_heads).transpose(1, 2)


def _static(t: Tensor, name: str, n: int, num_heads: int, head_dim: int) -> Tensor:
    """A given (N*H, S, E/H) key or value as (N, H, S, E/H)."""
    if t.shape[0] != n * num_heads:
        raise AssertionError(f"expecting {name}.size(0) of {n * num_heads}, but got {t.shape[0]}")
    if t.shape[2] != head_dim:
        raise AssertionError(f"expecting {name}.size(2) of {head_dim}, but got {t.shape[2]}")
    return t.reshape(n, num_heads, t.shape[1], head_dim)


def multi_head_attention(query: Tensor, key: Tensor, value: Tensor, num_heads: int, weights: AttentionWeights,
                         dropout_p: float = 0.0, training: bool = True, key_padding_mask: Tensor | None = None,
                         need_weights: bool = True, attn_mask: Tensor | None = None,
                         average_attn_weights: bool = True, is_causal: bool = False, add_zero_attn: bool = False,
                         static_k: Tensor | None = None, static_v: Tensor | None = None):
    """Batch-first multi-head attention: query (N, L, E), key (N, S, E_k), value (N, S, E_v) -> (N, L, E)
    and the weights ((N, L, S) averaged or (N, H, L, S)) or None. See the module docstring."""
    n, length, embed_dim = query.shape
    head_dim = embed_dim // num_heads
    _check_mask_dtype(key_padding_mask, "key_padding_mask")
    _check_mask_dtype(attn_mask, "attn_mask")
    if is_causal and attn_mask is None:
        raise RuntimeError("Need attn_mask if specifying the is_causal hint. You may use the Transformer module "
                           "method `generate_square_subsequent_mask` to create this mask.")
    if is_causal and key_padding_mask is None and not need_weights:
        attn_mask = None  # the hint stands for the mask: the op builds the causal mask itself
    else:
        is_causal = False
    q, k, v = _in_projections(query, key, value, weights, embed_dim)
    source = key.shape[1]
    attn_mask = _head_mask(attn_mask, n, num_heads, length, source)
    if weights.bias_k is not None and weights.bias_v is not None:
        if static_k is not None or static_v is not None:
            raise AssertionError("bias cannot be added to static key.")
        k = ops.cat([k, weights.bias_k.expand(n, 1, embed_dim)], dim=1)
        v = ops.cat([v, weights.bias_v.expand(n, 1, embed_dim)], dim=1)
        attn_mask, key_padding_mask = _with_unmasked_key(attn_mask), _with_unmasked_key(key_padding_mask)
    elif weights.bias_k is not None or weights.bias_v is not None:
        raise AssertionError("bias_k and bias_v must be given together")
    q = _split_heads(q, num_heads)
    k = _split_heads(k, num_heads) if static_k is None else _static(static_k, "static_k", n, num_heads, head_dim)
    v = _split_heads(v, num_heads) if static_v is None else _static(static_v, "static_v", n, num_heads, head_dim)
    if add_zero_attn:
        k = ops.cat([k, Tensor(k._xp.zeros((n, num_heads, 1, head_dim), k.dtype))], dim=2)
        v = ops.cat([v, Tensor(v._xp.zeros((n, num_heads, 1, head_dim), v.dtype))], dim=2)
        attn_mask, key_padding_mask = _with_unmasked_key(attn_mask), _with_unmasked_key(key_padding_mask)
    if key_padding_mask is not None:
        if key_padding_mask.shape != (n, k.shape[2]):
            raise AssertionError(f"expecting key_padding_mask shape of {(n, k.shape[2])}, but got "
                                 f"{tuple(key_padding_mask.shape)}")
        key_padding_mask = key_padding_mask.reshape(n, 1, 1, k.shape[2])
    mask = _merged_mask(attn_mask, key_padding_mask, q.dtype)
    result = attention(q, k, v, mask, dropout_p if training else 0.0, is_causal, need_weights=need_weights)
    out, attn_weights = result if need_weights else (result, None)
    out = ops.linear(out.transpose(1, 2).reshape(n, length, embed_dim), weights.out_proj_weight,
                     weights.out_proj_bias)
    if attn_weights is not None and average_attn_weights:
        attn_weights = attn_weights.mean(dim=1)
    return out, attn_weights


def _check_shapes(query: Tensor, key: Tensor, value: Tensor, key_padding_mask, attn_mask) -> bool:
    """Whether the inputs are batched (3-D) rather than one sequence (2-D); PyTorch's checks."""
    if query.ndim not in (2, 3):
        raise AssertionError(f"query should be unbatched 2D or batched 3D tensor but received {query.ndim}-D query "
                             f"tensor")
    batched = query.ndim == 3
    kind = "batched (3-D)" if batched else "unbatched (2-D)"
    if key.ndim != query.ndim or value.ndim != query.ndim:
        raise AssertionError(f"For {kind} `query`, expected `key` and `value` to be {query.ndim}-D but found "
                             f"{key.ndim}-D and {value.ndim}-D tensors respectively")
    if key_padding_mask is not None and key_padding_mask.ndim != query.ndim - 1:
        raise AssertionError(f"For {kind} `query`, expected `key_padding_mask` to be `None` or {query.ndim - 1}-D "
                             f"but found {key_padding_mask.ndim}-D tensor instead")
    if attn_mask is not None and attn_mask.ndim not in (2, 3):
        raise AssertionError(f"For {kind} `query`, expected `attn_mask` to be `None`, 2-D or 3-D but found "
                             f"{attn_mask.ndim}-D tensor instead")
    return batched


def batch_first_inputs(query: Tensor, key: Tensor, value: Tensor, batch_first: bool, key_padding_mask, attn_mask):
    """(query, key, value, key_padding_mask, batched) as batched batch-first tensors; ``key is value`` and
    ``query is key`` survive, since they choose the packed projections."""
    batched = _check_shapes(query, key, value, key_padding_mask, attn_mask)
    if batched and batch_first:
        return query, key, value, key_padding_mask, True
    move = (lambda t: t.unsqueeze(0)) if not batched else (lambda t: t.transpose(0, 1))
    if not batched and key_padding_mask is not None:
        key_padding_mask = key_padding_mask.unsqueeze(0)
    new_key = move(key)
    new_value = new_key if value is key else move(value)
    return (new_key if query is key else move(query)), new_key, new_value, key_padding_mask, batched


def restore_layout(out: Tensor, attn_weights, batched: bool, batch_first: bool):
    """The inverse of ``batch_first_inputs`` for the output; unbatched weights lose their batch dim."""
    if not batched:
        return out.squeeze(0), None if attn_weights is None else attn_weights.squeeze(0)
    return (out if batch_first else out.transpose(0, 1)), attn_weights


def multi_head_attention_forward(query, key, value, embed_dim_to_check, num_heads, in_proj_weight, in_proj_bias,
                                 bias_k, bias_v, add_zero_attn, dropout_p, out_proj_weight, out_proj_bias,
                                 training=True, key_padding_mask=None, need_weights=True, attn_mask=None,
                                 use_separate_proj_weight=False, q_proj_weight=None, k_proj_weight=None,
                                 v_proj_weight=None, static_k=None, static_v=None, average_attn_weights=True,
                                 is_causal=False):
    """PyTorch's functional multi-head attention on sequence-first (L, N, E) or unbatched (L, E) inputs."""
    query, key, value, key_padding_mask, batched = batch_first_inputs(query, key, value, False, key_padding_mask,
                                                                      attn_mask)
    embed_dim = query.shape[-1]
    if embed_dim != embed_dim_to_check:
        raise AssertionError(f"was expecting embedding dimension of {embed_dim_to_check}, but got {embed_dim}")
    if embed_dim % num_heads:
        raise AssertionError(f"embed_dim {embed_dim} not divisible by num_heads {num_heads}")
    if use_separate_proj_weight:
        if key.shape[:2] != value.shape[:2]:
            raise AssertionError(f"key's sequence and batch dims {tuple(key.shape[:2])} do not match value's "
                                 f"{tuple(value.shape[:2])}")
        weights = AttentionWeights(None, in_proj_bias, out_proj_weight, out_proj_bias, q_proj_weight,
                                   k_proj_weight, v_proj_weight, bias_k, bias_v)
    else:
        if key.shape != value.shape:
            raise AssertionError(f"key shape {tuple(key.shape)} does not match value shape {tuple(value.shape)}")
        if in_proj_weight is None:
            raise AssertionError("use_separate_proj_weight is False but in_proj_weight is None")
        weights = AttentionWeights(in_proj_weight, in_proj_bias, out_proj_weight, out_proj_bias,
                                   bias_k=bias_k, bias_v=bias_v)
    out, attn_weights = multi_head_attention(query, key, value, num_heads, weights, dropout_p, training,
                                             key_padding_mask, need_weights, attn_mask, average_attn_weights,
                                             is_causal, add_zero_attn, static_k, static_v)
    return restore_layout(out, attn_weights, batched, False)
