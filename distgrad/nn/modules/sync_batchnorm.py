"""``SyncBatchNorm``: batch normalisation with the statistics of the batches of all ranks together.

Under data parallelism each rank holds a slice of the global batch. ``BatchNorm`` normalises each
slice by its own statistics, so N ranks do not compute what one process would on the global batch,
and small per-rank batches give noisy statistics. ``SyncBatchNorm`` takes, per channel, the mean and
variance of the global batch, for an input (N, C, *) on every rank (N may differ between ranks, and
may be 0):

- forward: each rank computes its count n_r, mean mu_r and sum of squared deviations M2_r per
  channel; one all-gather gives every rank all of them; the global mean is sum(n_r mu_r) / n and
  M2 = sum(M2_r + n_r (mu_r - mu)^2) (the parallel variance of Chan et al.: no cancellation, unlike a
  sum of squares). The running statistics take the global mean and the unbiased M2 / (n - 1).
- backward: batch norm's input gradient needs two per-channel sums over the global batch, of dy and
  of dy (x - mu); one all-reduce of both gives them. ``grad_weight`` and ``grad_bias`` stay the sums
  over this rank's slice, as in PyTorch: DDP averages them like any other gradient.

``nn`` sits below ``distgrad.distributed`` and may not import it: the collectives are handed over by
``distgrad.distributed`` when it is imported (``bind_communication``). Before that no process group
can exist; without one, in a world of one, and in eval mode, SyncBatchNorm is BatchNorm.
"""
from __future__ import annotations

import numpy as np

from distgrad.autograd.function import Function
from distgrad.autograd.grad_mode import is_grad_enabled
from distgrad.nn.modules.normalization import _BatchNorm
from distgrad.ops.normalization import _update_running_stats  # the running-statistics rule of batch_norm
from distgrad.tensor import Tensor

__all__ = ["SyncBatchNorm"]

_communication = None  # set by distgrad.distributed: world_size(group), all_gather(array, group), all_reduce_sum


def bind_communication(communication) -> None:
    """Gives SyncBatchNorm its collectives (``distgrad.distributed`` calls this when imported)."""
    global _communication
    _communication = communication


class SyncBatchNormFunction(Function):
    """Batch norm over the union of every rank's batch; see the module docstring. Its backward
    communicates, so it cannot be differentiated again (as in PyTorch)."""

    @staticmethod
    def forward(ctx, input, weight, bias, running_mean, running_var, eps, momentum, process_group):
        xp, x = input._xp, input.array
        channels = x.shape[1]
        axes = (0,) + tuple(range(2, x.ndim))
        shape = (1, channels) + (1,) * (x.ndim - 2)
        stats_dtype = np.promote_types(x.dtype, np.float32)  # counts and sums of float16 inputs need the room
        count = x.size // channels
        local = xp.zeros(2 * channels + 1, dtype=stats_dtype)
        if count > 0:
            local[:channels] = x.mean(axis=axes, dtype=stats_dtype)
            deviations = x - local[:channels].reshape(shape)
            local[channels:2 * channels] = (deviations * deviations).sum(axis=axes, dtype=stats_dtype)
        local[-1] = count
        gathered = _communication.all_gather(local, process_group)  # (ranks, 2C + 1)
        counts, means, m2s = gathered[:, -1:], gathered[:, :channels], gathered[:, channels:2 * channels]
        total = float(counts.sum())
        if total <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got input size "
                             f"{list(input.shape)} on this rank and {int(total)} in all")
        mean = (counts * means).sum(axis=0) / total
        m2 = (m2s + counts * (means - mean) ** 2).sum(axis=0)
        invstd = 1 / xp.sqrt(m2 / total + eps)
        if running_mean is not None or running_var is not None:
            _update_running_stats(running_mean, running_var, momentum, mean, m2 / total, int(total))
        mean, invstd = mean.astype(x.dtype).reshape(shape), invstd.astype(x.dtype).reshape(shape)
        out = (x - mean) * invstd
        if weight is not None:
            out *= weight.array.reshape(shape)
        if bias is not None:
            out += bias.array.reshape(shape)
        ctx.save_for_backward(input, weight)
        ctx.mean, ctx.invstd, ctx.total, ctx.axes, ctx.process_group = mean, invstd, total, axes, process_group
        ctx.has_bias = bias is not None
        return out

    @staticmethod
    def backward(ctx, grad):
        if is_grad_enabled():
            raise RuntimeError("SyncBatchNorm does not support double backward: its backward communicates")
        input, weight = ctx.saved_tensors
        x, dy = input.array, grad.array
        shape, channels = ctx.mean.shape, x.shape[1]
        xmu = x - ctx.mean
        sum_dy = dy.sum(axis=ctx.axes)
        sum_dy_xmu = (dy * xmu).sum(axis=ctx.axes)
        grad_input = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:  # every rank computes it (same model), so every rank all-reduces
            sums = input._xp.concatenate([sum_dy, sum_dy_xmu])
            _communication.all_reduce_sum(sums, ctx.process_group)
            mean_dy = (sums[:channels] / ctx.total).reshape(shape)
            mean_dy_xmu = (sums[channels:] / ctx.total).reshape(shape)
            scale = ctx.invstd if weight is None else ctx.invstd * weight.array.reshape(shape)
            grad_input = Tensor((dy - mean_dy - xmu * ctx.invstd ** 2 * mean_dy_xmu) * scale)
        if weight is not None and ctx.needs_input_grad[1]:
            grad_weight = Tensor(sum_dy_xmu * ctx.invstd.reshape(-1))
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = Tensor(sum_dy)
        return grad_input, grad_weight, grad_bias, None, None, None, None, None


class SyncBatchNorm(_BatchNorm):
    """Batch norm over the batches of every rank of ``process_group`` (default: the world), for inputs
    (N, C, *) in training; BatchNorm otherwise (eval mode, no process group, a world of one).

    Put it in the model before wrapping with ``DistributedDataParallel``, or convert a model's batch norms
    with ``SyncBatchNorm.convert_sync_batchnorm(model)``.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, process_group=None, device=None, dtype=None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype)
        self.process_group = process_group

    def _check_input_dim(self, input: Tensor) -> None:
        if input.ndim < 2:
            raise ValueError(f"expected at least 2D input (got {input.ndim}D input)")
        if input.shape[1] == 0:
            raise ValueError("SyncBatchNorm number of input channels should be non-zero")

    def forward(self, input: Tensor) -> Tensor:
        synced = (self.training and self._uses_batch_stats() and _communication is not None
                  and _communication.world_size(self.process_group) > 1)
        if not synced:
            return super().forward(input)
        self._check_input_dim(input)
        factor = self._count_batch()
        running_mean, running_var = self._running_stats_to_pass()
        return SyncBatchNormFunction.apply(input, self.weight, self.bias, running_mean, running_var, self.eps,
                                           factor, self.process_group)

    @classmethod
    def convert_sync_batchnorm(cls, module, process_group=None):
        """``module`` with every BatchNorm layer in it replaced by a SyncBatchNorm that shares its parameters,
        running statistics and mode (``module`` itself if it is not one)."""
        converted = module
        if isinstance(module, _BatchNorm):
            converted = cls(module.num_features, module.eps, module.momentum, module.affine,
                            module.track_running_stats, process_group)
            for name in ("weight", "bias"):
                setattr(converted, name, getattr(module, name))
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                converted._buffers[name] = getattr(module, name)
            converted.training = module.training
        for name, child in module.named_children():
            converted.add_module(name, cls.convert_sync_batchnorm(child, process_group))
        return converted
