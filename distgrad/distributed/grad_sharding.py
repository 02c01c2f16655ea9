"""ZeRO-2: DDP reduce-scatters the gradients, so that each rank keeps only its shard's gradients.

With ZeRO-1 (``ZeroRedundancyOptimizer`` over a plain DDP) every rank receives the average of every
gradient, then updates only the parameters it owns. ZeRO-2 sends the same bytes differently: each
bucket lays its gradients out rank by rank, the gradients of the parameters that rank r owns
together as chunk r, and one ``reduce_scatter_v`` per bucket gives rank r the average of chunk r
only. A reduce-scatter is half an all-reduce, and the other half (an all-gather) comes back as ZeRO's
broadcast of the updated parameters: the same traffic as DDP + ZeRO-1, with 1/N of the gradients kept.
Chunks differ in size (ZeRO owns whole parameters, and a bucket holds whichever parameters became
ready together), so the reduce-scatter takes one count per rank (MPI's ``Reduce_scatter``) rather
than padding every chunk to the largest, which would multiply a one-parameter bucket's bytes by N.

Memory: each bucket keeps its flat buffer (as DDP's buckets) and its *shard* (this rank's chunk,
averaged), which the owned parameters' ``p.grad`` view (as with ``gradient_as_bucket_view``: the
next synced backward overwrites them). Each gradient leaves ``p.grad`` once copied into its bucket:
after backward ``p.grad`` holds the averaged gradient of the parameters this rank owns and is None
for the others (DDP would keep 1x in ``p.grad`` beside its buckets; ZeRO-2 keeps 1/N).

Accumulation keeps DDP's meaning: ``p.grad`` after a synced backward is what it held before plus the
average of what the ranks computed since. An owned parameter's ``p.grad`` then holds the earlier
average, which must not be sent again: at the first backward after a synced one, a hook that runs
before the gradient is accumulated moves ``p.grad`` aside (*carried*), so that ``p.grad`` collects
only this rank's new gradients (over ``no_sync`` micro-batches too); the next write-back adds the
carried value to the new average.
"""
from __future__ import annotations

from distgrad import backend
from distgrad.distributed import collectives, world
from distgrad.distributed.buckets import GradBucket
from distgrad.distributed.comm_hooks import CommFuture
from distgrad.distributed.reduce_op import ReduceOp, divide_in_place
from distgrad.distributed.reducer import Reducer
from distgrad.tensor import Tensor

__all__ = ["ShardedGradBucket", "ShardedReducer"]


class ShardedGradBucket(GradBucket):
    """A bucket whose gradients lie rank by rank: ``counts[r]`` elements of the parameters rank r owns,
    then rank r + 1's. ``shard`` holds this rank's chunk once reduced."""

    def __init__(self, index: int, param_indices: list[int], params, is_last: bool, owners: list[int],
                 world_size: int, group_rank: int):
        by_owner = sorted(param_indices, key=lambda i: owners[i])  # stable: the readiness order within a rank
        super().__init__(index, by_owner, params, is_last)
        self.counts = [0] * world_size
        for i in by_owner:
            self.counts[owners[i]] += params[i].numel()
        self.shard_start = sum(self.counts[:group_rank])
        with backend.cuda_device_context(self.device):
            self.shard = backend.module_for(self.device).empty(self.counts[group_rank], dtype=self.dtype)


class ShardedReducer(Reducer):
    """The reducer of ``DistributedDataParallel(..., gradient_sharding=zero)``: ``owners[i]`` is the
    group rank whose optimizer updates parameter i (``zero.owner_of``)."""

    def __init__(self, named_params: list, process_group, bucket_cap_bytes: int, find_unused_parameters: bool,
                 owners: list[int]):
        group = world.resolve_group(process_group)
        self.owners, self.group_rank, self.group_size = list(owners), group.rank(), group.size()
        self._carried = [None] * len(named_params)  # an owned parameter's earlier average, out of p.grad
        self._holds_average = [False] * len(named_params)  # p.grad is the last write-back's, not yet carried
        super().__init__(named_params, process_group, bucket_cap_bytes, find_unused_parameters,
                         gradient_as_bucket_view=False)
        # take_carry runs before each gradient is accumulated
        self._handles += [p.register_hook(hook) for p, hook in zip(self.params, self._parameter_hooks("take_carry"))]

    def register_comm_hook(self, state, hook) -> None:
        raise NotImplementedError("DistributedDataParallel(gradient_sharding=...) reduce-scatters its buckets; "
                                  "communication hooks, which all-reduce, cannot be combined with it.")

    def _make_bucket(self, index: int, param_indices: list[int], is_last: bool) -> GradBucket:
        return ShardedGradBucket(index, param_indices, self.params, is_last, self.owners, self.group_size,
                                 self.group_rank)

    def held_bytes(self) -> int:
        """Bytes that the gradient buffers keep between steps: the buckets and their shards."""
        return super().held_bytes() + sum(bucket.shard.nbytes for bucket in self.buckets)

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
        super()._fill_slot(i)
        self.params[i].grad = None  # now in the bucket: each rank keeps only its shard's gradients

    def _reduce(self, bucket: ShardedGradBucket) -> CommFuture:
        shard = Tensor(bucket.shard)
        op = ReduceOp.AVG if self.divisor is None else ReduceOp.SUM
        work = collectives.reduce_scatter_v(shard, bucket.buffer(), bucket.counts, op=op, group=self.process_group,
                                            async_op=True)
        if self.divisor is None:
            return CommFuture(work, shard)

        def divide() -> Tensor:
            divide_in_place(shard.array, self.divisor)
            return shard
        return CommFuture(work, then=divide)

    def _receive(self, bucket: ShardedGradBucket, reduced: Tensor) -> None:
        pass  # the average is in bucket.shard already

    def _write_back(self, globally_used) -> None:
        for i, p in enumerate(self.params):
            carried, self._carried[i] = self._carried[i], None
            if self.owners[i] != self.group_rank:
                continue  # p.grad stays None: another rank keeps this gradient
            if globally_used is not None and not globally_used[i]:
                p.grad = carried  # no rank used it since the last sync: untouched, as in DDP
                continue
            bucket, k = self._slot[i]
            start = bucket.offsets[k] - bucket.shard_start
            average = bucket.shard[start:start + p.numel()].reshape(p.shape)
            p.grad = Tensor(average if carried is None or self._shadowing else average + carried.array)
            self._holds_average[i] = True
