"""DDP communication hooks: how a bucket of gradients is averaged across ranks.

A hook is ``hook(state, bucket: GradBucket) -> CommFuture``: it starts the (asynchronous) reduction
of ``bucket.buffer()`` and returns a future whose ``wait()`` gives the averaged flat gradients. The
default is ``allreduce_hook`` (``hierarchical_allreduce_hook`` with ``DISTGRAD_HIERARCHICAL_ALLREDUCE=1``);
``fp16_compress_hook`` and ``bf16_compress_hook`` halve the bytes sent.
``state`` of the built-in hooks is the process group (None for the default group), as in
PyTorch's ``torch.distributed.algorithms.ddp_comm_hooks.default_hooks``.
"""
from __future__ import annotations

import os

import numpy as np

from distgrad import backend, envvars
from distgrad.dtypes import bfloat16
from distgrad.distributed import collectives, world
from distgrad.distributed.hierarchical import hierarchical_all_reduce
from distgrad.distributed.buckets import GradBucket
from distgrad.distributed.reduce_op import ReduceOp, divide_in_place
from distgrad.tensor import Tensor

__all__ = ["CommFuture", "allreduce_hook", "allreduce_divided_hook", "hierarchical_allreduce_hook", "default_hook",
           "fp16_compress_hook", "bf16_compress_hook",
           "float_to_bf16_bits", "bf16_bits_to_float"]


class CommFuture:
    """The result of a communication hook: ``wait()`` waits for ``work`` and returns the reduced tensor.

    ``then()`` (optional) runs once, after the transfer, and returns the result (e.g. decompressing);
    without it the result is ``result``. ``poll()`` asks, without blocking, whether the transfer is done
    (on MPI this also lets the library progress the transfer while backward still runs).
    """

    def __init__(self, work, result: Tensor | None = None, then=None):
        self._work, self._result, self._then = work, result, then
        self._done = False

    def wait(self) -> Tensor:
        if not self._done:
            if self._work is not None:
                self._work.wait()
            if self._then is not None:
                self._result = self._then()
            self._done = True
        return self._result

    def poll(self) -> bool:
        return self._done or self._work is None or self._work.poll()


def allreduce_hook(process_group, bucket: GradBucket) -> CommFuture:
    """Averages the bucket in place with one asynchronous ``all_reduce(op=AVG)``."""
    buffer = bucket.buffer()
    work = collectives.all_reduce(buffer, op=ReduceOp.AVG, group=process_group, async_op=True)
    return CommFuture(work, buffer)


def hierarchical_allreduce_hook(process_group, bucket: GradBucket) -> CommFuture:
    """Averages the bucket in place with one asynchronous hierarchical all-reduce: reduced inside each
    node, all-reduced among the nodes' leaders, broadcast inside each node (``hierarchical.py``)."""
    buffer = bucket.buffer()
    work = hierarchical_all_reduce(buffer, op=ReduceOp.AVG, group=process_group, async_op=True)
    return CommFuture(work, buffer)


def default_hook():
    """DDP's hook unless one is registered: ``allreduce_hook``, or ``hierarchical_allreduce_hook`` when
    ``DISTGRAD_HIERARCHICAL_ALLREDUCE=1`` (as Horovod's ``HOROVOD_HIERARCHICAL_ALLREDUCE``)."""
    value = os.environ.get(envvars.HIERARCHICAL_ALLREDUCE, "0").strip().lower()
    return allreduce_hook if value in ("", "0", "false", "no", "off") else hierarchical_allreduce_hook


def allreduce_divided_hook(process_group, bucket: GradBucket, divisor: int) -> CommFuture:
    """Sums the bucket across ranks, then divides by ``divisor``: under ``Join`` with
    ``divide_by_initial_world_size=False``, the number of ranks still training."""
    buffer = bucket.buffer()
    work = collectives.all_reduce(buffer, op=ReduceOp.SUM, group=process_group, async_op=True)

    def divide() -> Tensor:
        divide_in_place(buffer.array, divisor)
        return buffer
    return CommFuture(work, then=divide)


def fp16_compress_hook(process_group, bucket: GradBucket) -> CommFuture:
    """Divides by the world size, casts to float16, sums across ranks, and casts back.

    Half the bytes of float32; gradients beyond float16's range (65504) overflow, as in PyTorch.
    """
    buffer = bucket.buffer()
    compressed = Tensor((buffer.array / _world_size(process_group)).astype(np.float16))
    work = collectives.all_reduce(compressed, op=ReduceOp.SUM, group=process_group, async_op=True)

    def decompress() -> Tensor:
        buffer.array[...] = compressed.array
        return buffer
    return CommFuture(work, then=decompress)


def bf16_compress_hook(process_group, bucket: GradBucket) -> CommFuture:
    """Sends the gradients as bfloat16 (float32's range, 8 bits of mantissa) and averages them.

    Where the communicator sums bfloat16 itself (NCCL 2.10+), this is PyTorch's hook: divide by the
    world size, cast to bfloat16, all-reduce, cast back. MPI has no bfloat16 datatype, so there each
    rank's values are rounded to bfloat16 bit patterns (``uint16``) and all-gathered, and every rank
    sums the decoded float32 values in rank order. Each rank then receives ``(world_size - 1) x 2``
    bytes per value: fewer than float32's all-reduce on small worlds (2-3 ranks); fp16 suits larger ones.
    """
    buffer = bucket.buffer()
    size = _world_size(process_group)
    if _sums_bfloat16(process_group, buffer.array):
        compressed = Tensor((buffer.array / size).astype(bfloat16))
        work = collectives.all_reduce(compressed, op=ReduceOp.SUM, group=process_group, async_op=True)

        def decompress_sum() -> Tensor:
            buffer.array[...] = compressed.array
            return buffer
        return CommFuture(work, then=decompress_sum)
    xp = buffer._xp
    mine = Tensor(float_to_bf16_bits(buffer.array / size).view(np.uint8))
    gathered = [Tensor(xp.empty_like(mine.array)) for _ in range(size)]
    work = collectives.all_gather(gathered, mine, group=process_group, async_op=True)

    def decompress() -> Tensor:
        total = bf16_bits_to_float(gathered[0].array.view(np.uint16))
        for g in gathered[1:]:
            total += bf16_bits_to_float(g.array.view(np.uint16))
        buffer.array[...] = total
        return buffer
    return CommFuture(work, then=decompress)


def _sums_bfloat16(process_group, array) -> bool:
    """Whether the communicator that reduces ``array`` for ``process_group`` has a bfloat16 sum (NCCL's)."""
    group = world.resolve_group(process_group)
    return group is not None and group.communicator_for(array).knows_dtype(bfloat16)


def float_to_bf16_bits(array):
    """bfloat16 bit patterns (``uint16``) of ``array``, rounded to nearest even; NaN stays NaN."""
    xp = backend.array_module(array)
    bits = xp.ascontiguousarray(array, dtype=np.float32).view(np.uint32)
    rounded = (bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)
    nan = xp.isnan(bits.view(np.float32))
    return xp.where(nan, np.uint16(0x7FC0), rounded.astype(np.uint16))


def bf16_bits_to_float(bits):
    """float32 values of bfloat16 bit patterns (``uint16``)."""
    return (bits.astype(np.uint32) << np.uint32(16)).view(np.float32)


def _world_size(process_group) -> int:
    return world.get_world_size(process_group)
