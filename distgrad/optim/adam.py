"""Adam and AdamW: bias-corrected running averages of the gradient and of its square."""
from __future__ import annotations

from distgrad import backend
from distgrad.optim.foreach import check_flags
from distgrad.optim.optimizer import Optimizer, check_adam_hyperparameters, effective_grad, start_state


class Adam(Optimizer):
    """PyTorch's Adam (Kingma & Ba), with the AMSGrad variant and optional decoupled weight decay.

    Per parameter: ``m = lerp(m, g, 1 - beta1)``, ``v = beta2 * v + (1 - beta2) * g * g``,
    ``p -= lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)``, where ``v`` is the running
    maximum of itself under ``amsgrad``. ``weight_decay`` adds ``weight_decay * p`` to the gradient, or,
    with ``decoupled_weight_decay=True`` (AdamW), shrinks ``p`` by ``lr * weight_decay`` first.
    ``master_weights=True`` (distgrad's) keeps float32 copies of bfloat16/float16 parameters and updates
    those (``optim/optimizer.py``). ``foreach``/``fused``: as in ``SGD`` (one flat update per dtype and
    device; ``optim/foreach.py``). ``capturable`` and ``differentiable`` are absent.
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, amsgrad: bool = False, *, foreach: bool | None = None,
                 maximize: bool = False, fused: bool | None = None, decoupled_weight_decay: bool = False,
                 master_weights: bool = False):
        check_adam_hyperparameters(lr, eps, betas, weight_decay)
        check_flags(foreach, fused)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize, foreach=foreach, fused=fused,
                                      decoupled_weight_decay=decoupled_weight_decay, master_weights=master_weights))

    _supports_foreach = True

    def _update(self, param, grad, state, group):
        xp = backend.array_module(param)
        if not state:
            start_state(state, param, "exp_avg", "exp_avg_sq", *(("max_exp_avg_sq",) if group["amsgrad"] else ()))
        state["step"] += 1
        step = state["step"]
        lr, (beta1, beta2), weight_decay = group["lr"], group["betas"], group["weight_decay"]

        if group["decoupled_weight_decay"]:
            if weight_decay != 0:
                param *= 1 - lr * weight_decay
            g = effective_grad(param, grad, 0, group["maximize"])
        else:
            g = effective_grad(param, grad, weight_decay, group["maximize"])

        exp_avg, exp_avg_sq = state["exp_avg"].array, state["exp_avg_sq"].array
        scratch = xp.subtract(g, exp_avg)  # the one temporary array of the step, reused below
        scratch *= 1 - beta1
        exp_avg += scratch
        xp.multiply(g, g, out=scratch)
        scratch *= 1 - beta2
        exp_avg_sq *= beta2
        exp_avg_sq += scratch

        second_moment = exp_avg_sq
        if group["amsgrad"]:
            second_moment = state["max_exp_avg_sq"].array
            xp.maximum(second_moment, exp_avg_sq, out=second_moment)
        denom = xp.sqrt(second_moment, out=scratch)
        denom /= (1 - beta2 ** step) ** 0.5
        denom += group["eps"]
        update = xp.divide(exp_avg, denom, out=scratch)
        update *= lr / (1 - beta1 ** step)
        param -= update


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): ``p *= 1 - lr * weight_decay`` each step."""

    def __init__(self, params, lr: float = 1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *, maximize: bool = False,
                 foreach: bool | None = None, fused: bool | None = None, master_weights: bool = False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach, maximize=maximize,
                         fused=fused, decoupled_weight_decay=True, master_weights=master_weights)
