"""``GradScaler``: loss scaling for float16 training, PyTorch's ``torch.amp.GradScaler``.

float16 keeps 5 exponent bits: gradients below about 6e-8 flush to zero. The scaler multiplies the
loss by ``scale`` (2**16 at first) before backward, so every gradient is ``scale`` times larger;
``unscale_`` divides them back in place and notes whether any is inf or NaN; ``step`` skips the
optimizer's step when one was; ``update`` multiplies the scale by ``backoff_factor`` (0.5) after a
skipped step and by ``growth_factor`` (2) after ``growth_interval`` (2000) steps in a row without
one. The scale is a float32, updated as PyTorch's kernel does, so both give the same sequence.

Data parallel: the ranks step on the same averaged gradients, but an inf that one rank alone sees
(a gradient it changed after the reduction, a bucket of its own that overflowed) would make it skip
alone and fork the model. So whenever the default process group has more than one rank,
``unscale_`` all-reduces the overflow flag (MAX): every rank skips the same steps and keeps the same
scale. ``unscale_`` (or ``step``) is then a collective: every rank calls it for the same optimizers
in the same order, as a data-parallel loop does.
"""
from __future__ import annotations

import enum
import warnings
from collections import defaultdict

import numpy as np

from distgrad import backend
from distgrad.autograd.node import increment_version
from distgrad.dtypes import float16
from distgrad.tensor import Tensor

__all__ = ["GradScaler", "OptState"]


class OptState(enum.Enum):
    READY = 0
    UNSCALED = 1
    STEPPED = 2


def _refresh_per_optimizer_state() -> dict:
    return {"stage": OptState.READY, "found_inf_per_device": {}}


class GradScaler:
    """Scales the loss, unscales the gradients, skips steps with inf/NaN gradients, adapts the scale.

    ``device`` is "cuda" (PyTorch's default; without a GPU the scaler warns and disables itself, as
    PyTorch's) or "cpu". A disabled scaler's methods do nothing (``scale`` returns its input, ``step``
    calls ``optimizer.step``), so one loop serves float16 and float32. Typical use::

        scaler = dg.amp.GradScaler("cuda")
        with dg.autocast("cuda", dtype=dg.float16):
            loss = loss_fn(model(x), y)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)               # optional: clip the true gradients
        dg.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(optimizer)                   # skipped when a gradient is inf/NaN
        scaler.update()
    """

    def __init__(self, device: str = "cuda", init_scale: float = 2.0 ** 16, growth_factor: float = 2.0,
                 backoff_factor: float = 0.5, growth_interval: int = 2000, enabled: bool = True):
        self._device = device
        if enabled and device == "cuda" and not backend.cuda_is_available():
            warnings.warn("distgrad.cuda.amp.GradScaler is enabled, but CUDA is not available.  Disabling.",
                          stacklevel=2)
            enabled = False
        self._enabled = enabled
        if enabled:
            if growth_factor <= 1.0:
                raise AssertionError("The growth factor must be > 1.0.")
            if backoff_factor >= 1.0:
                raise AssertionError("The backoff factor must be < 1.0.")
            self._init_scale = init_scale
            self._scale = None  # a float32, set by the first scale()
            self._growth_factor = growth_factor
            self._backoff_factor = backoff_factor
            self._growth_interval = growth_interval
            self._init_growth_tracker = 0
            self._growth_tracker = None  # successful steps in a row since the scale last changed
            self._per_optimizer_states = defaultdict(_refresh_per_optimizer_state)

    def _check_scale_growth_tracker(self, funcname: str) -> None:
        fix = "This may indicate your script did not use scaler.scale(loss or outputs) earlier in the iteration."
        if self._scale is None:
            raise AssertionError(f"Attempted {funcname} but _scale is None.  " + fix)
        if self._growth_tracker is None:
            raise AssertionError(f"Attempted {funcname} but _growth_tracker is None.  " + fix)

    def scale(self, outputs):
        """``outputs`` (a Tensor, or nested lists/tuples of them) multiplied by the scale (a recorded op)."""
        if not self._enabled:
            return outputs
        if self._scale is None:
            self._scale = np.float32(self._init_scale)
            self._growth_tracker = self._init_growth_tracker
        factor = float(self._scale)

        def apply(value):
            if isinstance(value, Tensor):
                return value * factor
            if isinstance(value, (list, tuple)):
                return type(value)(apply(v) for v in value)
            raise ValueError("outputs must be a Tensor or an iterable of Tensors")
        return apply(outputs)

    def unscale_(self, optimizer) -> None:
        """Divides ``optimizer``'s gradients by the scale, in place, and records whether any is inf/NaN
        (agreed across ranks: see the module's docstring). At most once per optimizer per ``update``."""
        if not self._enabled:
            return
        self._check_scale_growth_tracker("unscale_")
        optimizer_state = self._per_optimizer_states[id(optimizer)]
        if optimizer_state["stage"] is OptState.UNSCALED:
            raise RuntimeError("unscale_() has already been called on this optimizer since the last update().")
        if optimizer_state["stage"] is OptState.STEPPED:
            raise RuntimeError("unscale_() is being called after step().")
        inv_scale = float(np.float32(1.0 / float(self._scale)))  # PyTorch: the float64 reciprocal, as float32
        found = _unscale_grads(optimizer, inv_scale)
        optimizer_state["found_inf_per_device"] = _agreed_across_ranks(found)
        optimizer_state["stage"] = OptState.UNSCALED

    def step(self, optimizer, *args, **kwargs):
        """``optimizer.step(*args, **kwargs)`` after ``unscale_`` (if not called yet), unless a gradient
        was inf/NaN: then the step is skipped and None returned."""
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        if "closure" in kwargs:
            raise RuntimeError("Closure use is not currently supported if GradScaler is enabled.")
        self._check_scale_growth_tracker("step")
        optimizer_state = self._per_optimizer_states[id(optimizer)]
        if optimizer_state["stage"] is OptState.STEPPED:
            raise RuntimeError("step() has already been called since the last update().")
        if optimizer_state["stage"] is OptState.READY:
            self.unscale_(optimizer)
        if not optimizer_state["found_inf_per_device"]:
            raise AssertionError("No inf checks were recorded for this optimizer.")
        retval = None
        if not sum(optimizer_state["found_inf_per_device"].values()):
            retval = optimizer.step(*args, **kwargs)
        optimizer_state["stage"] = OptState.STEPPED
        return retval

    def update(self, new_scale=None) -> None:
        """Adapts the scale to the steps since the last ``update`` (or sets it to ``new_scale``)."""
        if not self._enabled:
            return
        self._check_scale_growth_tracker("update")
        if new_scale is not None:
            if isinstance(new_scale, Tensor):
                reason = "new_scale should be a float or a 1-element distgrad.Tensor with requires_grad=False."
                if new_scale.numel() != 1 or new_scale.requires_grad:
                    raise AssertionError(reason)
                new_scale = new_scale.item()
            self._scale = np.float32(new_scale)
        else:
            found_infs = [found for state in self._per_optimizer_states.values()
                          for found in state["found_inf_per_device"].values()]
            if not found_infs:
                raise AssertionError("No inf checks were recorded prior to update.")
            self._update_scale(sum(found_infs))
        self._per_optimizer_states = defaultdict(_refresh_per_optimizer_state)

    def _update_scale(self, found_inf: float) -> None:
        """PyTorch's ``_amp_update_scale_``: the float32 scale times a float64 factor, rounded to float32."""
        if found_inf:
            self._scale = np.float32(float(self._scale) * self._backoff_factor)
            self._growth_tracker = 0
            return
        successful = self._growth_tracker + 1
        if successful == self._growth_interval:
            with np.errstate(over="ignore"):  # beyond float32's range: inf, and the scale stays
                grown = np.float32(float(self._scale) * self._growth_factor)
            if np.isfinite(grown):
                self._scale = grown
            self._growth_tracker = 0
        else:
            self._growth_tracker = successful

    # --- settings and checkpoints ----------------------------------------------------------------
    def get_scale(self) -> float:
        """The current scale (``init_scale`` before the first ``scale``; 1.0 when disabled)."""
        if not self._enabled:
            return 1.0
        return self._init_scale if self._scale is None else float(self._scale)

    def get_growth_factor(self) -> float:
        return self._growth_factor

    def set_growth_factor(self, new_factor: float) -> None:
        self._growth_factor = new_factor

    def get_backoff_factor(self) -> float:
        return self._backoff_factor

    def set_backoff_factor(self, new_factor: float) -> None:
        self._backoff_factor = new_factor

    def get_growth_interval(self) -> int:
        return self._growth_interval

    def set_growth_interval(self, new_interval: int) -> None:
        self._growth_interval = new_interval

    def _get_growth_tracker(self) -> int:
        if not self._enabled:
            return 0
        return self._init_growth_tracker if self._growth_tracker is None else self._growth_tracker

    def is_enabled(self) -> bool:
        return self._enabled

    def state_dict(self) -> dict:
        """``{'scale', 'growth_factor', 'backoff_factor', 'growth_interval', '_growth_tracker'}`` (empty when
        disabled): save it with the model and optimizer so that a resumed run continues with its scale."""
        if not self._enabled:
            return {}
        return {"scale": self.get_scale(), "growth_factor": self._growth_factor,
                "backoff_factor": self._backoff_factor, "growth_interval": self._growth_interval,
                "_growth_tracker": self._get_growth_tracker()}

    def load_state_dict(self, state_dict: dict) -> None:
        if not self._enabled:
            return
        if len(state_dict) == 0:
            raise RuntimeError("The source state dict is empty, possibly because it was saved from a disabled "
                               "instance of GradScaler.")
        self._init_scale = state_dict["scale"]
        if self._scale is not None:
            self._scale = np.float32(state_dict["scale"])
        self._growth_factor = state_dict["growth_factor"]
        self._backoff_factor = state_dict["backoff_factor"]
        self._growth_interval = state_dict["growth_interval"]
        self._init_growth_tracker = state_dict["_growth_tracker"]
        if self._growth_tracker is not None:
            self._growth_tracker = state_dict["_growth_tracker"]


def _unscale_grads(optimizer, inv_scale: float) -> dict:
    """Multiplies every gradient of ``optimizer`` by ``inv_scale`` in place; returns ``{device: 1.0 if a
    gradient there held inf or NaN before, else 0.0}`` for the devices that hold gradients."""
    found = {}
    flags = defaultdict(list)
    for group in optimizer.param_groups:
        for param in group["params"]:
            grad = param.grad
            if grad is None:
                continue
            if grad.dtype == float16:
                raise ValueError("Attempting to unscale FP16 gradients.")
            a = grad.array
            xp = backend.array_module(a)
            flags[grad.device].append(xp.isfinite(a).all())  # a device scalar: one host read per device below
            a *= inv_scale  # a Python float keeps bfloat16 gradients bfloat16
            increment_version(grad)
    for device, finite in flags.items():
        found[device] = 0.0 if bool(backend.array_module(finite[0]).stack(finite).all()) else 1.0
    return found


def _agreed_across_ranks(found: dict) -> dict:
    """``found`` with its flags replaced by their maximum over the ranks of the default process group
    (of more than one rank); unchanged outside data-parallel runs."""
    import distgrad.distributed as dist

    if not (dist.is_initialized() and dist.get_world_size() > 1):
        return found
    flag = Tensor(np.array([max(found.values(), default=0.0)], dtype=np.float32))
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    agreed = float(flag.array[0])
    return {device: agreed for device in found} if found else {backend.CPU: agreed}
