"""``Optimizer``: parameter groups, per-parameter state, and PyTorch's ``state_dict`` layout.

A subclass writes one method, ``_update(param, grad, state, group)``, that changes the arrays
``param`` (and the Tensors in ``state``) in place. ``step`` calls it for every parameter that has a
gradient, then bumps the parameter's version counter, so autograd notices a parameter that changed
under a graph that saved it. Nothing here is recorded on the tape: updates work on arrays, not Tensors.

Parameters in bfloat16 or float16 (``model.to(dg.bfloat16)``) are updated in float32: ``_update`` gets
float32 copies of the parameter and its gradient, its state (momenta, running averages) is float32,
and the result is rounded into the parameter once. (PyTorch keeps such state in the parameter's dtype.)
A group with ``master_weights=True`` keeps the parameter's float32 copy in ``state["master_weight"]``
and updates that: steps smaller than the 16-bit rounding of the parameter add up instead of being
lost. SGD, Adam and AdamW take ``master_weights`` as an argument; any optimizer takes it as an entry
of a parameter group.
"""
from __future__ import annotations

import functools
import warnings
from collections import OrderedDict, defaultdict
from itertools import chain

from distgrad import backend, dtypes
from distgrad.autograd.grad_mode import enable_grad
from distgrad.autograd.hooks import add_hook
from distgrad.autograd.node import increment_version
from distgrad.optim import foreach
from distgrad.tensor import Tensor


# Hooks around every optimizer's step (PyTorch's register_optimizer_step_pre_hook / _post_hook).
_global_step_pre_hooks: OrderedDict = OrderedDict()
_global_step_post_hooks: OrderedDict = OrderedDict()


def register_optimizer_step_pre_hook(hook):
    """``hook(optimizer, args, kwargs)`` runs before every optimizer's ``step`` (the timeline's); returns a handle."""
    return add_hook(_global_step_pre_hooks, hook)


def register_optimizer_step_post_hook(hook):
    """``hook(optimizer, args, kwargs)`` runs after every optimizer's ``step``; returns a handle."""
    return add_hook(_global_step_post_hooks, hook)


def _with_step_hooks(step):
    """``step`` running the global step hooks around it, once per call of an optimizer's step (a subclass's
    step that calls a hooked ``super().step()`` runs them once; ZeRO's local optimizer runs its own)."""
    @functools.wraps(step)
    def hooked_step(self, *args, **kwargs):
        if not (_global_step_pre_hooks or _global_step_post_hooks) or self._in_step:
            return step(self, *args, **kwargs)
        self._in_step = True
        try:
            for hook in tuple(_global_step_pre_hooks.values()):
                hook(self, args, kwargs)
            result = step(self, *args, **kwargs)
            for hook in tuple(_global_step_post_hooks.values()):
                hook(self, args, kwargs)
            return result
        finally:
            self._in_step = False
    hooked_step.runs_step_hooks = True
    return hooked_step


class _RequiredParameter:
    """The default of a hyper-parameter that every group must set itself."""

    def __repr__(self) -> str:
        return "<required parameter>"


required = _RequiredParameter()


class Optimizer:
    """Base class of all optimizers.

    Args:
        params: an iterable of Tensors, or of dicts (parameter groups) each with a ``'params'`` entry
            and any hyper-parameters that override ``defaults`` for that group.
        defaults: the hyper-parameters of groups that do not set their own.
    """

    _in_step = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "step" in cls.__dict__:  # a PyTorch-style optimizer written as its own step(): still seen stepping
            cls.step = _noting_the_call(cls.__dict__["step"])

    def __init__(self, params, defaults: dict):
        if not getattr(type(self).step, "runs_step_hooks", False):  # once per class, as PyTorch patches step
            type(self).step = _with_step_hooks(type(self).step)
        self.defaults = defaults
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of Tensors or dicts, "
                            "but got distgrad.Tensor")
        self.state: defaultdict = defaultdict(dict)
        self.param_groups: list[dict] = []
        param_groups = list(params)
        if len(param_groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]
        for group in param_groups:
            self.add_param_group(group)

    def add_param_group(self, param_group: dict) -> None:
        """Adds a group of parameters with its own hyper-parameters (the defaults fill the gaps)."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        group = dict(param_group)
        params = group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError("optimizer parameters need to be organized in ordered collections, but the ordering "
                            "of tensors in sets will change between runs. Please use a list instead.")
        group["params"] = params = list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, but one of the params is {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor")
        for name, default in self.defaults.items():
            if default is required and name not in group:
                raise ValueError(f"parameter group didn't specify a value of required optimization parameter {name}")
            group.setdefault(name, default)
        ids = {id(p) for p in params}
        if len(ids) != len(params):
            warnings.warn("optimizer contains a parameter group with duplicate parameters; in future, this will "
                          "cause an error", stacklevel=3)
        if any(id(p) in ids for g in self.param_groups for p in g["params"]):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Sets every parameter's ``.grad`` to None (default), or fills it with zeros."""
        for group in self.param_groups:
            for p in group["params"]:
                grad = p.grad
                if grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    grad.grad_fn = None
                    grad.requires_grad = False
                    grad.array.fill(0)
                    increment_version(grad)

    def step(self, closure=None):
        """Updates every parameter that has a ``.grad``; returns ``closure()``'s loss when given one.

        ``closure`` re-evaluates the model and returns the loss; it runs with gradient recording on.
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        self._opt_called = True  # read by the lr schedulers to warn when they step first
        kept: dict = {}
        for group in self.param_groups:
            mode = self._foreach_mode(group)
            if mode is None:
                for p in group["params"]:
                    if p.grad is not None:
                        self._update_one(p, group)
                        increment_version(p)
                continue
            params = [p for p in group["params"] if p.grad is not None]
            if group.get("fused"):
                for p in params:
                    foreach.check_fused(p)
            foreach.step_group(self, group, params, mode == "always", self._foreach_cache, kept)
            for p in params:
                increment_version(p)
        self._foreach_cache = kept
        return loss

    _supports_foreach = False  # SGD, Adam, AdamW: their ``_update`` is elementwise and takes flat arrays
    _foreach_cache: dict = {}  # the flat state of the last step's buckets (optim/foreach.py)

    def _foreach_mode(self, group: dict):
        """PyTorch's choice between the loops: "always" (``foreach`` or ``fused`` True), "auto" (both None:
        where it costs no copy) or None (per parameter)."""
        if not self._supports_foreach:
            return None
        foreach, fused = group.get("foreach"), group.get("fused")
        if foreach or fused:
            return "always"
        return "auto" if foreach is None and fused is None else None

    def _update_one(self, p: Tensor, group: dict) -> None:
        """The per-parameter update of ``p`` (float32 arithmetic for a 16-bit parameter)."""
        if p.array.dtype in dtypes.LOW_PRECISION:
            self._update_in_float32(p, group)
        else:
            self._update(p.array, p.grad.array, self.state[p], group)

    def _update_in_float32(self, p: Tensor, group: dict) -> None:
        """``_update`` of a 16-bit parameter on float32 arrays: its float32 master copy (with the group's
        ``master_weights``) or a float32 copy of it, rounded into the parameter afterwards."""
        state = self.state[p]
        master = state.get("master_weight")
        work = p.array.astype(dtypes.float32) if master is None else master.array
        self._update(work, p.grad.array.astype(dtypes.float32), state, group)
        if master is None and group.get("master_weights", False):
            state["master_weight"] = Tensor(work)  # after the first update: ``_update`` starts state on an empty dict
        p.array[...] = work

    def _update(self, param, grad, state: dict, group: dict) -> None:
        """Changes the array ``param`` in place, given its gradient array, its state and its group."""
        raise NotImplementedError(f"{type(self).__name__} must define _update(param, grad, state, group)")

    # --- checkpoints ---------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """``{'state': {index: {...}}, 'param_groups': [{..., 'params': [index, ...]}]}``.

        Parameters are named by their position across all groups, so the dict fits a new optimizer
        built over the same parameters in the same order. Like PyTorch, the state Tensors are the
        optimizer's own (not copies): save them, or copy them, before stepping again.
        """
        index_of: dict[int, int] = {}
        packed_groups = []
        for group in self.param_groups:
            packed = {key: value for key, value in group.items() if key != "params"}
            packed["params"] = [index_of.setdefault(id(p), len(index_of)) for p in group["params"]]
            packed_groups.append(packed)
        packed_state = {index_of[id(p)] if isinstance(p, Tensor) else p: s for p, s in self.state.items()}
        return {"state": packed_state, "param_groups": packed_groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restores hyper-parameters and state saved by ``state_dict`` (from this or an equal optimizer).

        State Tensors are copied to each parameter's device (and floating dtype), so a checkpoint
        loaded on the CPU can resume an optimizer whose parameters live on a GPU.
        """
        groups, saved_groups = self.param_groups, state_dict["param_groups"]
        if len(groups) != len(saved_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        for group, saved in zip(groups, saved_groups):
            if len(group["params"]) != len(saved["params"]):
                raise ValueError("loaded state dict contains a parameter group that doesn't match the size of "
                                 f"optimizer's group ({len(saved['params'])} saved, {len(group['params'])} here)")
        param_of = dict(zip(chain.from_iterable(g["params"] for g in saved_groups),
                            chain.from_iterable(g["params"] for g in groups)))
        state: defaultdict = defaultdict(dict)
        for key, value in state_dict["state"].items():
            param = param_of.get(key)
            if param is None:
                state[key] = value
            else:
                state[param] = {name: _state_value_for(param, name, v) for name, v in value.items()}
        self.param_groups = [{**saved, "params": group["params"]} for group, saved in zip(groups, saved_groups)]
        self.state = state

    def __repr__(self) -> str:
        lines = [type(self).__name__ + " ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines.extend(f"    {key}: {group[key]}" for key in sorted(group) if key != "params")
        return "\n".join(lines) + "\n)"


def _noting_the_call(step):
    """``step`` that first records, for the lr schedulers' order check, that the optimizer has stepped."""
    @functools.wraps(step)
    def noted_step(self, *args, **kwargs):
        self._opt_called = True
        return step(self, *args, **kwargs)
    return noted_step


def _state_value_for(param: Tensor, name: str, value):
    """A loaded state entry made ready for ``param``: Tensors copied to its device and floating dtype
    (float32 for a 16-bit parameter)."""
    if name == "step":
        return int(value.item()) if isinstance(value, Tensor) else value
    if not isinstance(value, Tensor):
        return value
    data = backend.to_device(value.array, param.device)
    floating = dtypes.is_floating_point(value.dtype) and dtypes.is_floating_point(param.dtype)
    dtype = dtypes.compute_dtype(param.dtype) if floating else value.dtype  # float32 for 16-bit parameters
    return Tensor(data.astype(dtype, copy=True))


def effective_grad(param, grad, weight_decay: float, maximize: bool):
    """The gradient a step follows: ``±grad + weight_decay * param`` (``grad`` itself when neither applies).

    Returns ``grad`` unchanged or a new array; callers never write into ``grad``, the user's ``.grad``.
    """
    if weight_decay != 0:
        out = param * weight_decay
        if maximize:
            out -= grad
        else:
            out += grad
        return out
    if maximize:
        return -grad
    return grad


def start_state(state: dict, param, *names: str) -> None:
    """A parameter's first state: ``step`` 0 and, under each of ``names``, a zero Tensor shaped like ``param``."""
    xp = backend.array_module(param)
    state["step"] = 0
    for name in names:
        state[name] = Tensor(xp.zeros_like(param))


_HYPERPARAMETER_WORDS = {"lr": "learning rate", "eps": "epsilon value"}


def check_non_negative(**hyperparameters) -> None:
    """Raises PyTorch's ``ValueError("Invalid <name>: <value>")`` for the first of ``hyperparameters``
    (in the order given) that is not at least 0."""
    for name, value in hyperparameters.items():
        if not 0.0 <= value:
            raise ValueError(f"Invalid {_HYPERPARAMETER_WORDS.get(name, name + ' value')}: {value}")


def check_adam_hyperparameters(lr: float, eps: float, betas: tuple, weight_decay: float) -> None:
    """PyTorch's checks, in its order and with its messages, for Adam and its relatives."""
    check_non_negative(lr=lr, eps=eps)
    for index, beta in enumerate(betas):
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"Invalid beta parameter at index {index}: {beta}")
    check_non_negative(weight_decay=weight_decay)
