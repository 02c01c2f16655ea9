"""Stochastic gradient descent, with momentum, dampening, Nesterov momentum and weight decay."""
from __future__ import annotations

from distgrad import backend
from distgrad.optim.optimizer import Optimizer, check_non_negative, effective_grad
from distgrad.tensor import Tensor


class SGD(Optimizer):
    """PyTorch's SGD: ``g = grad + weight_decay * p``; ``b = momentum * b + (1 - dampening) * g``
    (``b = g`` on the first step); ``p -= lr * (g + momentum * b if nesterov else b)``.

    ``maximize=True`` ascends. PyTorch's ``foreach``/``fused``/``differentiable`` switches are absent:
    distgrad always updates each parameter's array in place. ``master_weights=True`` (distgrad's) keeps
    float32 copies of bfloat16/float16 parameters and updates those (``optim/optimizer.py``).
    """

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0, dampening: float = 0,
                 weight_decay: float = 0, nesterov: bool = False, *, maximize: bool = False,
                 master_weights: bool = False):
        check_non_negative(lr=lr, momentum=momentum, weight_decay=weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov, maximize=maximize, master_weights=master_weights))

    def _update(self, param, grad, state, group):
        lr, momentum, dampening = group["lr"], group["momentum"], group["dampening"]
        g = effective_grad(param, grad, group["weight_decay"], group["maximize"])
        direction, is_temporary = g, g is not grad
        if momentum != 0:
            buf_tensor = state.get("momentum_buffer")
            if buf_tensor is None:
                buf_tensor = state["momentum_buffer"] = Tensor(g.copy())
            else:
                buf = buf_tensor.array
                buf *= momentum
                buf += g if dampening == 0 else (1 - dampening) * g
            direction, is_temporary = buf_tensor.array, False
            if group["nesterov"]:
                direction = backend.array_module(param).multiply(direction, momentum)
                direction += g
                is_temporary = True
        if is_temporary:  # this step's own array: scale it in place rather than allocate another
            direction *= lr
            param -= direction
        else:
            param -= lr * direction
