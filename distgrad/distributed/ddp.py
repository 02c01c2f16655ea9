"""``DistributedDataParallel``: one model replica per rank, gradients averaged during backward.

Wrapping checks that every rank holds the same parameters and copies rank 0's values to all; each
forward copies rank 0's buffers; each backward averages the gradients across ranks, overlapped with
backward itself (``reducer.py``), so that ``optimizer.step()`` takes the same step on every rank.
With ``gradient_sharding=zero`` (ZeRO-2) the buckets are reduce-scattered instead (``grad_sharding.py``).
Under ``Join`` (uneven inputs) a rank that ran out of batches shadows the others' collectives
(``_DDPJoinHook``). How it works inside is told in ``docs/distributed.md``.
"""
from __future__ import annotations

import contextlib

from distgrad import backend
from distgrad.autograd.grad_mode import is_grad_enabled
from distgrad.autograd.node import AccumulateGrad
import numpy as np

from distgrad.distributed import collectives, object_collectives, world
from distgrad.distributed.algorithms.join import Join, Joinable, JoinHook
from distgrad.distributed.coalesced import broadcast_coalesced
from distgrad.distributed.grad_sharding import ShardedReducer
from distgrad.distributed.reduce_op import ReduceOp
from distgrad.distributed.reducer import Reducer
from distgrad.nn.module import Module
from distgrad.tensor import Tensor

__all__ = ["DistributedDataParallel"]


class DistributedDataParallel(Module, Joinable):
    """Data parallelism: wrap the model on every rank, train as usual; gradients are averaged across ranks.

    Args:
        module: the model; the same architecture on every rank (checked at wrap).
        device_ids: None for CPU models and models spanning devices; ``[i]`` for a model on GPU ``i``.
        bucket_cap_mb: size of the gradient buckets reduced together (the first is at most 1 MiB).
        broadcast_buffers: copy rank 0's buffers (e.g. BatchNorm statistics) to all at every forward.
        find_unused_parameters: find the parameters the forward did not use and reduce zeros for them;
            without it, a parameter that gets no gradient is an error at the end of backward.
        gradient_as_bucket_view: ``p.grad`` becomes a view into its bucket (saves a copy and memory).
        process_group: the ranks to average over (default: the world).
        gradient_sharding: a ``ZeroRedundancyOptimizer`` over the module's parameters (same process group):
            ZeRO-2. Buckets are reduce-scattered, and after backward ``p.grad`` holds the average only
            for the parameters whose optimizer state lives on this rank (None for the others). A
            distgrad addition; DeepSpeed calls it ZeRO stage 2, PyTorch's FSDP ``SHARD_GRAD_OP``.

    Arguments after ``device_ids`` are keyword-only (PyTorch's positional order has more arguments).
    """

    def __init__(self, module: Module, device_ids=None, *, bucket_cap_mb: float = 25, broadcast_buffers: bool = True,
                 find_unused_parameters: bool = False, gradient_as_bucket_view: bool = False, process_group=None,
                 gradient_sharding=None):
        Module.__init__(self)
        Joinable.__init__(self)
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel expects a distgrad.nn.Module, got {type(module).__name__}")
        trained = [(name, p) for name, p in module.named_parameters() if p.requires_grad]
        if not trained:
            raise RuntimeError("DistributedDataParallel is not needed when a module doesn't have any parameter "
                               "that requires a gradient.")
        _check_device_ids(device_ids, [p for _, p in trained])
        if not bucket_cap_mb > 0:
            raise ValueError(f"bucket_cap_mb must be positive, got {bucket_cap_mb}")
        group = world.resolve_group(process_group)
        if group is None:
            raise ValueError("DistributedDataParallel: this rank is not a member of the given process group")
        self.module = module
        self.device_ids = device_ids
        self.process_group = process_group
        self.broadcast_buffers = broadcast_buffers
        self.find_unused_parameters = find_unused_parameters
        self.gradient_as_bucket_view = gradient_as_bucket_view
        self.bucket_bytes_cap = int(bucket_cap_mb * 1024 * 1024)
        self.require_backward_grad_sync = True
        self._src_rank = group.ranks[0]
        self._join_device = trained[0][1].device
        self._divide_by_initial_world_size = True
        _verify_same_parameters(module, process_group)
        broadcast_coalesced([p for _, p in module.named_parameters()] + list(module.buffers()),
                            self._src_rank, process_group)
        if gradient_sharding is None:
            self.reducer = Reducer(trained, process_group, self.bucket_bytes_cap, find_unused_parameters,
                                   gradient_as_bucket_view)
        else:
            if gradient_as_bucket_view:
                raise ValueError("DistributedDataParallel: gradient_as_bucket_view=True cannot be combined with "
                                 "gradient_sharding (each rank keeps only its shard's gradients, outside the buckets)")
            self.reducer = ShardedReducer(trained, process_group, self.bucket_bytes_cap, find_unused_parameters,
                                          _shard_owners(gradient_sharding, trained, group))

    def forward(self, *inputs, **kwargs):
        sync_backward = is_grad_enabled() and self.require_backward_grad_sync
        buffers = list(self.module.buffers()) if self.broadcast_buffers and self.require_backward_grad_sync else []
        Join.notify_join_context(self)
        buffer_src = self._src_rank
        if self._join_config.enable:  # tell joined ranks which collectives this iteration runs
            backward_ranks, _ = _join_flags(self, sync_backward, bool(buffers))
            self._set_divisor(backward_ranks)
            if buffers:  # joined ranks hold stale buffers: take the highest rank still training
                buffer_src = _highest_rank(self, candidate=True)
        if sync_backward:
            self.reducer.rebuild_buckets_if_needed()
        if buffers:
            broadcast_coalesced(buffers, buffer_src, self.process_group)
        outputs = self.module(*inputs, **kwargs)
        if sync_backward:
            unused = _unreached_parameters(outputs, self.reducer.params) if self.find_unused_parameters else []
            self.reducer.prepare_for_backward(unused)
        return outputs

    def _set_divisor(self, backward_ranks: int) -> None:
        size = world.get_world_size(self.process_group)
        dynamic = not self._divide_by_initial_world_size and 0 < backward_ranks < size
        self.reducer.divisor = backward_ranks if dynamic else None

    # --- uneven inputs (Join) -----------------------------------------------------------------------
    def join(self, divide_by_initial_world_size: bool = True, enable: bool = True,
             throw_on_early_termination: bool = False) -> Join:
        """``with model.join(): for batch in my_batches: ...`` trains on uneven inputs: ranks that run out of
        batches shadow the collectives of the others until all have run out (``Join([model])``).

        ``divide_by_initial_world_size``: the average divides by the world size even when fewer ranks
        still train (their gradients count as zeros); False divides by the ranks still training."""
        return Join([self], enable, throw_on_early_termination,
                    divide_by_initial_world_size=divide_by_initial_world_size)

    def join_hook(self, **kwargs) -> JoinHook:
        return _DDPJoinHook(self, divide_by_initial_world_size=kwargs.get("divide_by_initial_world_size", True))

    @property
    def join_device(self):
        return self._join_device

    @property
    def join_process_group(self):
        return self.process_group

    @contextlib.contextmanager
    def no_sync(self):
        """Backward passes of forwards run inside accumulate gradients locally, without communicating;
        the first synced backward after it averages the accumulated gradients."""
        previous = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = previous

    def register_comm_hook(self, state, hook) -> None:
        """Reduces each bucket with ``hook(state, bucket) -> CommFuture`` instead of an all-reduce (once,
        before training). Built-ins: ``distgrad.distributed.comm_hooks.fp16_compress_hook`` and
        ``bf16_compress_hook``, with ``state`` a process group or None."""
        self.reducer.register_comm_hook(state, hook)

    def bucket_layout(self) -> list[list[str]]:
        """The parameter names of each bucket, in the order the buckets are reduced (distgrad only)."""
        return [[self.reducer.names[i] for i in bucket.param_indices] for bucket in self.reducer.buckets]


class _DDPJoinHook(JoinHook):
    """A joined rank's side of DDP's collectives, one iteration of the ranks still training per call."""

    def __init__(self, ddp: DistributedDataParallel, divide_by_initial_world_size: bool):
        self.ddp = ddp
        ddp._divide_by_initial_world_size = divide_by_initial_world_size

    def main_hook(self) -> None:
        ddp = self.ddp
        backward_ranks, buffer_ranks = _join_flags(ddp, False, False)
        if backward_ranks:
            ddp.reducer.rebuild_buckets_if_needed()
        if buffer_ranks:
            src = _highest_rank(ddp, candidate=False)
            broadcast_coalesced(list(ddp.module.buffers()), src, ddp.process_group)
        if backward_ranks:
            ddp._set_divisor(backward_ranks)
            ddp.reducer.shadow_backward()

    def post_hook(self, is_last_joiner: bool) -> None:
        """Every rank takes the model of the last rank to join (the highest such rank)."""
        ddp = self.ddp
        src = _highest_rank(ddp, candidate=is_last_joiner)
        broadcast_coalesced([p for _, p in ddp.module.named_parameters()] + list(ddp.module.buffers()), src,
                            ddp.process_group)


def _join_flags(ddp: DistributedDataParallel, sync_backward: bool, sync_buffers: bool) -> tuple[int, int]:
    """How many ranks will reduce gradients in this iteration's backward, and how many broadcast buffers
    now (joined ranks say 0 and 0); one all-reduce."""
    flags = Tensor(np.array([int(sync_backward), int(sync_buffers)], dtype=np.int64))
    collectives.all_reduce(flags, group=ddp.process_group)
    return int(flags.array[0]), int(flags.array[1])


def _highest_rank(ddp: DistributedDataParallel, candidate: bool) -> int:
    """The highest global rank among the candidates (every rank calls it; at least one is a candidate)."""
    rank = Tensor(np.array([world.get_rank() if candidate else -1], dtype=np.int64))
    collectives.all_reduce(rank, op=ReduceOp.MAX, group=ddp.process_group)
    return int(rank.array[0])


def _shard_owners(zero, trained: list, group) -> list[int]:
    """The group rank that owns each trained parameter in the ZeroRedundancyOptimizer ``zero``."""
    if not hasattr(zero, "owner_of"):
        raise TypeError(f"gradient_sharding expects a ZeroRedundancyOptimizer, got {type(zero).__name__}")
    if world.resolve_group(zero.process_group) is not group:
        raise ValueError("DistributedDataParallel(gradient_sharding=...): the ZeroRedundancyOptimizer must use the "
                         "same process group as DistributedDataParallel")
    owners = []
    for name, p in trained:
        try:
            owners.append(zero.owner_of(p))
        except KeyError:
            raise ValueError(f"DistributedDataParallel(gradient_sharding=...): parameter '{name}' is not one of the "
                             "ZeroRedundancyOptimizer's parameters; give it every trained parameter of the "
                             "module") from None
    return owners


def _check_device_ids(device_ids, params) -> None:
    devices = {p.device for p in params}
    if len({d.type for d in devices}) > 1:
        raise ValueError(f"DistributedDataParallel's input module must be on the same type of devices, but input "
                         f"module parameters locate in {sorted(str(d) for d in devices)}.")
    if device_ids is None:
        return
    if len(devices) > 1 or next(iter(devices)).type == "cpu" or len(device_ids) != 1:
        raise ValueError(f"DistributedDataParallel device_ids and output_device arguments only work with "
                         f"single-device GPU modules, but got device_ids {list(device_ids)} and module "
                         f"parameters on {sorted(str(d) for d in devices)}; use device_ids=None.")
    wanted = device_ids[0]
    wanted = backend.Device("cuda", wanted) if isinstance(wanted, int) else backend.Device(wanted)
    if wanted not in devices:
        raise ValueError(f"DistributedDataParallel: device_ids {list(device_ids)} but the module is on "
                         f"{next(iter(devices))}")


def first_parameter_mismatch(per_rank: list, ranks) -> str | None:
    """Where ranks' ``[(name, shape, dtype), ...]`` lists first differ, naming the ranks; None if identical."""
    for i in range(max(len(entries) for entries in per_rank)):
        at_i = [tuple(entries[i]) if i < len(entries) else None for entries in per_rank]
        if all(e == at_i[0] for e in at_i):
            continue
        ranks_by_entry = {}
        for rank, entry in zip(ranks, at_i):
            ranks_by_entry.setdefault(entry, []).append(rank)
        described = "; ".join(f"{_describe(entry)} on rank{'s' if len(rs) > 1 else ''} {rs}"
                              for entry, rs in ranks_by_entry.items())
        return f"DistributedDataParallel expects the same model on every rank, but parameter #{i} differs: {described}"
    return None


def _describe(entry) -> str:
    if entry is None:
        return "no such parameter"
    name, shape, dtype = entry
    return f"'{name}' of shape {list(shape)} and dtype {dtype}"


def _verify_same_parameters(module: Module, process_group) -> None:
    """Raises the same error on every rank when ranks' parameter names, shapes or dtypes differ."""
    mine = [(name, tuple(p.shape), p.dtype.name) for name, p in module.named_parameters()]
    everyone = [None] * world.get_world_size(process_group)
    object_collectives.all_gather_object(everyone, mine, group=process_group)
    problem = first_parameter_mismatch(everyone, world.resolve_group(process_group).ranks)
    if problem is not None:
        raise RuntimeError(problem)


def _tensors_in(outputs) -> list:
    if isinstance(outputs, Tensor):
        return [outputs]
    if isinstance(outputs, (list, tuple)):
        return [t for item in outputs for t in _tensors_in(item)]
    if isinstance(outputs, dict):
        return [t for item in outputs.values() for t in _tensors_in(item)]
    return []


def _unreached_parameters(outputs, params: list) -> list[int]:
    """Indices of ``params`` that no output's graph leads to (walked through ``next_functions``)."""
    reached, stack = set(), []
    for t in _tensors_in(outputs):
        if t.grad_fn is not None:
            stack.append(t.grad_fn)
        elif t.requires_grad:
            reached.add(id(t))
    seen = set(stack)
    while stack:
        node = stack.pop()
        if node.__class__ is AccumulateGrad:
            reached.add(id(node.variable))
            continue
        for edge in node.next_functions:
            if edge is not None and edge[0] not in seen:
                seen.add(edge[0])
                stack.append(edge[0])
    return [i for i, p in enumerate(params) if id(p) not in reached]
