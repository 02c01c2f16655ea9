"""``dropout``: zero each element with probability ``p`` and scale the rest by ``1 / (1 - p)``; ``dropout1d``,
``dropout2d``, ``dropout3d`` zero whole channels (every element of a channel of a sample together).

Masks come from ``distgrad.random.default_generator`` on the input's device, so ``dg.manual_seed``
makes them repeatable.
"""
from __future__ import annotations

from distgrad import backend, random
from distgrad.autograd.function import Function
from distgrad.autograd.grad_mode import is_grad_enabled
from distgrad.autograd.node import increment_version
from distgrad.kernels import pointwise as pointwise_kernels
from distgrad.ops.inplace import check_writable, needs_recording, record_inplace
from distgrad.tensor import Tensor

__all__ = ["dropout", "dropout1d", "dropout2d", "dropout3d"]


class Dropout(Function):
    """``x * mask`` with a constant ``mask`` of zeros and ``1 / (1 - p)``s."""

    @staticmethod
    def forward(ctx, input, mask):
        ctx.save_for_backward(mask)
        return input.array * mask.array

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved_tensors
        return grad * mask, None


def draw_keep(shape: tuple, dtype, device, p: float):
    """A boolean array of ``shape`` on ``device``: each element False with probability ``p``.

    Drawn from ``distgrad.random.default_generator`` in float64 for float64 ``dtype``, else float32.
    """
    generator = random.default_generator.for_device(device)
    return generator.random(shape, dtype=random.draw_dtype(dtype)) >= p


def _scaled_mask(input: Tensor, p: float, shape: tuple | None = None):
    """Zeros with probability ``p``, else ``1 / (1 - p)``, in the input's dtype and on its device; of the
    input's shape, or of ``shape`` (broadcasting against it)."""
    keep = draw_keep(input.shape if shape is None else shape, input.dtype, input.device, p)
    return keep.astype(input.dtype) * (1 / (1 - p)) if p < 1 else keep.astype(input.dtype)


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """During training, a randomly thinned and rescaled ``input``; otherwise ``input`` itself.

    ``inplace=True`` writes the result into ``input`` (a leaf requiring grad cannot be modified in place).
    """
    return _masked(input, p, training, inplace, None)


def _masked(input: Tensor, p: float, training: bool, inplace: bool, mask_shape) -> Tensor:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0 or input.numel() == 0:
        return input
    if mask_shape is None and not inplace and pointwise_kernels.applies(input.array):
        return DropoutAdd.apply(input, None, p)
    mask = Tensor(_scaled_mask(input, p, mask_shape))
    if not inplace:
        return Dropout.apply(input, mask)
    return _dropout_in_place(input, mask)


def _feature_dropout(op: str, spatial_dims: int, input: Tensor, p: float, training: bool, inplace: bool) -> Tensor:
    """Drops whole channels of (N, C, *spatial) or unbatched (C, *spatial) input: one mask entry per (sample, channel)."""
    if input.ndim not in (spatial_dims + 1, spatial_dims + 2):
        raise RuntimeError(f"{op}: Expected {spatial_dims + 1}D or {spatial_dims + 2}D input, but received a "
                           f"{input.ndim}D input. Note that {op} exists to provide channel-wise dropout on inputs "
                           f"with {spatial_dims} spatial dimension(s), a channel dimension, and an optional batch "
                           "dimension.")
    channels = input.ndim - spatial_dims
    return _masked(input, p, training, inplace, input.shape[:channels] + (1,) * spatial_dims)


def dropout1d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zeroes whole channels of (N, C, L) or (C, L) input with probability ``p``, scaling the rest by 1/(1-p)."""
    return _feature_dropout("dropout1d", 1, input, p, training, inplace)


def dropout2d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zeroes whole channels of (N, C, H, W) or (C, H, W) input with probability ``p``."""
    return _feature_dropout("dropout2d", 2, input, p, training, inplace)


def dropout3d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zeroes whole channels of (N, C, D, H, W) or (C, D, H, W) input with probability ``p``."""
    return _feature_dropout("dropout3d", 3, input, p, training, inplace)


def _dropout_in_place(input: Tensor, mask: Tensor) -> Tensor:
    if needs_recording(input):  # input takes over the new node, as PyTorch's in-place ops do
        return record_inplace(input, "dropout_", lambda alias: Dropout.apply(alias, mask))
    check_writable(input, "dropout_")
    input.array *= mask.array
    increment_version(input)
    return input


# --- the GPU kernel path: dropout (+ residual add) with a mask recomputed from a counter ------------------
class DropoutAdd(Function):
    """``dropout(input, p) + residual`` (``residual`` may be None) in one GPU kernel. The mask is a hash of
    (seed, offset + i) (``kernels.pointwise``): backward recomputes it instead of keeping it."""

    @staticmethod
    def forward(ctx, input, residual, p):
        ctx.p, ctx.draw = p, _kernel_draw(input.numel())
        return pointwise_kernels.dropout(input.array, None if residual is None else residual.array, p, *ctx.draw)

    @staticmethod
    def backward(ctx, grad):
        if is_grad_enabled():  # create_graph: the mask as a constant tensor, so the product differentiates
            ones = grad._xp.ones(grad.shape, grad.dtype)
            grad_input = grad * Tensor(pointwise_kernels.dropout(ones, None, ctx.p, *ctx.draw))
        else:
            grad_input = Tensor(pointwise_kernels.dropout_backward(grad.array, ctx.p, *ctx.draw))
        return grad_input, grad if ctx.needs_input_grad[1] else None, None


def _kernel_draw(count: int) -> tuple:
    """(seed, offset, offset_base) of a kernel draw of ``count`` values: from the default generator, or,
    while a CUDA graph is captured, from the graph's device counter so that each replay draws anew."""
    rng = backend.capture_rng()
    if rng is not None:
        return rng.seed, rng.take(count), rng.counter
    generator = random.default_generator
    return generator.cuda_seed, generator.take_kernel_offset(count), None


def dropout_add(input: Tensor, residual: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """``dropout(input, p, training) + residual``: one kernel forward and one backward on the GPU."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if training and p > 0 and pointwise_kernels.applies(input.array, residual.array):
        return DropoutAdd.apply(input, residual, p)
    return dropout(input, p, training) + residual
