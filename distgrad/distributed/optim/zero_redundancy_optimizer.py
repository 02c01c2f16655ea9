"""``ZeroRedundancyOptimizer``: ZeRO-1, the optimizer state sharded across ranks (PyTorch's semantics).

Plain data parallelism keeps the whole optimizer state on every rank (Adam: two values per parameter,
twice the model). ZeRO-1 partitions the parameters across the ranks of the process group
(``partition.py``: greedy, balanced by size); each rank's local optimizer (``.optim``, an
``optimizer_class``) holds state for, and updates, only the parameters it owns. After the local step
every rank's updated parameters go to all the others:

- by default each rank broadcasts its shard (one coalesced broadcast per rank, dtype and device);
- with ``parameters_as_bucket_view=True`` the parameters live in one flat buffer per dtype and device,
  laid out rank by rank in equal chunks (``chunked_layout``), and one in-place
  ``all_gather_into_tensor`` per buffer updates all of them.

Gradients come from DDP: every rank has every averaged gradient (ZeRO-1), or, with
``DistributedDataParallel(model, gradient_sharding=zero)``, only those of the parameters it owns (ZeRO-2).

Checkpoints: ``consolidate_state_dict(to)`` gathers every shard's state on rank ``to``, whose
``state_dict()`` then has the layout of a plain optimizer over all the parameters. It depends on no
world size: it loads into a ZeroRedundancyOptimizer on any number of ranks, or into a plain optimizer.
"""
from __future__ import annotations

from itertools import chain

from distgrad import backend
from distgrad.autograd.node import increment_version
from distgrad.distributed import collectives, object_collectives, world
from distgrad.distributed.algorithms.join import Join, Joinable, JoinHook
from distgrad.distributed.buckets import chunked_layout
from distgrad.distributed.coalesced import broadcast_coalesced
from distgrad.distributed.optim.partition import partition_parameters
from distgrad.optim.optimizer import Optimizer
from distgrad.tensor import Tensor

__all__ = ["ZeroRedundancyOptimizer"]

OVERLAP_WITH_DDP_HELP = (
    "ZeroRedundancyOptimizer(overlap_with_ddp=True) is not implemented in distgrad (PyTorch runs the optimizer "
    "step inside DDP's communication hook, bucket by bucket). Use overlap_with_ddp=False and call step() after "
    "backward (ZeRO-1), or pass the optimizer to DistributedDataParallel(model, gradient_sharding=optimizer) "
    "(ZeRO-2: gradients are reduce-scattered during backward and each rank keeps only its shard's)."
)
NOT_CONSOLIDATED = ("Optimizer state has not been consolidated on this rank. Please call `consolidate_state_dict(to)` "
                    "on all ranks beforehand if you meant to save the global state.")


class ZeroRedundancyOptimizer(Optimizer, Joinable):
    """Wraps ``optimizer_class`` so that each rank keeps the state of, and updates, only its share of the
    parameters; ``step()`` then sends every rank's updated parameters to all.

    Args:
        params: Tensors or parameter groups (dicts), as for any optimizer; the same on every rank.
        optimizer_class: the local optimizer's class, e.g. ``distgrad.optim.Adam``.
        process_group: the ranks that share the state (default: the world).
        parameters_as_bucket_view: keep the parameters in flat buffers (views), updated by one all-gather
            per dtype and device instead of one broadcast per rank.
        overlap_with_ddp: not supported (raises ``NotImplementedError``; see ``OVERLAP_WITH_DDP_HELP``).
        **defaults: the local optimizer's hyper-parameters (``lr=...``).

    ``.optim.state`` holds this rank's shard's state; ``state_dict()`` needs ``consolidate_state_dict`` first.
    """

    def __init__(self, params, optimizer_class, process_group=None, parameters_as_bucket_view: bool = False,
                 overlap_with_ddp: bool = False, **defaults):
        if overlap_with_ddp:
            raise NotImplementedError(OVERLAP_WITH_DDP_HELP)
        self._initialized = False  # add_param_group, called by Optimizer.__init__, partitions only after it
        Optimizer.__init__(self, params, defaults)
        Joinable.__init__(self)
        group = world.resolve_group(process_group)
        if group is None:
            raise ValueError("ZeroRedundancyOptimizer: this rank is not a member of the given process group")
        self.process_group = process_group
        self.rank, self.world_size, self._global_ranks = group.rank(), group.size(), group.ranks
        self.optimizer_class = optimizer_class
        self.parameters_as_bucket_view = parameters_as_bucket_view
        self._all_state_dicts = []
        self._partition_parameters()
        self.optim = optimizer_class(self._partition[self.rank], **defaults)
        _sync_param_groups(self.optim.param_groups, self.param_groups)  # the local optimizer's defaults
        self._buckets = []
        if parameters_as_bucket_view:
            self._build_param_buckets()
        self._initialized = True

    # --- the partition ---------------------------------------------------------------------------
    def _partition_parameters(self) -> None:
        self._partition = partition_parameters(self.param_groups, self.world_size)
        self._param_to_rank = {id(p): rank for rank, groups in enumerate(self._partition)
                               for group in groups for p in group["params"]}
        self._param_to_index = {id(p): i for i, p in enumerate(chain.from_iterable(g["params"]
                                                                                    for g in self.param_groups))}

    def owner_of(self, param: Tensor) -> int:
        """The group rank whose local optimizer updates ``param`` (``KeyError`` if it is not one of ours)."""
        return self._param_to_rank[id(param)]

    def add_param_group(self, param_group: dict) -> None:
        """Adds a group; its parameters are partitioned like the others (earlier ones keep their owner)."""
        super().add_param_group(param_group)
        if self._initialized:
            self._partition_parameters()
            self.optim.add_param_group(self._partition[self.rank][-1])
            _sync_param_groups(self.optim.param_groups, self.param_groups)
            if self.parameters_as_bucket_view:
                self._build_param_buckets()

    def _build_param_buckets(self) -> None:
        """Moves the parameters into flat buffers, one per dtype and device, chunk r holding rank r's."""
        by_kind = {}
        for rank, groups in enumerate(self._partition):
            for p in chain.from_iterable(g["params"] for g in groups):
                by_kind.setdefault((p.dtype, p.device), []).append((rank, p))
        self._buckets = []
        for (dtype, device), owned in by_kind.items():
            offsets, chunk = chunked_layout([rank for rank, _ in owned], [p.numel() for _, p in owned],
                                            self.world_size)
            with backend.cuda_device_context(device):
                flat = backend.module_for(device).zeros(chunk * self.world_size, dtype=dtype)
            for (_, p), start in zip(owned, offsets):
                view = flat[start:start + p.numel()].reshape(p.shape)
                view[...] = p.array
                p.array = view  # the parameter now lives in the buffer, as PyTorch's param.data = view
            self._buckets.append((Tensor(flat), Tensor(flat[self.rank * chunk:(self.rank + 1) * chunk])))

    # --- the step --------------------------------------------------------------------------------
    def step(self, closure=None, **kwargs):
        """Updates this rank's parameters with the local optimizer, then every rank's go to all."""
        Join.notify_join_context(self)
        _sync_param_groups(self.param_groups, self.optim.param_groups)  # e.g. an lr scheduler's new lr
        loss = self.optim.step(closure, **kwargs) if closure is not None else self.optim.step(**kwargs)
        _sync_param_groups(self.optim.param_groups, self.param_groups)
        self._sync_params()
        self._opt_called = True
        return loss

    def _sync_params(self) -> None:
        if self.world_size == 1:
            return
        if self.parameters_as_bucket_view:
            for flat, mine in self._buckets:
                collectives.all_gather_into_tensor(flat, mine, group=self.process_group)
            for p in chain.from_iterable(g["params"] for g in self.param_groups):
                increment_version(p)
            return
        for rank, groups in enumerate(self._partition):
            broadcast_coalesced(list(chain.from_iterable(g["params"] for g in groups)), self._global_ranks[rank],
                                self.process_group)

    # --- checkpoints -----------------------------------------------------------------------------
    def consolidate_state_dict(self, to: int = 0) -> None:
        """Gathers every rank's shard state on group rank ``to`` (on the host). Call it on every rank."""
        _sync_param_groups(self.param_groups, self.optim.param_groups)
        gathered = [None] * self.world_size if self.rank == to else None
        object_collectives.gather_object(_to_host(self.optim.state_dict()), gathered, dst=self._global_ranks[to],
                                         group=self.process_group)
        self._all_state_dicts = gathered if self.rank == to else []

    def state_dict(self) -> dict:
        """The whole state, as a plain optimizer over all the parameters would give it (on the rank that
        ``consolidate_state_dict`` gathered on; as of that call)."""
        if not self._all_state_dicts:
            raise RuntimeError(NOT_CONSOLIDATED)
        state = {}
        for rank, local in enumerate(self._all_state_dicts):
            for local_group, owned in zip(local["param_groups"], self._partition[rank]):
                for local_index, p in zip(local_group["params"], owned["params"]):
                    if local_index in local["state"]:
                        state[self._param_to_index[id(p)]] = local["state"][local_index]
        return {"state": dict(sorted(state.items())), "param_groups": super().state_dict()["param_groups"]}

    def load_state_dict(self, state_dict: dict) -> None:
        """Loads a whole state (from ``state_dict()`` at any world size, or from a plain optimizer over the same
        parameters): the hyper-parameters everywhere, the state of this rank's shard into ``.optim``."""
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        for group, saved in zip(self.param_groups, saved_groups):
            if len(group["params"]) != len(saved["params"]):
                raise ValueError("loaded state dict contains a parameter group that doesn't match the size of "
                                 f"optimizer's group ({len(saved['params'])} saved, {len(group['params'])} here)")
        param_of = dict(zip(chain.from_iterable(g["params"] for g in saved_groups),
                            chain.from_iterable(g["params"] for g in self.param_groups)))
        local_index = {id(p): i for i, p in enumerate(chain.from_iterable(g["params"]
                                                                          for g in self.optim.param_groups))}
        local_state = {local_index[id(param_of[key])]: value for key, value in state_dict["state"].items()
                       if key in param_of and id(param_of[key]) in local_index}
        local_groups, start = [], 0
        for saved, local in zip(saved_groups, self.optim.param_groups):
            count = len(local["params"])
            local_groups.append({**saved, "params": list(range(start, start + count))})
            start += count
        self.optim.load_state_dict({"state": local_state, "param_groups": local_groups})
        _sync_param_groups(self.optim.param_groups, self.param_groups)

    # --- uneven inputs (Join) ----------------------------------------------------------------------
    def join_hook(self, **kwargs) -> JoinHook:
        return _ZeROJoinHook(self)

    @property
    def join_device(self):
        return self.param_groups[0]["params"][0].device if self.param_groups[0]["params"] else backend.CPU

    @property
    def join_process_group(self):
        return self.process_group


class _ZeROJoinHook(JoinHook):
    """A joined rank steps its shard (with the gradients DDP's join hook averaged) and sends it, as the
    ranks still training do in each iteration."""

    def __init__(self, zero: ZeroRedundancyOptimizer):
        self.zero = zero

    def main_hook(self) -> None:
        self.zero.step()


def _sync_param_groups(src: list[dict], dst: list[dict]) -> None:
    """Copies every hyper-parameter (not the parameters) of each group of ``src`` to the same group of ``dst``."""
    for src_group, dst_group in zip(src, dst):
        dst_group.update({key: value for key, value in src_group.items() if key != "params"})


def _to_host(value):
    """A copy of ``value`` (a state dict) whose Tensors are host arrays, safe to pickle and keep."""
    if isinstance(value, Tensor):
        return Tensor(backend.to_device(value.array, backend.CPU).copy())
    if isinstance(value, dict):
        return {key: _to_host(v) for key, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_host(v) for v in value)
    return value
