"""``LRScheduler``: the base of every learning-rate schedule, as in ``torch.optim.lr_scheduler``.

A scheduler writes each parameter group's ``'lr'`` when it steps (once at construction too). Most
rules are *chainable*: ``get_lr`` computes the next rate from the group's current one, so several
schedulers stepping the same optimizer (``ChainedScheduler``) multiply their effects, as in PyTorch.
"""
from __future__ import annotations

import warnings

from distgrad.optim.optimizer import Optimizer


class LRScheduler:
    """Base class: subclasses define ``get_lr()``, the rates for step ``self.last_epoch``.

    Args:
        optimizer: the optimizer whose groups' ``'lr'`` this scheduler sets.
        last_epoch: the index of the last step taken; ``-1`` starts afresh. Another value resumes a
            schedule and needs ``'initial_lr'`` in every group (as a loaded optimizer state has).

    Unlike PyTorch, ``step()`` takes no ``epoch`` argument (PyTorch deprecated it).
    """

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(f"param 'initial_lr' is not specified in param_groups[{i}] when resuming "
                                   "scheduler with last_epoch >= 0.")
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._initial_step()

    def _initial_step(self) -> None:
        """Sets the rates of step 0 (or of ``last_epoch + 1`` when resuming)."""
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def get_lr(self) -> list:
        """The rates of step ``self.last_epoch``, one per parameter group."""
        raise NotImplementedError(f"{type(self).__name__} must define get_lr()")

    def get_last_lr(self) -> list:
        """The rates this scheduler set last, one per parameter group."""
        return self._last_lr

    def step(self) -> None:
        """Moves the schedule one step on; call it after ``optimizer.step()``."""
        self._count_step()
        self._update_lr()

    def _count_step(self) -> None:
        """Counts a step, warning when the first one after construction comes before any ``optimizer.step()``."""
        if self._step_count == 1 and not getattr(self.optimizer, "_opt_called", False):
            warnings.warn("Detected call of `lr_scheduler.step()` before `optimizer.step()`. Call them in the "
                          "opposite order: `optimizer.step()` before `lr_scheduler.step()`. Failure to do this "
                          "will result in skipping the first value of the learning rate schedule.",
                          UserWarning, stacklevel=3)
        self._step_count += 1

    def _update_lr(self, epoch: int | None = None) -> None:
        """Steps to ``last_epoch + 1``, or jumps to ``epoch`` with the closed form where there is one."""
        if epoch is None:
            self.last_epoch += 1
            values = self.get_lr()
        else:
            self.last_epoch = epoch
            closed_form = getattr(self, "_get_closed_form_lr", None)
            values = closed_form() if closed_form is not None else self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, values):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        """Every attribute but the optimizer: plain numbers, lists and dicts, ready for ``distgrad.save``."""
        return state_but(self)

    def load_state_dict(self, state_dict: dict) -> None:
        self.__dict__.update(state_dict)


def state_but(scheduler, *names: str) -> dict:
    """The scheduler's attributes but its optimizer and ``names`` (which the caller saves its own way)."""
    left_out = ("optimizer",) + names
    return {key: value for key, value in scheduler.__dict__.items() if key not in left_out}


def load_state_but(scheduler, state_dict: dict, name: str):
    """Restores every attribute of ``state_dict`` but ``name``, whose saved value it returns to the caller."""
    state = dict(state_dict)
    saved = state.pop(name)
    scheduler.__dict__.update(state)
    return saved


def current_lrs(optimizer: Optimizer) -> list:
    """Each group's ``'lr'`` now (the rate a chainable rule keeps when it does not change it)."""
    return [group["lr"] for group in optimizer.param_groups]


def per_group(name: str, optimizer: Optimizer, value) -> list:
    """``value`` repeated for every parameter group, or checked to have one entry per group."""
    if isinstance(value, (list, tuple)):
        if len(value) != len(optimizer.param_groups):
            raise ValueError(f"{name} must have the same length as optimizer.param_groups. {name} has "
                             f"{len(value)} values, param_groups has {len(optimizer.param_groups)}.")
        return list(value)
    return [value] * len(optimizer.param_groups)
