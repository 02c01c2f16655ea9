"""RMSprop: divide the gradient by a running root-mean-square of recent gradients."""
from __future__ import annotations

from distgrad import backend
from distgrad.optim.optimizer import Optimizer, effective_grad
from distgrad.tensor import Tensor


class RMSprop(Optimizer):
    """PyTorch's RMSprop: ``v = alpha * v + (1 - alpha) * g * g``; ``d = sqrt(v) + eps`` (with
    ``centered``, ``sqrt(v - a * a) + eps`` where ``a = lerp(a, g, 1 - alpha)``); then
    ``p -= lr * g / d``, or with ``momentum``, ``b = momentum * b + g / d`` and ``p -= lr * b``.
    """

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0,
                 momentum: float = 0, centered: bool = False, *, maximize: bool = False):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= momentum:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not 0.0 <= alpha:
            raise ValueError(f"Invalid alpha value: {alpha}")
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                                      centered=centered, maximize=maximize))

    def _update(self, param, grad, state, group):
        xp = backend.array_module(param)
        if not state:
            state["step"] = 0
            state["square_avg"] = Tensor(xp.zeros_like(param))
            if group["momentum"] > 0:
                state["momentum_buffer"] = Tensor(xp.zeros_like(param))
            if group["centered"]:
                state["grad_avg"] = Tensor(xp.zeros_like(param))
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
