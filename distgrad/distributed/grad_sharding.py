"""ZeRO-2: DDP reduce-scatters the gradients, so that each rank keeps only its shard's gradients.

With ZeRO-1 (``ZeroRedundancyOptimizer`` over a plain DDP) every rank receives the average of every
gradient, then updates only the parameters it owns. ZeRO-2 sends the same bytes differently: each
bucket is laid out rank by rank, chunk r holding the gradients of the parameters that rank r owns
(``chunked_layout``, chunks padded to equal length), and one ``reduce_scatter_tensor`` per bucket
gives rank r the average of chunk r only. A reduce-scatter is half an all-reduce, and the other half
(an all-gather) comes back as ZeRO's broadcast of the updated parameters: the same traffic as DDP +
ZeRO-1, with 1/N of the gradients kept.

Memory, as DeepSpeed's stage 2 keeps it: each bucket owns only its *shard* (its chunk, 1/N of its
bytes), where the reduce-scatter writes and which the owned parameters' ``p.grad`` view (as DDP's
``gradient_as_bucket_view``: the next synced backward overwrites them). The full-size flat buffer a
bucket fills during backward is borrowed from a pool when its first gradient arrives and returned as
soon as its reduce-scatter has finished, so the pool holds only as many buffers as were ever in
flight at once; each gradient leaves ``p.grad`` once copied into its bucket. After backward ``p.grad``
holds the averaged gradient of the parameters this rank owns and is None for the others.

Accumulation keeps DDP's meaning: ``p.grad`` after a synced backward is what it held before plus the
average of what the ranks computed since. An owned parameter's ``p.grad`` then holds the earlier
average, which must not be sent again: at the first backward after a synced one, a hook that runs
before the gradient is accumulated moves ``p.grad`` aside (*carried*), so that ``p.grad`` collects
only this rank's new gradients (over ``no_sync`` micro-batches too); the next write-back adds the
carried value to the new average.
"""
from __future__ import annotations

import weakref

from distgrad import backend
from distgrad.distributed import collectives, world
from distgrad.distributed.buckets import GradBucket, chunked_layout
from distgrad.distributed.comm_hooks import CommFuture
from distgrad.distributed.reduce_op import ReduceOp, divide_in_place
from distgrad.distributed.reducer import Reducer
from distgrad.tensor import Tensor

__all__ = ["ShardedGradBucket", "ShardedReducer"]


class ShardedGradBucket(GradBucket):
    """A bucket whose gradients lie rank by rank in ``world_size`` chunks of ``chunk`` elements (each rank's
    parameters together, then padding). ``shard`` (this rank's chunk, averaged) is its own; the flat
    buffer is borrowed from a pool while a backward pass fills and reduces it."""

    def __init__(self, index: int, param_indices: list[int], params, is_last: bool, owners: list[int],
                 world_size: int):
        by_owner = sorted(param_indices, key=lambda i: owners[i])  # stable: the readiness order within a rank
        numels = [params[i].numel() for i in by_owner]
        offsets, self.chunk = chunked_layout([owners[i] for i in by_owner], numels, world_size)
        super().__init__(index, by_owner, params, is_last, offsets, world_size * self.chunk, allocated=False)
        used = [0] * world_size
        for i, numel in zip(by_owner, numels):
            used[owners[i]] += numel
        self.padding = [(r * self.chunk + used[r], (r + 1) * self.chunk) for r in range(world_size)
                        if used[r] < self.chunk]
        with backend.cuda_device_context(self.device):
            self.shard = backend.module_for(self.device).empty(self.chunk, dtype=self.dtype)

    def borrow(self, pool: list) -> None:
        """Takes a flat buffer (from ``pool`` when one is large enough) and zeroes its padding."""
        if self._buffer is not None:
            return
        for k, flat in enumerate(pool):
            if flat.size >= self.length and flat.dtype == self.dtype and backend.device_of(flat) == self.device:
                flat = pool.pop(k)
                break
        else:
            with backend.cuda_device_context(self.device):
                flat = backend.module_for(self.device).empty(self.length, dtype=self.dtype)
        self._whole = flat
        flat = flat[:self.length]
        for start, end in self.padding:
            flat[start:end] = 0
        self._buffer = Tensor(flat)
        self.views = [flat[start:start + p.numel()].reshape(p.shape) for p, start in zip(self._params, self.offsets)]

    def give_back(self, pool: list) -> None:
        if self._buffer is not None:
            pool.append(self._whole)
            self._buffer, self._whole, self.views = None, None, []


def _carry_hook(reducer_ref, index: int):
    """Runs before parameter ``index``'s gradient is accumulated (a weak reference, like DDP's hooks)."""
    def hook(grad):
        reducer = reducer_ref()
        if reducer is not None:
            reducer.take_carry(index)
    return hook


class ShardedReducer(Reducer):
    """The reducer of ``DistributedDataParallel(..., gradient_sharding=zero)``: ``owners[i]`` is the
    group rank whose optimizer updates parameter i (``zero.owner_of``)."""

    def __init__(self, named_params: list, process_group, bucket_cap_bytes: int, find_unused_parameters: bool,
                 owners: list[int]):
        group = world.resolve_group(process_group)
        self.owners, self.group_rank, self.group_size = list(owners), group.rank(), group.size()
        self._pool = []  # flat buffers not lent to a bucket now
        self._carried = [None] * len(named_params)  # an owned parameter's earlier average, out of p.grad
        self._holds_average = [False] * len(named_params)  # p.grad is the last write-back's, not yet carried
        super().__init__(named_params, process_group, bucket_cap_bytes, find_unused_parameters,
                         gradient_as_bucket_view=False)
        me = weakref.ref(self)
        self._handles += [p.register_hook(_carry_hook(me, i)) for i, p in enumerate(self.params)]

    def register_comm_hook(self, state, hook) -> None:
        raise NotImplementedError("DistributedDataParallel(gradient_sharding=...) reduce-scatters its buckets; "
                                  "communication hooks, which all-reduce, cannot be combined with it.")

    def _make_bucket(self, index: int, param_indices: list[int], is_last: bool) -> GradBucket:
        return ShardedGradBucket(index, param_indices, self.params, is_last, self.owners, self.group_size)

    def held_bytes(self) -> int:
        """Bytes that the gradient buffers keep between steps: the shards and the pooled flat buffers."""
        return sum(b.shard.nbytes for b in self.buckets) + sum(flat.nbytes for flat in self._pool)

    def take_carry(self, i: int) -> None:
        """Moves an owned parameter's earlier average out of ``p.grad`` (once, at the first backward after a
        synced one), so that ``p.grad`` collects only this rank's new gradients."""
        if self._holds_average[i]:
            self._holds_average[i] = False
            grad = self.params[i].grad
            # A view of the bucket's shard, which the next reduce-scatter overwrites: keep a copy.
            self._carried[i] = None if grad is None else Tensor(grad.array.copy())
            self.params[i].grad = None

    def _fill_slot(self, i: int) -> None:
        self.take_carry(i)  # a parameter without a gradient this time got no hook
        self._slot[i][0].borrow(self._pool)
        super()._fill_slot(i)
        self.params[i].grad = None  # now in the bucket: each rank keeps only its shard's gradients

    def _reduce(self, bucket: ShardedGradBucket) -> CommFuture:
        shard = Tensor(bucket.shard)
        op = ReduceOp.AVG if self.divisor is None else ReduceOp.SUM
        work = collectives.reduce_scatter_tensor(shard, bucket.buffer(), op=op, group=self.process_group,
                                                 async_op=True)
        if self.divisor is None:
            return CommFuture(work, shard)

        def divide() -> Tensor:
            divide_in_place(shard.array, self.divisor)
            return shard
        return CommFuture(work, then=divide)

    def _drive_progress(self) -> None:
        # Besides letting MPI progress: a bucket whose reduce-scatter has finished gives its buffer back
        # at once, so that a later bucket can borrow it in the same backward pass.
        while self._first_unfinished < self._next_launch and self.buckets[self._first_unfinished].future.poll():
            bucket = self.buckets[self._first_unfinished]
            self._receive(bucket, bucket.future.wait())
            bucket.future = None
            self._first_unfinished += 1

    def _receive(self, bucket: ShardedGradBucket, reduced: Tensor) -> None:
        bucket.give_back(self._pool)  # the average is in bucket.shard already

    def _wait_for_launched(self) -> None:
        super()._wait_for_launched()
        for bucket in self.buckets:
            bucket.give_back(self._pool)

    def _write_back(self, globally_used) -> None:
        for i, p in enumerate(self.params):
            carried, self._carried[i] = self._carried[i], None
            if self.owners[i] != self.group_rank:
                continue  # p.grad stays None: another rank keeps this gradient
            if globally_used is not None and not globally_used[i]:
                p.grad = carried  # no rank used it since the last sync: untouched, as in DDP
                continue
            bucket, k = self._slot[i]
            start = bucket.offsets[k] - self.group_rank * bucket.chunk
            average = bucket.shard[start:start + p.numel()].reshape(p.shape)
            p.grad = Tensor(average if carried is None or self._shadowing else average + carried.array)
            self._holds_average[i] = True
