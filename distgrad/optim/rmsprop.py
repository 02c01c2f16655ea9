"""RMSprop: divide the gradient by a running root-mean-square of recent gradients."""
from __future__ import annotations

from distgrad import backend
from distgrad.optim.optimizer import Optimizer, check_non_negative, effective_grad, start_state


class RMSprop(Optimizer):
    """PyTorch's RMSprop: ``v = alpha * v + (1 - alpha) * g * g``; ``d = sqrt(v) + eps`` (with
    ``centered``, ``sqrt(v - a * a) + eps`` where ``a = lerp(a, g, 1 - alpha)``); then
    ``p -= lr * g / d``, or with ``momentum``, ``b = momentum * b + g / d`` and ``p -= lr * b``.
    """

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0,
                 momentum: float = 0, centered: bool = False, *, maximize: bool = False):
        check_non_negative(lr=lr, eps=eps, momentum=momentum, weight_decay=weight_decay, alpha=alpha)
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                                      centered=centered, maximize=maximize))

    def _update(self, param, grad, state, group):
        xp = backend.array_module(param)
        if not state:
            start_state(state, param, "square_avg", *(("momentum_buffer",) if group["momentum"] > 0 else ()),
                        *(("grad_avg",) if group["centered"] else ()))
        state["step"] += 1
        alpha, momentum = group["alpha"], group["momentum"]
        g = effective_grad(param, grad, group["weight_decay"], group["maximize"])

        square_avg = state["square_avg"].array
        scratch = xp.multiply(g, g)  # the one temporary array of the step, reused below
        scratch *= 1 - alpha
        square_avg *= alpha
        square_avg += scratch
        if group["centered"]:
            grad_avg = state["grad_avg"].array
            xp.subtract(g, grad_avg, out=scratch)
            scratch *= 1 - alpha
            grad_avg += scratch
            xp.multiply(grad_avg, grad_avg, out=scratch)
            xp.subtract(square_avg, scratch, out=scratch)
            denom = xp.sqrt(scratch, out=scratch)
        else:
            denom = xp.sqrt(square_avg, out=scratch)
        denom += group["eps"]

        normalized = xp.divide(g, denom, out=scratch)
        if momentum > 0:
            buf = state["momentum_buffer"].array
            buf *= momentum
            buf += normalized
            normalized = xp.multiply(buf, group["lr"], out=scratch)
        else:
            normalized *= group["lr"]
        param -= normalized
