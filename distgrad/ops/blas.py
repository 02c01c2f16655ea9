"""BLAS-style products with an added term: ``addmm addmv baddbmm addbmm`` (``beta * input + alpha *
product``, with their in-place forms) and ``mv``.

The product is taken with the differentiable ``mm``/``matmul``/``bmm`` of ``linalg.py``; ``AddScaled``
then forms ``beta * input + alpha * product`` in one node. As in PyTorch, ``beta=0`` ignores
``input`` (NaN or inf in it do not reach the result) while its gradient is still ``beta * grad``,
zeros. ``addbmm`` sums the batch of products as one matrix product, ``(n, b*m) @ (b*m, p)``.
"""
from __future__ import annotations

from distgrad.autograd.function import Function
from distgrad.ops.autocasting import autocast_op
from distgrad.ops.broadcast import sum_to
from distgrad.ops.inplace import needs_recording, record_inplace, update_in_place
from distgrad.ops.linalg import bmm, matmul, mm
from distgrad.ops.shape import permute, reshape
from distgrad.tensor import Tensor, bind_methods

__all__ = ["addmm", "addmv", "baddbmm", "addbmm", "mv"]


class AddScaled(Function):
    """``beta * input + alpha * product``; ``input`` broadcasts to ``product``'s shape."""

    @staticmethod
    def forward(ctx, input, product, beta, alpha):
        ctx.beta, ctx.alpha, ctx.in_shape = beta, alpha, input.shape
        out = product.array * alpha if alpha != 1 else product.array.copy()
        if beta != 0:
            out = out + (input.array * beta if beta != 1 else input.array)
        return out.astype(product.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        needs = ctx.needs_input_grad
        g_input = sum_to(grad * ctx.beta if ctx.beta != 1 else grad, ctx.in_shape) if needs[0] else None
        g_product = (grad * ctx.alpha if ctx.alpha != 1 else grad) if needs[1] else None
        return g_input, g_product, None, None


def _add_scaled(op: str, input: Tensor, product: Tensor, beta, alpha) -> Tensor:
    if input.dtype != product.dtype:
        raise RuntimeError(f"{op}: expected input ({input.dtype.name}) to have the dtype of the product "
                           f"({product.dtype.name})")
    shape = product.shape
    if input.ndim > len(shape) or any(n not in (1, m) for n, m in zip(input.shape[::-1], shape[::-1])):
        raise RuntimeError(f"{op}: The expanded size of the tensor must match the existing size: input of shape "
                           f"{list(input.shape)} does not broadcast to the product's shape {list(shape)}")
    return AddScaled.apply(input, product, beta, alpha)


@autocast_op()
def addmm(input: Tensor, mat1: Tensor, mat2: Tensor, *, beta=1, alpha=1) -> Tensor:
    """``beta * input + alpha * (mat1 @ mat2)`` for matrices; ``input`` broadcasts to (n, p)."""
    for name, m in (("mat1", mat1), ("mat2", mat2)):
        if m.ndim != 2:
            raise RuntimeError(f"addmm: {name} must be a matrix, got {m.ndim}-D tensor")
    return _add_scaled("addmm", input, mm(mat1, mat2), beta, alpha)


@autocast_op()
def mv(input: Tensor, vec: Tensor) -> Tensor:
    """The product of a matrix (n, m) and a vector (m,): a vector (n,)."""
    if input.ndim != 2 or vec.ndim != 1:
        raise RuntimeError(f"vector + matrix @ vector expected, got {input.ndim}, {vec.ndim} (mv of shapes "
                           f"{list(input.shape)} and {list(vec.shape)})")
    if input.shape[1] != vec.shape[0]:
        raise RuntimeError(f"size mismatch, got mat ({input.shape[0]}x{input.shape[1]}), vec ({vec.shape[0]})")
    return matmul(input, vec)


@autocast_op()
def addmv(input: Tensor, mat: Tensor, vec: Tensor, *, beta=1, alpha=1) -> Tensor:
    """``beta * input + alpha * (mat @ vec)``; ``input`` broadcasts to (n,)."""
    if mat.ndim != 2 or vec.ndim != 1 or input.ndim > 1:
        raise RuntimeError(f"vector + matrix @ vector expected, got {input.ndim}, {mat.ndim}, {vec.ndim}")
    if mat.shape[1] != vec.shape[0] or input.ndim == 1 and input.shape[0] not in (1, mat.shape[0]):
        raise RuntimeError(f"size mismatch, got input ({input.shape[0] if input.ndim else 1}), mat "
                           f"({mat.shape[0]}x{mat.shape[1]}), vec ({vec.shape[0]})")
    return _add_scaled("addmv", input, matmul(mat, vec), beta, alpha)


def _check_batches(op: str, batch1: Tensor, batch2: Tensor) -> None:
    for name, b in (("batch1", batch1), ("batch2", batch2)):
        if b.ndim != 3:
            raise RuntimeError(f"{op}: {name} must be a 3D tensor, got {b.ndim}-D")
    if op == "addbmm" and batch1.shape[0] != batch2.shape[0]:  # baddbmm leaves the sizes to bmm's check
        raise RuntimeError(f"{op}: batch1 and batch2 must have same number of batches, got {batch1.shape[0]} and "
                           f"{batch2.shape[0]}")


@autocast_op()
def baddbmm(input: Tensor, batch1: Tensor, batch2: Tensor, *, beta=1, alpha=1) -> Tensor:
    """``beta * input + alpha * (batch1 @ batch2)`` for (b, n, m) and (b, m, p); ``input`` broadcasts to (b, n, p)."""
    _check_batches("baddbmm", batch1, batch2)
    return _add_scaled("baddbmm", input, bmm(batch1, batch2), beta, alpha)


@autocast_op()
def addbmm(input: Tensor, batch1: Tensor, batch2: Tensor, *, beta=1, alpha=1) -> Tensor:
    """``beta * input + alpha * sum_b batch1[b] @ batch2[b]``; ``input`` broadcasts to (n, p)."""
    _check_batches("addbmm", batch1, batch2)
    b, n, m = batch1.shape
    if batch2.shape[1] != m:
        raise RuntimeError(f"addbmm: Incompatible matrix sizes for bmm ({n}x{m} and {batch2.shape[1]}x"
                           f"{batch2.shape[2]})")
    rows = reshape(permute(batch1, (1, 0, 2)), (n, b * m))  # row i: batch1[0, i], batch1[1, i], ...
    return _add_scaled("addbmm", input, mm(rows, reshape(batch2, (b * m, batch2.shape[2]))), beta, alpha)


def _in_place(op: str, fn):
    def method(self: Tensor, a: Tensor, b: Tensor, *, beta=1, alpha=1) -> Tensor:
        if needs_recording(self, a, b):
            return record_inplace(self, op, lambda alias: fn(alias, a, b, beta=beta, alpha=alpha))
        out = fn(self, a, b, beta=beta, alpha=alpha)
        if out.shape != self.shape:
            raise RuntimeError(f"{op}: output with shape {list(self.shape)} doesn't match the broadcast shape "
                               f"{list(out.shape)}")
        return update_in_place(self, op, lambda xp, arr: xp.copyto(arr, out.array), a, b)
    method.__name__ = op
    method.__doc__ = f"In-place ``{op[:-1]}``."
    return method


bind_methods(
    addmm=addmm, addmv=addmv, baddbmm=baddbmm, addbmm=addbmm, mv=mv,
    addmm_=_in_place("addmm_", addmm), addmv_=_in_place("addmv_", addmv), baddbmm_=_in_place("baddbmm_", baddbmm),
    addbmm_=_in_place("addbmm_", addbmm),
)
