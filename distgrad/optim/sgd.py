"""Stochastic gradient descent, with momentum, dampening, Nesterov momentum and weight decay."""
from __future__ import annotations

from distgrad import backend
from distgrad.optim.foreach import check_flags
from distgrad.optim.optimizer import Optimizer, check_non_negative, effective_grad
from distgrad.tensor import Tensor


class SGD(Optimizer):
    """PyTorch's SGD: ``g = grad + weight_decay * p``; ``b = momentum * b + (1 - dampening) * g``
    (``b = g`` on the first step); ``p -= lr * (g + momentum * b if nesterov else b)``.

    ``maximize=True`` ascends. ``master_weights=True`` (distgrad's) keeps float32 copies of bfloat16/float16
    parameters and updates those (``optim/optimizer.py``).

    ``foreach``/``fused`` as PyTorch's: True updates all parameters of a dtype and device in a few array
    operations over one flat buffer (``optim/foreach.py``; ``fused`` is the same path, refused for
    parameters not floating point on the CPU or a GPU); False, one parameter at a time; both None (the
    default) picks the flat path on a GPU (as PyTorch) and, unlike PyTorch, over parameters flattened by
    ``nn.utils.flatten_parameters`` (no copy needed there). bfloat16/float16 parameters are always
    updated one at a time. ``differentiable`` is absent.
    """

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0, dampening: float = 0,
                 weight_decay: float = 0, nesterov: bool = False, *, maximize: bool = False,
                 foreach: bool | None = None, fused: bool | None = None, master_weights: bool = False):
        check_non_negative(lr=lr, momentum=momentum, weight_decay=weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        check_flags(foreach, fused)
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov, maximize=maximize, foreach=foreach, fused=fused,
                                      master_weights=master_weights))

    _supports_foreach = True

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
