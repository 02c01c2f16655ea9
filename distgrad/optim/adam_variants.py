"""Adam's relatives, each PyTorch's update rule: ``Adamax`` (the infinity norm), ``NAdam`` (Nesterov momentum)
and ``RAdam`` (a rectified variance). Their state is kept per parameter as Adam's is."""
from __future__ import annotations

import math

from distgrad import backend
from distgrad.optim.optimizer import (Optimizer, check_adam_hyperparameters, check_non_negative, effective_grad,
                                      start_state)


def _moments(exp_avg, exp_avg_sq, g, beta1: float, beta2: float) -> None:
    """Adam's running averages, in place: ``m = lerp(m, g, 1 - beta1)``, ``v = beta2 * v + (1 - beta2) * g * g``."""
    exp_avg += (g - exp_avg) * (1 - beta1)
    exp_avg_sq *= beta2
    exp_avg_sq += (1 - beta2) * g * g


def _decayed_grad(param, grad, group: dict):
    """The gradient after weight decay: added to it, or (``decoupled_weight_decay``) shrinking ``param`` first."""
    weight_decay = group["weight_decay"]
    if group.get("decoupled_weight_decay") and weight_decay != 0:
        param *= 1 - group["lr"] * weight_decay
        weight_decay = 0
    return effective_grad(param, grad, weight_decay, group["maximize"])


class Adamax(Optimizer):
    """Adam with the infinity norm: ``u = max(beta2 * u, |g| + eps)``; ``p -= lr / (1 - beta1**t) * m / u``."""

    def __init__(self, params, lr: float = 2e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, *, maximize: bool = False):
        check_adam_hyperparameters(lr, eps, betas, weight_decay)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      maximize=maximize))

    def _update(self, param, grad, state, group):
        xp = backend.array_module(param)
        if not state:
            start_state(state, param, "exp_avg", "exp_inf")
        state["step"] += 1
        (beta1, beta2), eps = group["betas"], group["eps"]
        g = effective_grad(param, grad, group["weight_decay"], group["maximize"])

        exp_avg, exp_inf = state["exp_avg"].array, state["exp_inf"].array
        exp_avg += (g - exp_avg) * (1 - beta1)
        exp_inf *= beta2
        xp.maximum(exp_inf, xp.abs(g) + eps, out=exp_inf)
        clr = group["lr"] / (1 - beta1 ** state["step"])
        param -= clr * exp_avg / exp_inf


class NAdam(Optimizer):
    """Adam with Nesterov momentum (Dozat, 2016): the momentum coefficient ``mu_t = beta1 * (1 - 0.5 *
    0.96**(t * momentum_decay))`` warms up, and each step mixes the gradient and the next step's momentum.
    ``decoupled_weight_decay=True`` gives NAdamW."""

    def __init__(self, params, lr: float = 2e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, momentum_decay: float = 4e-3, decoupled_weight_decay: bool = False, *,
                 maximize: bool = False):
        check_adam_hyperparameters(lr, eps, betas, weight_decay)
        check_non_negative(momentum_decay=momentum_decay)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      momentum_decay=momentum_decay, decoupled_weight_decay=decoupled_weight_decay,
                                      maximize=maximize))

    def _update(self, param, grad, state, group):
        xp = backend.array_module(param)
        if not state:
            start_state(state, param, "exp_avg", "exp_avg_sq")
            state["mu_product"] = 1.0
        state["step"] += 1
        step, lr, (beta1, beta2) = state["step"], group["lr"], group["betas"]
        g = _decayed_grad(param, grad, group)

        mu = beta1 * (1.0 - 0.5 * 0.96 ** (step * group["momentum_decay"]))
        mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((step + 1) * group["momentum_decay"]))
        state["mu_product"] *= mu
        mu_product = state["mu_product"]

        exp_avg, exp_avg_sq = state["exp_avg"].array, state["exp_avg_sq"].array
        _moments(exp_avg, exp_avg_sq, g, beta1, beta2)
        denom = xp.sqrt(exp_avg_sq / (1 - beta2 ** step))
        denom += group["eps"]
        param += (-lr * (1.0 - mu) / (1.0 - mu_product)) * g / denom
        param += (-lr * mu_next / (1.0 - mu_product * mu_next)) * exp_avg / denom


class RAdam(Optimizer):
    """Adam with a rectified adaptive rate (Liu et al., 2019): while the variance estimate is unreliable
    (``rho_t <= 5``) the step is plain momentum SGD. ``decoupled_weight_decay=True`` gives RAdamW."""

    def __init__(self, params, lr: float = 1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, decoupled_weight_decay: bool = False, *, maximize: bool = False):
        check_adam_hyperparameters(lr, eps, betas, weight_decay)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      decoupled_weight_decay=decoupled_weight_decay, maximize=maximize))

    def _update(self, param, grad, state, group):
        xp = backend.array_module(param)
        if not state:
            start_state(state, param, "exp_avg", "exp_avg_sq")
        state["step"] += 1
        step, lr, (beta1, beta2) = state["step"], group["lr"], group["betas"]
        g = _decayed_grad(param, grad, group)

        exp_avg, exp_avg_sq = state["exp_avg"].array, state["exp_avg_sq"].array
        _moments(exp_avg, exp_avg_sq, g, beta1, beta2)
        bias_correction1 = 1 - beta1 ** step
        bias_correction2 = 1 - beta2 ** step
        update = exp_avg / bias_correction1 * lr
        rho_inf = 2 / (1 - beta2) - 1  # the largest length of the approximated simple moving average
        rho_t = rho_inf - 2 * step * (beta2 ** step) / bias_correction2
        if rho_t > 5.0:
            rect = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
            update *= bias_correction2 ** 0.5 / (xp.sqrt(exp_avg_sq) + group["eps"])
            update *= rect
        param -= update
