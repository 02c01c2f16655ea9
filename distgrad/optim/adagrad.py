"""Adagrad: per-coordinate step sizes that shrink with the sum of squared gradients seen so far."""
from __future__ import annotations

from distgrad import backend, dtypes
from distgrad.optim.optimizer import Optimizer, check_non_negative, effective_grad
from distgrad.tensor import Tensor


class Adagrad(Optimizer):
    """PyTorch's Adagrad: ``s += g * g``; ``p -= lr / (1 + (t - 1) * lr_decay) * g / (sqrt(s) + eps)``,
    with ``s`` starting at ``initial_accumulator_value``.
    """

    def __init__(self, params, lr: float = 1e-2, lr_decay: float = 0, weight_decay: float = 0,
                 initial_accumulator_value: float = 0, eps: float = 1e-10, *, maximize: bool = False):
        check_non_negative(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                           initial_accumulator_value=initial_accumulator_value, eps=eps)
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, maximize=maximize))
        for group in self.param_groups:  # like PyTorch, the state exists before the first step
            for p in group["params"]:
                self._init_state(p.array, self.state[p], group)

    @staticmethod
    def _init_state(param, state, group):
        state["step"] = 0
        state["sum"] = Tensor(backend.array_module(param).full_like(param, group["initial_accumulator_value"],
                                                                    dtype=dtypes.compute_dtype(param.dtype)))

    def _update(self, param, grad, state, group):
        xp = backend.array_module(param)
        if not state:  # a parameter added later by add_param_group
            self._init_state(param, state, group)
        state["step"] += 1
        g = effective_grad(param, grad, group["weight_decay"], group["maximize"])
        clr = group["lr"] / (1 + (state["step"] - 1) * group["lr_decay"])

        state_sum = state["sum"].array
        scratch = xp.multiply(g, g)  # the one temporary array of the step, reused below
        state_sum += scratch
        denom = xp.sqrt(state_sum, out=scratch)
        denom += group["eps"]
        update = xp.divide(g, denom, out=scratch)
        update *= clr
        param -= update
