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

On the GPU, with no mask but ``is_causal``, no dropout and no weights returned, the op runs
``distgrad.kernels.flash_attention`` instead: P is never stored, only each query's log-sum-exp, and the
first-order backward recomputes P tile by tile. Otherwise the array code below runs on CuPy, its scale,
causal mask and softmax fused into one kernel per block (``kernels.rows.softmax``) where there is no other mask.
"""
from __future__ import annotations

import math

import numpy as np

from distgrad import parallel
from distgrad.autograd.function import Function
from distgrad.autograd.grad_mode import is_grad_enabled
from distgrad.dtypes import FLOATING
from distgrad.ops.autocasting import autocast_op
from distgrad.kernels import flash_attention
from distgrad.kernels import rows as row_kernels
from distgrad.ops.activation import softmax
from distgrad.ops.broadcast import sum_to
from distgrad.ops.dropout import draw_keep
from distgrad.tensor import Tensor

__all__ = ["scaled_dot_product_attention"]


# --- forward and first-order backward on arrays, in cache-sized blocks of heads ----------------------
def _causal_allowed(xp, length: int, source_length: int):
    """True where query i may attend key j: j <= i (the top-left aligned lower triangle, as PyTorch)."""
    return xp.tri(length, source_length, dtype=bool)


def _flat(xp, a, batch: tuple):
    """``a`` (*, X, Y) broadcast to ``batch`` + (X, Y), as (prod(batch), X, Y); a view when it can be."""
    return xp.broadcast_to(a, batch + a.shape[-2:]).reshape((-1,) + a.shape[-2:])


def _blocks(xp, n: int, length: int, source: int):
    """Slices of the n (batch x head) rows: on the CPU, blocks whose scores, softmax and products stay in
    the L2 cache (``parallel.row_blocks``), shared among threads; on a GPU, all at once."""
    return parallel.row_blocks(n, length * source) if xp is np else [slice(0, n)]


class _Stack:
    """An array of shape batch + (X, Y) (after broadcasting), read a block at a time as rows of the stack
    (prod(batch), X, Y) it reshapes to. q, k and v are usually strided views of one projection (split,
    then heads transposed): reshaping the whole to a stack would copy it in one more pass before the
    products; a block read copies only its own rows, where its products read them, on its own thread."""

    def __init__(self, xp, a, batch: tuple):
        self.array = xp.broadcast_to(a, batch + a.shape[-2:]) if batch else a[None]
        self.shape = (math.prod(batch),) + a.shape[-2:]
        self.dtype = a.dtype

    def __getitem__(self, block: slice):
        return _stack_rows(self.array, block.start, min(block.stop, self.shape[0]))


def _stack_rows(a, start: int, stop: int):
    """Rows start:stop of ``a.reshape((-1,) + a.shape[-2:])``, copying no more than the leading entries they lie in."""
    if a.ndim == 3:
        return a[start:stop]
    inner = math.prod(a.shape[1:-2])
    first, last = start // inner, -(-stop // inner)
    if last - first == 1 and (start - first * inner or stop - first * inner < inner):  # inside one entry
        return _stack_rows(a[first], start - first * inner, stop - first * inner)
    return a[first:last].reshape((-1,) + a.shape[-2:])[start - first * inner:stop - first * inner]


def _rows_of(a, block: slice):
    """Rows ``block`` of a (1 | n, L, S) array: the one row broadcasts to every block."""
    return a if a.shape[0] == 1 else a[block]


def _row_sums(xp, a):
    """``a.sum(-1, keepdims=True)`` for a contiguous ``a``, as one matrix-vector product: NumPy's reduction
    along a short last axis is ten times slower than BLAS on W7's (n, 64, 64) blocks."""
    ones = xp.ones((a.shape[-1], 1), a.dtype)
    return xp.matmul(a.reshape(-1, a.shape[-1]), ones).reshape(a.shape[:-1] + (1,))


def _softmax_rows_in_place(xp, scores):
    """Softmax along the last axis, written over ``scores``; rows of -inf only become zeros."""
    if scores.shape[-1] == 0:
        return scores
    top = scores.max(axis=-1, keepdims=True)
    top[top == -np.inf] = 0  # a fully masked row: exp(-inf - 0) = 0 everywhere rather than NaN
    scores -= top
    xp.exp(scores, out=scores)
    total = _row_sums(xp, scores)
    total[total == 0] = 1
    scores /= total
    return scores


class _Operands:
    """q, k, v (and the mask) of one call as flat (n, ., .) arrays over the broadcast batch dims."""

    def __init__(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, causal: bool):
        xp = self.xp = q._xp
        self.batch = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
        self.q, self.k, self.v = (_Stack(xp, t.array, self.batch) for t in (q, k, v))
        self.length, self.source = q.shape[-2], k.shape[-2]
        self.causal = causal
        self.disallowed = self.additive = None  # (1 | n, L, S)
        if causal:
            self.disallowed = ~_causal_allowed(xp, self.length, self.source)[None]
        elif mask is not None:
            if all(d == 1 for d in mask.shape[:-2]):  # one mask for every head: kept (1, L, S)
                rows = mask.array.reshape((1,) + mask.shape[-2:])
            else:
                rows = _flat(xp, mask.array, self.batch)
            rows = xp.broadcast_to(rows, (rows.shape[0], self.length, self.source))  # a (1, S) mask, say
            if mask.dtype == np.bool_:
                self.disallowed = ~rows
            else:
                self.additive = rows

    def blocks(self):
        return _blocks(self.xp, self.q.shape[0], self.length, self.source)

    def unflat(self, a):
        return a.reshape(self.batch + a.shape[1:])


def _forward_arrays(ops: _Operands, scale: float, keep, factor: float):
    """(out, P, Pd): the attention of ``ops`` block by block; Pd (after dropout) is None without ``keep``."""
    xp, q, k, v = ops.xp, ops.q, ops.k, ops.v
    n = q.shape[0]
    probs = xp.empty((n, ops.length, ops.source), q.dtype)
    out = xp.empty((n, ops.length, v.shape[-1]), q.dtype)
    dropped = None if keep is None else xp.empty_like(probs)
    fused = ops.additive is None and (ops.disallowed is None or ops.causal) and row_kernels.softmax_applies(probs, -1)
    blocks = ops.blocks()

    def block_forward(i):  # writes rows b of probs, dropped and out only: blocks run concurrently
        b = blocks[i]
        scores = probs[b]
        xp.matmul(q[b], xp.swapaxes(k[b], -1, -2), out=scores)
        if fused:  # scale, causal mask and softmax in one kernel
            row_kernels.softmax(scores, scale=scale, causal_length=ops.length if ops.causal else 0, out=scores)
        else:
            scores *= scores.dtype.type(scale)
            if ops.disallowed is not None:
                xp.copyto(scores, -np.inf, where=_rows_of(ops.disallowed, b))
            elif ops.additive is not None:
                scores += _rows_of(ops.additive, b)
            _softmax_rows_in_place(xp, scores)
        if keep is not None:
            xp.multiply(scores, keep[b], out=dropped[b])
            dropped[b] *= dropped.dtype.type(factor)
            scores = dropped[b]
        xp.matmul(scores, v[b], out=out[b])

    parallel.run(block_forward, len(blocks), probs)  # on the CPU, blocks of heads on every thread
    return out, probs, dropped


def _backward_arrays(ops: _Operands, grad_out, grad_weights, probs, keep, factor: float, scale: float, needs):
    """Gradients of q, k, v and the scores (each flat, or None where ``needs`` says so), block by block."""
    xp, q, k, v = ops.xp, ops.q, ops.k, ops.v
    grads = [xp.empty(a.shape, a.dtype) if need else None for a, need in zip((q, k, v, probs), needs)]
    grad_q, grad_k, grad_v, grad_scores = grads
    blocks = ops.blocks()

    def block_backward(i):  # writes rows b of the gradients only: blocks run concurrently
        b = blocks[i]
        p = probs[b]
        dropped = p if keep is None else p * keep[b] * p.dtype.type(factor)
        if grad_v is not None:
            xp.matmul(xp.swapaxes(dropped, -1, -2), grad_out[b], out=grad_v[b])
        if grad_q is None and grad_k is None and grad_scores is None:
            return
        d = xp.matmul(grad_out[b], xp.swapaxes(v[b], -1, -2))  # d loss / d Pd, then / d P, then / d scores
        if grad_weights is not None:
            d += grad_weights[b]
        if keep is not None:
            d *= keep[b]
            d *= d.dtype.type(factor)
        d *= p
        d -= p * _row_sums(xp, d)  # P * (dP - rowsum(dP * P))
        if grad_scores is not None:
            grad_scores[b] = d
        if grad_q is not None:
            xp.matmul(d, k[b], out=grad_q[b])
            grad_q[b] *= grad_q.dtype.type(scale)
        if grad_k is not None:
            xp.matmul(xp.swapaxes(d, -1, -2), q[b], out=grad_k[b])
            grad_k[b] *= grad_k.dtype.type(scale)

    parallel.run(block_backward, len(blocks), probs)
    return grads


class ScaledDotProductAttention(Function):
    """``softmax(q k^T * scale + mask) @ v`` with dropout on the probabilities (see the module docstring).

    Inputs: q, k, v Tensors whose batch dims broadcast; ``mask`` None, a bool Tensor (True = attend) or a
    float Tensor (added); ``causal``; ``scale``; ``dropout_p``; ``need_weights``: also return ``Pd``.
    """

    @staticmethod
    def forward(ctx, q, k, v, mask, causal, scale, dropout_p, need_weights):
        ctx.flash = None
        ctx.keep, ctx.causal, ctx.scale, ctx.factor = None, causal, scale, 1.0
        if flash_attention.applies(q.array, k.array, v.array, mask, dropout_p, need_weights):
            out, lse = flash_attention.forward(q.array, k.array, v.array, scale, causal)
            ctx.flash = (out, lse)  # arrays: the output for backward's row sums, and each query's log-sum-exp
            ctx.save_for_backward(q, k, v, mask, None)
            return out
        ops = _Operands(q, k, v, mask, causal)
        keep = None
        if dropout_p > 0:
            keep = draw_keep((ops.q.shape[0], ops.length, ops.source), q.dtype, q.device, dropout_p)
        factor = 1 / (1 - dropout_p) if dropout_p < 1 else 0.0
        out, probs, dropped = _forward_arrays(ops, scale, keep, factor)
        probs = Tensor(ops.unflat(probs))
        ctx.keep, ctx.causal, ctx.scale, ctx.factor = keep, causal, scale, factor
        ctx.save_for_backward(q, k, v, mask, probs)
        out = ops.unflat(out)
        if not need_weights:
            return out
        return out, probs if keep is None else Tensor(ops.unflat(dropped))

    @staticmethod
    def backward(ctx, grad_out, grad_weights=None):
        q, k, v, mask, probs = ctx.saved_tensors
        needs = ctx.needs_input_grad
        if ctx.flash is not None and not is_grad_enabled() and grad_out.dtype == q.dtype:
            grads = flash_attention.backward(grad_out.array, q.array, k.array, v.array, *ctx.flash, ctx.scale,
                                             ctx.causal)
            return tuple(Tensor(g) if need else None for g, need in zip(grads, needs)) + (None,) * 5
        if is_grad_enabled() or probs is None:  # create_graph: P as a function of q, k and the mask, to differentiate again
            return _backward_tensors(ctx, grad_out, grad_weights, q, k, v, mask,
                                     _probabilities(q, k, mask, ctx.causal, ctx.scale))
        ops = _Operands(q, k, v, None, False)
        flat_grads = [None if g is None else _Stack(ops.xp, g.array, ops.batch) for g in (grad_out, grad_weights)]
        grads = _backward_arrays(ops, *flat_grads, probs.array.reshape((-1,) + probs.shape[-2:]), ctx.keep,
                                 ctx.factor, ctx.scale, needs[:4])
        return tuple(None if g is None else sum_to(Tensor(ops.unflat(g)), t.shape)
                     for g, t in zip(grads, (q, k, v, mask))) + (None,) * 4


def _backward_tensors(ctx, grad_out, grad_weights, q, k, v, mask, probs):
    """The backward in differentiable Tensor ops (for ``create_graph``), the formulas of the module docstring."""
    keep = None
    if ctx.keep is not None:
        keep = Tensor(ctx.keep.reshape(probs.shape).astype(probs.dtype) * probs.dtype.type(ctx.factor))
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
    if query.dtype not in FLOATING:
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
        if attn_mask.ndim < 2:
            raise RuntimeError(f"scaled_dot_product_attention: attn_mask must have at least 2 dimensions (L, S), "
                               f"got shape {list(attn_mask.shape)}")
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


@autocast_op()
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
