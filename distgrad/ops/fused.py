"""Ops that exist to be fused on the GPU: ``bias_activation`` (``activation(input + bias)``) and
``dropout_add`` (``dropout(input) + residual``, defined in ``dropout.py``). On the CPU, or where the kernel
does not apply, each is the composition of the ops it fuses; on the GPU it is one kernel each way
(``distgrad.kernels.pointwise``).

They are not PyTorch functions, so the op families do not re-export them as ``dg.*``: import them from
``distgrad.ops.fused``.
"""
from __future__ import annotations

from distgrad.autograd.function import Function
from distgrad.autograd.grad_mode import is_grad_enabled
from distgrad.kernels import pointwise as pointwise_kernels
from distgrad.ops.broadcast import sum_to
from distgrad.ops.dropout import dropout_add
from distgrad.ops.elementwise import GELU_KERNELS, gelu, gelu_chain, relu
from distgrad.tensor import Tensor

__all__ = ["bias_activation", "dropout_add"]
_GELU_APPROXIMATIONS = {kernel: approximate for approximate, kernel in GELU_KERNELS.items()}


class BiasActivation(Function):
    """``activation(input + bias)`` in one GPU kernel; backward recomputes ``input + bias`` (nothing saved
    but the inputs) and sums the bias gradient over the leading dims."""

    @staticmethod
    def forward(ctx, input, bias, activation):
        ctx.activation = activation
        ctx.save_for_backward(input, bias)
        return pointwise_kernels.bias_act(input.array, bias.array, activation)

    @staticmethod
    def backward(ctx, grad):
        input, bias = ctx.saved_tensors
        if is_grad_enabled():  # create_graph: the chain rule in Tensor ops, differentiable again
            pre = input + bias
            grad_input = grad * (pre > 0) if ctx.activation == "relu" else \
                gelu_chain(grad, pre, _GELU_APPROXIMATIONS[ctx.activation])
        else:
            grad_input = Tensor(pointwise_kernels.bias_act_backward(grad.array, input.array, bias.array,
                                                                    ctx.activation))
        return grad_input, sum_to(grad_input, bias.shape) if ctx.needs_input_grad[1] else None, None


def bias_activation(input: Tensor, bias: Tensor, activation: str = "relu") -> Tensor:
    """``activation(input + bias)`` with ``bias`` along the last dim; ``activation`` is 'relu', 'gelu' (erf)
    or 'gelu_tanh'. ``F.linear`` without its bias followed by this is a linear layer with a fused epilogue."""
    if activation == "relu":
        composed = lambda: relu(input + bias)  # noqa: E731
    elif activation in _GELU_APPROXIMATIONS:
        composed = lambda: gelu(input + bias, approximate=_GELU_APPROXIMATIONS[activation])  # noqa: E731
    else:
        raise ValueError(f"bias_activation: activation must be 'relu', 'gelu' or 'gelu_tanh', got {activation!r}")
    if pointwise_kernels.bias_applies(input.array, bias.array):
        return BiasActivation.apply(input, bias, activation)
    return composed()
