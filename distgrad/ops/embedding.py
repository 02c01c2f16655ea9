"""``embedding``: rows of a weight matrix picked by integer indices.

The gradient of the weight sums the output gradient of every occurrence of an index into that index's
row (``distgrad.backend.scatter_add``); the row ``padding_idx`` receives none.
"""
from __future__ import annotations

from distgrad import backend
from distgrad.autograd.function import Function
from distgrad.tensor import Tensor

__all__ = ["embedding"]


class Embedding(Function):
    """``weight[indices]``: output shape ``indices.shape + (embedding_dim,)``."""

    @staticmethod
    def forward(ctx, weight, indices, padding_idx):
        ctx.num_embeddings, ctx.indices, ctx.padding_idx = weight.shape[0], indices.array, padding_idx
        return weight.array[indices.array]

    @staticmethod
    def backward(ctx, grad):
        return EmbeddingGradient.apply(grad, ctx.indices, ctx.num_embeddings, ctx.padding_idx), None, None


class EmbeddingGradient(Function):
    """The adjoint of ``Embedding``: scatter-adds rows of ``grad`` into a (num_embeddings, dim) matrix."""

    @staticmethod
    def forward(ctx, grad, indices, num_embeddings, padding_idx):
        ctx.indices, ctx.padding_idx = indices, padding_idx
        xp = grad._xp
        out = xp.zeros((num_embeddings,) + grad.shape[indices.ndim:], grad.dtype)
        backend.scatter_add(out, indices, grad.array)
        if padding_idx is not None:
            out[padding_idx] = 0
        return out

    @staticmethod
    def backward(ctx, grad_grad):
        if ctx.padding_idx is not None:  # the padding row of the output does not depend on grad
            keep = grad_grad._xp.ones((grad_grad.shape[0],) + (1,) * (grad_grad.ndim - 1), grad_grad.dtype)
            keep[ctx.padding_idx] = 0
            grad_grad = grad_grad * Tensor(keep)
        return Embedding.apply(grad_grad, Tensor(ctx.indices), ctx.padding_idx), None, None, None


def embedding(input: Tensor, weight: Tensor, padding_idx: int | None = None) -> Tensor:
    """The rows of ``weight`` (num_embeddings, embedding_dim) at the integer indices ``input``.

    ``padding_idx`` (negative counts from the end) names a row that gets no gradient.
    PyTorch's ``max_norm``, ``scale_grad_by_freq`` and ``sparse`` options are not supported.
    """
    if input.dtype.kind not in "iu":
        raise RuntimeError(f"Expected tensor for argument #1 'indices' to have one of the following scalar types: "
                           f"Long, Int; but got {input.dtype.name} instead (while checking arguments for embedding)")
    num_embeddings = weight.shape[0]
    if padding_idx is not None:
        if not -num_embeddings <= padding_idx < num_embeddings:
            raise AssertionError(f"Padding_idx must be within num_embeddings (got {padding_idx} for "
                                 f"{num_embeddings} embeddings)")
        padding_idx %= num_embeddings
    indices = input.array
    if indices.size and not backend.capturing() and bool(((indices < 0) | (indices >= num_embeddings)).any()):
        raise IndexError(f"index out of range in self (indices must be in [0, {num_embeddings}), "
                         f"got values in [{int(indices.min())}, {int(indices.max())}])")
    return Embedding.apply(weight, input, padding_idx)
