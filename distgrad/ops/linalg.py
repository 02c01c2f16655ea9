"""Matrix products: ``matmul`` (and ``@``), ``mm``, ``bmm``, ``dot``, ``outer`` and ``linear``.

Backward passes are written with these same products and the shape family's ``reshape`` and
``.mT`` views, so they can be differentiated again. ``matmul`` follows torch: 1-D operands are
promoted to matrices and the added dimension removed again, and batch dimensions broadcast.
"""
from __future__ import annotations

import math

from distgrad import backend
from distgrad.autograd.function import Function
from distgrad.ops.autocasting import autocast_op
from distgrad.ops.broadcast import sum_to
from distgrad.ops.elementwise import require_tensor
from distgrad.tensor import Tensor, bind_methods

__all__ = ["matmul", "mm", "bmm", "dot", "outer", "linear"]


def _rows(t: Tensor) -> Tensor:
    """``t`` as a matrix of rows: (..., n) -> (prod(...), n)."""
    return t if t.ndim == 2 else t.reshape(math.prod(t.shape[:-1]), t.shape[-1])


# --- checks with torch's messages -----------------------------------------------------------------
def _require_same_dtype(a: Tensor, b: Tensor) -> None:
    if a.dtype != b.dtype:
        raise RuntimeError(f"expected m1 and m2 to have the same dtype, but got: {a.dtype.name} != {b.dtype.name}")


def _matrix_mismatch(rows: int, a_cols: int, b_rows: int, b_cols: int) -> RuntimeError:
    return RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({rows}x{a_cols} and {b_rows}x{b_cols})")


def _batch_mismatch(batch: int, expected: int, got_batch: int, got: int) -> RuntimeError:
    return RuntimeError(f"Expected size for first two dimensions of batch2 tensor to be: [{batch}, {expected}] "
                        f"but got: [{got_batch}, {got}].")


def _broadcast_batch(sa: tuple, sb: tuple) -> tuple:
    n = max(len(sa), len(sb))
    sa, sb = (1,) * (n - len(sa)) + sa, (1,) * (n - len(sb)) + sb
    for i, (x, y) in enumerate(zip(sa, sb)):
        if x != y and x != 1 and y != 1:
            raise RuntimeError(f"The size of tensor a ({x}) must match the size of tensor b ({y}) "
                               f"at non-singleton dimension {i}")
    return tuple(y if x == 1 else x for x, y in zip(sa, sb))


def _check_matmul(a: Tensor, b: Tensor) -> None:
    """Raises the error torch.matmul raises for these shapes, named after the kernel torch would use."""
    if a.ndim == 0 or b.ndim == 0:
        raise RuntimeError(f"both arguments to matmul need to be at least 1D, but they are {a.ndim}D and {b.ndim}D")
    k, k_other = a.shape[-1], b.shape[0] if b.ndim == 1 else b.shape[-2]
    if a.ndim == 1 and b.ndim == 1:
        _check_dot(a, b)
    elif b.ndim == 1 and k != k_other:  # matrix-vector, batch dimensions folded into rows
        rows = math.prod(a.shape[:-1])
        raise RuntimeError(f"size mismatch, got input ({rows}), mat ({rows}x{k}), vec ({k_other})")
    elif b.ndim == 2 and k != k_other:  # matrix-matrix, batch dimensions folded into rows
        raise _matrix_mismatch(math.prod(a.shape[:-1]), k, k_other, b.shape[-1])
    elif b.ndim > 2:
        batch = math.prod(_broadcast_batch(a.shape[:-2], b.shape[:-2]))
        if k != k_other:
            raise _batch_mismatch(batch, k, batch, k_other)
    _require_same_dtype(a, b)


def _check_dot(a: Tensor, b: Tensor) -> None:
    if a.ndim != 1 or b.ndim != 1:
        raise RuntimeError(f"1D tensors expected, but got {a.ndim}D and {b.ndim}D tensors")
    if a.shape != b.shape:
        raise RuntimeError(f"inconsistent tensor size, expected tensor [{a.shape[0]}] and src [{b.shape[0]}] to have "
                           f"the same number of elements, but got {a.shape[0]} and {b.shape[0]} elements respectively")
    if a.dtype != b.dtype:
        raise RuntimeError(f"dot : expected both vectors to have same dtype, but found {a.dtype.name} and {b.dtype.name}")


# --- the products ---------------------------------------------------------------------------------
class MatMul(Function):
    """Matrix products of operands with at least 2 dimensions; batch dimensions broadcast."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return backend.matmul(a.array, b.array)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        ga = gb = None
        if ctx.needs_input_grad[0]:
            ga = sum_to(grad @ b.mT, a.shape)
        if ctx.needs_input_grad[1]:
            if b.ndim == 2 and a.ndim > 2:  # one product over all rows, not one per batch then a sum
                gb = _rows(a).mT @ _rows(grad)
            else:
                gb = sum_to(a.mT @ grad, b.shape)
        return ga, gb


class Dot(MatMul):
    """Two vectors' inner product: ``MatMul``'s forward (the matmul of 1-D operands), a scalar's backward."""

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        ga = grad * b if ctx.needs_input_grad[0] else None
        gb = grad * a if ctx.needs_input_grad[1] else None
        return ga, gb


@autocast_op()
def matmul(input: Tensor, other: Tensor) -> Tensor:
    """The matrix product with torch.matmul's rules.

    1-D @ 1-D is a dot product; a 1-D first (second) operand is a row (column) vector whose
    dimension is removed from the result; dimensions before the last two broadcast.
    """
    require_tensor("matmul", input, "input", 1)
    require_tensor("matmul", other, "other", 2)
    _check_matmul(input, other)
    if input.ndim == 1 and other.ndim == 1:
        return Dot.apply(input, other)
    a = input.reshape((1,) + input.shape) if input.ndim == 1 else input
    b = other.reshape(other.shape + (1,)) if other.ndim == 1 else other
    out = MatMul.apply(a, b)
    if input.ndim == 1:
        return out.reshape(out.shape[:-2] + out.shape[-1:])
    if other.ndim == 1:
        return out.reshape(out.shape[:-1])
    return out


@autocast_op()
def mm(input: Tensor, mat2: Tensor) -> Tensor:
    """The product of two matrices (no broadcasting)."""
    require_tensor("mm", input, "input", 1)
    require_tensor("mm", mat2, "mat2", 2)
    if input.ndim != 2:
        raise RuntimeError("self must be a matrix")
    if mat2.ndim != 2:
        raise RuntimeError("mat2 must be a matrix")
    if input.shape[1] != mat2.shape[0]:
        raise _matrix_mismatch(*input.shape, *mat2.shape)
    _require_same_dtype(input, mat2)
    return MatMul.apply(input, mat2)


@autocast_op()
def bmm(input: Tensor, mat2: Tensor) -> Tensor:
    """Batched products of (b, n, m) and (b, m, p) tensors (no broadcasting)."""
    require_tensor("bmm", input, "input", 1)
    require_tensor("bmm", mat2, "mat2", 2)
    if input.ndim != 3:
        raise RuntimeError("batch1 must be a 3D tensor")
    if mat2.ndim != 3:
        raise RuntimeError("batch2 must be a 3D tensor")
    if input.shape[0] != mat2.shape[0] or input.shape[2] != mat2.shape[1]:
        raise _batch_mismatch(input.shape[0], input.shape[2], mat2.shape[0], mat2.shape[1])
    _require_same_dtype(input, mat2)
    return MatMul.apply(input, mat2)


@autocast_op()
def dot(input: Tensor, tensor: Tensor) -> Tensor:
    """The inner product of two 1-D tensors of the same size and dtype (a 0-d tensor)."""
    require_tensor("dot", input, "input", 1)
    require_tensor("dot", tensor, "tensor", 2)
    _check_dot(input, tensor)
    return Dot.apply(input, tensor)


def outer(input: Tensor, vec2: Tensor) -> Tensor:
    """``input[i] * vec2[j]`` for 1-D tensors; written, like torch's, as a broadcast product."""
    for name, t in (("self", input), ("vec2", vec2)):
        if t.ndim != 1:
            raise RuntimeError(f"outer: Expected 1-D argument {name}, but got {t.ndim}-D")
    return input.reshape(input.shape[0], 1) * vec2


class Linear(Function):
    """``input @ weight.T + bias`` as one node: the forward and backward of a fully connected layer."""

    @staticmethod
    def forward(ctx, input, weight, bias):
        ctx.save_for_backward(input, weight)
        ctx.bias_shape = None if bias is None else bias.shape
        out = backend.matmul(input.array, weight.array.T)
        if bias is not None:
            out += bias.array
        return out

    @staticmethod
    def backward(ctx, grad):
        input, weight = ctx.saved_tensors
        needs = ctx.needs_input_grad
        g_input = grad @ weight if needs[0] else None
        g_weight = _rows(grad).mT @ _rows(input) if needs[1] else None
        g_bias = sum_to(grad, ctx.bias_shape) if needs[2] else None
        return g_input, g_weight, g_bias


@autocast_op()
def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``input @ weight.T + bias`` for ``input`` (..., in_features) and ``weight`` (out_features, in_features).

    Unlike torch, ``weight`` must be 2-D. ``bias`` broadcasts to the output (usually (out_features,)).
    """
    if input.ndim == 0:
        raise RuntimeError(f"both arguments to linear need to be at least 1D, but they are 0D and {weight.ndim}D")
    if weight.ndim != 2:
        raise RuntimeError(f"linear: weight must be 2-D (out_features, in_features), got shape {list(weight.shape)}")
    if input.shape[-1] != weight.shape[1]:
        raise _matrix_mismatch(math.prod(input.shape[:-1]), input.shape[-1], weight.shape[1], weight.shape[0])
    _require_same_dtype(input, weight)
    if bias is not None:
        out_shape = input.shape[:-1] + weight.shape[:1]
        if bias.ndim > len(out_shape) or any(n not in (1, m) for n, m in zip(bias.shape[::-1], out_shape[::-1])):
            raise RuntimeError(f"linear: bias of shape {list(bias.shape)} does not broadcast to the output "
                               f"shape {list(out_shape)}")
        if bias.dtype != input.dtype:
            raise RuntimeError(f"linear: bias is {bias.dtype.name} but input and weight are {input.dtype.name}")
    return Linear.apply(input, weight, bias)


def _rmatmul(self: Tensor, other) -> Tensor:
    """``array @ tensor``: a NumPy (or, for GPU tensors, CuPy) array on the left becomes a Tensor."""
    return matmul(Tensor(self._xp.asarray(other)), self)


bind_methods(
    matmul=matmul, mm=mm, bmm=bmm, dot=dot, outer=outer,
    __matmul__=lambda self, other: matmul(self, other) if isinstance(other, Tensor) else NotImplemented,
    __rmatmul__=_rmatmul,
)
