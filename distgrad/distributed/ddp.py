"""``DistributedDataParallel``: one model replica per rank, gradients averaged during backward.

Wrapping checks that every rank holds the same parameters and copies rank 0's values to all; each
forward copies rank 0's buffers; each backward averages the gradients across ranks, overlapped with
backward itself (``reducer.py``), so that ``optimizer.step()`` takes the same step on every rank.
How it works inside is told in ``docs/distributed.md``.
"""
from __future__ import annotations

import contextlib

from distgrad import backend
from distgrad.autograd.grad_mode import is_grad_enabled
from distgrad.autograd.node import AccumulateGrad, increment_version
from distgrad.distributed import collectives, object_collectives, world
from distgrad.distributed.reducer import Reducer
from distgrad.nn.module import Module
from distgrad.tensor import Tensor

__all__ = ["DistributedDataParallel"]


class DistributedDataParallel(Module):
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

    Arguments after ``device_ids`` are keyword-only (PyTorch's positional order has more arguments).
    """

    def __init__(self, module: Module, device_ids=None, *, bucket_cap_mb: float = 25, broadcast_buffers: bool = True,
                 find_unused_parameters: bool = False, gradient_as_bucket_view: bool = False, process_group=None):
        super().__init__()
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
        _verify_same_parameters(module, process_group)
        _broadcast_coalesced([p for _, p in module.named_parameters()] + list(module.buffers()),
                             self._src_rank, process_group)
        self.reducer = Reducer(trained, process_group, self.bucket_bytes_cap, find_unused_parameters,
                               gradient_as_bucket_view)

    def forward(self, *inputs, **kwargs):
        if is_grad_enabled():
            self.reducer.rebuild_buckets_if_needed()
        if self.broadcast_buffers and self.require_backward_grad_sync:
            buffers = list(self.module.buffers())
            if buffers:
                _broadcast_coalesced(buffers, self._src_rank, self.process_group)
        outputs = self.module(*inputs, **kwargs)
        if is_grad_enabled() and self.require_backward_grad_sync:
            unused = _unreached_parameters(outputs, self.reducer.params) if self.find_unused_parameters else []
            self.reducer.prepare_for_backward(unused)
        return outputs

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


def _broadcast_coalesced(tensors: list, src: int, process_group) -> None:
    """Every rank's ``tensors`` become rank ``src``'s: one broadcast per dtype and device."""
    by_kind = {}
    for t in tensors:
        by_kind.setdefault((t.dtype, t.device), []).append(t)
    for members in by_kind.values():
        xp = members[0]._xp
        flat = Tensor(xp.concatenate([t.array.reshape(-1) for t in members]))
        collectives.broadcast(flat, src, group=process_group)
        offset = 0
        for t in members:
            t.array[...] = flat.array[offset:offset + t.numel()].reshape(t.shape)
            increment_version(t)
            offset += t.numel()


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
