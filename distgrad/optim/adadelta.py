"""Adadelta: steps scaled by the ratio of running RMS of past updates to running RMS of gradients."""
from __future__ import annotations

from distgrad import backend
from distgrad.optim.optimizer import Optimizer, check_non_negative, effective_grad, start_state


class Adadelta(Optimizer):
    """PyTorch's Adadelta (Zeiler, 2012): ``v = rho * v + (1 - rho) * g * g``;
    ``d = sqrt(u + eps) / sqrt(v + eps) * g``; ``u = rho * u + (1 - rho) * d * d``; ``p -= lr * d``.
    """

    def __init__(self, params, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6, weight_decay: float = 0, *,
                 maximize: bool = False):
        check_non_negative(lr=lr)
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"Invalid rho value: {rho}")
        check_non_negative(eps=eps, weight_decay=weight_decay)
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize))

    def _update(self, param, grad, state, group):
        xp = backend.array_module(param)
        if not state:
            start_state(state, param, "square_avg", "acc_delta")
        state["step"] += 1
        rho, eps = group["rho"], group["eps"]
        g = effective_grad(param, grad, group["weight_decay"], group["maximize"])

        square_avg, acc_delta = state["square_avg"].array, state["acc_delta"].array
        square_avg *= rho
        square_avg += (1 - rho) * g * g
        delta = xp.sqrt(acc_delta + eps)
        delta /= xp.sqrt(square_avg + eps)
        delta *= g
        acc_delta *= rho
        acc_delta += (1 - rho) * delta * delta
        delta *= group["lr"]
        param -= delta
