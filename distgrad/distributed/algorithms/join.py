"""``Join``: training on uneven inputs, where some ranks run out of batches before the others.

Collectives need every rank of the group: a rank that has left the training loop would leave the
others' next all-reduce hanging. Inside ``with Join([model, optimizer]):`` a rank that has run out
of inputs (it *joined*) keeps taking part in the collectives of the ranks still training, with
neutral values (zero gradients), until every rank has joined:

- each rank still training announces it once per iteration: ``Join.notify_join_context(joinable)``
  (DDP's forward and ZeroRedundancyOptimizer's step call it) all-reduces a 1;
- a joined rank loops in ``__exit__``: it all-reduces a 0, and the sum is the number of ranks still
  training. While it is above zero, the joined rank runs every joinable's ``JoinHook.main_hook()``,
  which issues the same collectives as one iteration of the others (DDP's gradient buckets filled
  with zeros, ZeRO's parameter broadcast); at zero every rank runs ``post_hook(is_last_joiner)``
  (DDP copies the model of the last rank to join to all).

With ``throw_on_early_termination=True`` the first rank to join makes every rank raise instead:
each iteration the ranks still training all-reduce a 0 after their 1, which the joined rank answers
with a 1. Same semantics as PyTorch's ``torch.distributed.algorithms.Join``.
"""
from __future__ import annotations

import abc
import warnings
from typing import NamedTuple

import numpy as np

from distgrad import backend
from distgrad.distributed import collectives, world
from distgrad.tensor import Tensor

__all__ = ["Join", "Joinable", "JoinHook"]

UNEVEN_SKEW_WARNING_ITERATIONS = 1000  # PyTorch's WARN_THRESHOLD


class JoinHook:
    """What a joined rank does for one joinable: ``main_hook`` shadows one iteration of the ranks
    still training, ``post_hook`` runs once every rank has joined."""

    def main_hook(self) -> None:
        """Issues this joinable's collectives of one training iteration, with neutral values."""

    def post_hook(self, is_last_joiner: bool) -> None:
        """Runs on every rank once all have joined; ``is_last_joiner`` is True on the last to join."""


class _JoinConfig(NamedTuple):
    enable: bool
    throw_on_early_termination: bool
    is_first_joinable: bool

    @staticmethod
    def construct_disabled_join_config() -> "_JoinConfig":
        return _JoinConfig(enable=False, throw_on_early_termination=False, is_first_joinable=False)


class Joinable(abc.ABC):
    """Something whose iterations run collectives, and that can shadow them once joined
    (``DistributedDataParallel``, ``ZeroRedundancyOptimizer``). A subclass calls
    ``Joinable.__init__(self)`` and calls ``Join.notify_join_context(self)`` once per iteration,
    before its collectives."""

    @abc.abstractmethod
    def __init__(self):
        self._join_config = _JoinConfig.construct_disabled_join_config()

    @abc.abstractmethod
    def join_hook(self, **kwargs) -> JoinHook:
        """The hook that shadows this joinable's collectives; ``kwargs`` are those given to ``Join``."""

    @property
    @abc.abstractmethod
    def join_device(self):
        """The device of the tensors that the join protocol's all-reduces use."""

    @property
    @abc.abstractmethod
    def join_process_group(self):
        """The process group of this joinable's collectives (None: the default group)."""


class Join:
    """Context manager for uneven inputs: ranks that run out of batches shadow the collectives of
    those still training until every rank has run out.

    Args:
        joinables: the ``Joinable`` objects of the training loop (e.g. ``[ddp_model, zero_optimizer]``),
            in the order their hooks run; all on one process group.
        enable: False makes the context do nothing (the same code runs with even inputs).
        throw_on_early_termination: every rank raises ``RuntimeError`` as soon as one rank runs out,
            instead of shadowing it.
        **kwargs: passed to every ``join_hook`` (``divide_by_initial_world_size`` for DDP).
    """

    def __init__(self, joinables: list, enable: bool = True, throw_on_early_termination: bool = False, **kwargs):
        if len(joinables) == 0:
            raise ValueError("The join context manager requires at least one joinable")
        for joinable in joinables:
            if not isinstance(joinable, Joinable):
                raise TypeError(f"Join expects Joinable objects, got {type(joinable).__name__}")
            if not hasattr(joinable, "_join_config"):
                raise RuntimeError(f"Check that the {type(joinable).__name__} constructor calls the Joinable "
                                   "constructor")
        self._joinables = list(joinables)
        self._join_hooks = [joinable.join_hook(**kwargs) for joinable in self._joinables]
        self._enable = enable
        self._throw_on_early_termination = throw_on_early_termination
        groups = {id(world.resolve_group(j.join_process_group)) for j in self._joinables}
        if len(groups) > 1:
            raise ValueError("Using join context manager with multiple process groups")
        self._process_group = self._joinables[0].join_process_group
        self._device = self._joinables[0].join_device
        self._rank = world.get_rank(self._process_group)
        self._set_joinable_configs(enable)

    def _set_joinable_configs(self, enable: bool) -> None:
        for i, joinable in enumerate(self._joinables):
            joinable._join_config = _JoinConfig(enable, self._throw_on_early_termination, is_first_joinable=i == 0)

    def __enter__(self) -> "Join":
        return self

    def __exit__(self, exc_type, exc_value, traceback):
        try:
            if self._enable and exc_type is None:
                self._shadow_until_all_joined()
        finally:
            for joinable in self._joinables:  # after the context, iterations announce nothing
                joinable._join_config = _JoinConfig.construct_disabled_join_config()

    def _shadow_until_all_joined(self) -> None:
        # The hooks step joinables (ZeRO's step) that would otherwise announce an iteration themselves.
        self._set_joinable_configs(enable=False)
        is_last_joiner, iterations = True, 0
        while self._ranks_still_training() > 0:
            if iterations == UNEVEN_SKEW_WARNING_ITERATIONS + 1:
                skew = UNEVEN_SKEW_WARNING_ITERATIONS
                warnings.warn(f"Detected uneven input skew of greater than {skew}. This means that rank {self._rank} "
                              f"has at least {skew} fewer inputs than other currently-active ranks. This level of "
                              "skew could lead to performance degradation during training.")
            if self._throw_on_early_termination:
                _all_reduce_count(1, self._device, self._process_group)  # answers the others' check with a 1
                raise RuntimeError(f"Rank {self._rank} exhausted all inputs.")
            for hook in self._join_hooks:
                hook.main_hook()
            is_last_joiner = False
            iterations += 1
        for hook in self._join_hooks:
            hook.post_hook(is_last_joiner)

    def _ranks_still_training(self) -> int:
        return _all_reduce_count(0, self._device, self._process_group)

    @staticmethod
    def notify_join_context(joinable: Joinable):
        """Announces that this rank has not joined (call it once per iteration, before the iteration's
        collectives). Only the first joinable of an enabled ``Join`` communicates; returns the
        all-reduce's (completed) ``Work``, or None. With ``throw_on_early_termination`` it raises
        ``RuntimeError`` on every rank once some rank has joined."""
        if not hasattr(joinable, "_join_config"):
            raise RuntimeError(f"Check that the {type(joinable).__name__} constructor calls the Joinable constructor")
        config = joinable._join_config
        if not config.is_first_joinable or not config.enable:
            return None
        work = _all_reduce_count(1, joinable.join_device, joinable.join_process_group, want_work=True)
        if config.throw_on_early_termination and _all_reduce_count(0, joinable.join_device,
                                                                   joinable.join_process_group) > 0:
            raise RuntimeError("Detected at least one rank that exhausted inputs. Throwing across all ranks.")
        return work


def _all_reduce_count(mine: int, device, group, want_work: bool = False):
    """The sum over ``group`` of every rank's ``mine``; with ``want_work``, the finished ``Work`` instead.

    Waited at once: an MPI request left unwaited is never freed, and the next collective would wait
    for it anyway.
    """
    device = backend.Device(device)
    with backend.cuda_device_context(device):
        count = Tensor(backend.module_for(device).full(1, mine, dtype=np.int64))
    work = collectives.all_reduce(count, group=group, async_op=True)
    work.wait()
    return work if want_work else int(count.array[0])
