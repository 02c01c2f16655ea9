"""``adaptive_max_pool2d`` / ``adaptive_max_pool1d``: the maximum of each of a fixed number of windows.

Window i along a dim of size n spans [floor(i * n / out), ceil((i + 1) * n / out)), as in PyTorch
(``adaptive_avg_pool2d`` in ``pooling.py`` uses the same windows). When the windows tile the input evenly
this is ``max_pool2d``; otherwise each window's argmax is found on the arrays (a loop over the out_h * out_w
windows, never over pixels) and the maxima are one ``gather``, so the gradient goes to each window's
first maximum, as in PyTorch.
"""
from __future__ import annotations

from distgrad.ops.indexing import gather
from distgrad.ops.pooling import max_pool2d
from distgrad.tensor import Tensor

__all__ = ["adaptive_max_pool2d", "adaptive_max_pool1d"]


def _windows(size: int, out: int) -> list:
    return [((i * size) // out, -((-(i + 1) * size) // out)) for i in range(out)]


def adaptive_max_pool2d(input: Tensor, output_size, return_indices: bool = False):
    """The maximum over each adaptive window of (N, C, H, W) or (C, H, W) input, into ``output_size`` (an int,
    or a pair whose None entries keep the input's size); with ``return_indices``, also each maximum's flat
    position ``h * W + w`` in its input plane."""
    if input.ndim not in (3, 4) or 0 in input.shape[-2:]:
        raise RuntimeError(f"adaptive_max_pool2d(): Expected 3D or 4D tensor with non-zero spatial sizes, but got "
                           f"{list(input.shape)}")
    sizes = tuple(output_size) if isinstance(output_size, (tuple, list)) else (output_size, output_size)
    if len(sizes) != 2:
        raise RuntimeError("adaptive_max_pool2d(): internal error: output_size.size() must be 2")
    height, width = input.shape[-2:]
    out_h, out_w = (n if o is None else int(o) for n, o in zip((height, width), sizes))
    if height % out_h == 0 and width % out_w == 0:  # equal windows that tile the input: a plain max pooling
        return max_pool2d(input, (height // out_h, width // out_w), return_indices=return_indices)
    xp = input._xp
    data = input.array
    index = xp.empty(input.shape[:-2] + (out_h, out_w), xp.int64)
    for i, (top, bottom) in enumerate(_windows(height, out_h)):
        for j, (left, right) in enumerate(_windows(width, out_w)):
            window = data[..., top:bottom, left:right].reshape(data.shape[:-2] + (-1,))
            local = window.argmax(axis=-1)  # the first maximum, as PyTorch's kernel
            index[..., i, j] = (top + local // (right - left)) * width + left + local % (right - left)
    flat_index = Tensor(index.reshape(index.shape[:-2] + (-1,)))
    values = gather(input.reshape(input.shape[:-2] + (-1,)), -1, flat_index).reshape(index.shape)
    return (values, Tensor(index)) if return_indices else values


def adaptive_max_pool1d(input: Tensor, output_size, return_indices: bool = False):
    """``adaptive_max_pool2d`` over the last dimension of (N, C, L) or (C, L) input."""
    size = output_size[0] if isinstance(output_size, (tuple, list)) else output_size
    out = adaptive_max_pool2d(input.unsqueeze(-2), (1, size), return_indices)
    return tuple(o.squeeze(-2) for o in out) if return_indices else out.squeeze(-2)
