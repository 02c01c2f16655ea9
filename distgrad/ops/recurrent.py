"""Recurrent cells: the pointwise part of an LSTM and of a GRU step as one Function each, and the four
cell functions PyTorch has (``rnn_tanh_cell``, ``rnn_relu_cell``, ``lstm_cell``, ``gru_cell``).
Whole layers run over time in ``recurrent_layer.py``, which shares the gate formulas written here.

Written with elementwise ops, an LSTM step's arithmetic is ten or more recorded nodes; here it is one
(``LSTMCellPointwise``: gates (B, 4H) [i f g o] and c (B, H) -> h, c), and a GRU step's is one
(``GRUCellPointwise``: input gates (B, 3H) [r z n], hidden gates (B, 3H) and h -> h), as PyTorch's
fused ``_thnn_fused_lstm_cell``/``_thnn_fused_gru_cell``.

Both backward passes run on arrays for a first-order backward (``arithmetic_backward``). Under
``create_graph=True`` they recompute the gates' activations from the saved inputs with Tensor ops, so
the same formulas (``lstm_grads``, ``gru_grads``), applied to Tensors, can be differentiated again.

Sigmoids are computed as ``(1 + tanh(x / 2)) / 2``, so one ``tanh`` call covers all gates of a step.
"""
from __future__ import annotations

from distgrad.autograd.function import Function
from distgrad.backend import array_module
from distgrad.ops.autocasting import autocast_op
from distgrad.ops.elementwise import relu, sigmoid, tanh
from distgrad.ops.joining import cat
from distgrad.ops.linalg import linear
from distgrad.tensor import Tensor

__all__ = ["rnn_tanh_cell", "rnn_relu_cell", "lstm_cell", "gru_cell"]


def sigmoid_(xp, a):
    """``a`` replaced by its sigmoid, in place, with no overflow for any input."""
    a *= 0.5
    xp.tanh(a, out=a)
    a += 1
    a *= 0.5
    return a


def lstm_gate_scale(xp, hidden_size: int, dtype) -> tuple:
    """``(scale, shift)`` such that ``scale * tanh(scale * gates) + shift`` activates LSTM gates [i f g o]:
    sigmoid(x) = tanh(x / 2) / 2 + 1 / 2 for i, f and o, tanh for g."""
    scale = xp.full(4 * hidden_size, 0.5, dtype)
    scale[2 * hidden_size:3 * hidden_size] = 1
    return scale, 1 - scale


def activate_lstm_gates_(xp, gates, scale, shift):
    """The LSTM gates' pre-activations (B, 4H) replaced by their activations, in place."""
    gates *= scale
    xp.tanh(gates, out=gates)
    gates *= scale
    gates += shift
    return gates


def _join(parts, out=None):
    """The parts concatenated along the last dim: ``cat`` for Tensors (recorded), else into ``out``."""
    if isinstance(parts[0], Tensor):
        return cat(parts, -1)
    return array_module(parts[0]).concatenate(parts, axis=-1, out=out)


# --- LSTM -----------------------------------------------------------------------------------------
def lstm_grads(act, c, tanh_c, grad_h, grad_c, out=None):
    """The gradients of the gates' pre-activations (written into ``out`` for arrays) and of the previous
    cell state, from the activated gates ``act`` [i f g o] (arrays, or Tensors that differentiate again)."""
    n = c.shape[-1]
    i, f, g, o = act[..., :n], act[..., n:2 * n], act[..., 2 * n:3 * n], act[..., 3 * n:]
    slope = act * (1 - act)  # the sigmoid gates' derivatives, in two calls for all (the g part is unused)
    grad_c = grad_c + grad_h * o * (1 - tanh_c * tanh_c)
    grad_gates = _join((grad_c * g * slope[..., :n], grad_c * c * slope[..., n:2 * n], grad_c * i * (1 - g * g),
                        grad_h * tanh_c * slope[..., 3 * n:]), out)
    return grad_gates, grad_c * f


class LSTMCellPointwise(Function):
    """``gates`` (B, 4H) pre-activations [i f g o], ``c`` (B, H) -> ``(h, c_next)``:
    ``c_next = sigmoid(f) * c + sigmoid(i) * tanh(g)``, ``h = sigmoid(o) * tanh(c_next)``."""

    arithmetic_backward = True

    @staticmethod
    def forward(ctx, gates, c):
        xp, n = gates._xp, c.shape[-1]
        act = activate_lstm_gates_(xp, gates.array.copy(), *lstm_gate_scale(xp, n, gates.dtype))
        c_next = act[..., n:2 * n] * c.array
        c_next += act[..., :n] * act[..., 2 * n:3 * n]
        tanh_c = xp.tanh(c_next)
        ctx.save_for_backward(gates, c)
        ctx.act, ctx.tanh_c = act, tanh_c
        return act[..., 3 * n:] * tanh_c, c_next

    @staticmethod
    def backward(ctx, grad_h, grad_c):
        if isinstance(grad_h, Tensor):  # create_graph: activations as functions of the inputs
            gates, c = ctx.saved_tensors
            n = c.shape[-1]
            act = cat((sigmoid(gates[..., :2 * n]), tanh(gates[..., 2 * n:3 * n]), sigmoid(gates[..., 3 * n:])), -1)
            tanh_c = tanh(act[..., n:2 * n] * c + act[..., :n] * act[..., 2 * n:3 * n])
            return lstm_grads(act, c, tanh_c, grad_h, grad_c)
        return lstm_grads(ctx.act, ctx.saved_arrays[1], ctx.tanh_c, grad_h, grad_c)


# --- GRU ------------------------------------------------------------------------------------------
def gru_grads(r, z, n, hidden_n, h, grad, out_input=None, out_hidden=None):
    """The gradients of the input gates, of the hidden gates (for arrays: written into ``out_input``
    and ``out_hidden``) and of the previous hidden state."""
    grad_n = grad * (1 - z) * (1 - n * n)
    grad_r = grad_n * hidden_n * r * (1 - r)
    grad_z = grad * (h - n) * z * (1 - z)
    return _join((grad_r, grad_z, grad_n), out_input), _join((grad_r, grad_z, grad_n * r), out_hidden), grad * z


class GRUCellPointwise(Function):
    """``input_gates``, ``hidden_gates`` (B, 3H) [r z n] and ``h`` (B, H) -> the next ``h``:
    ``r, z = sigmoid(x_rz + h_rz)``, ``n = tanh(x_n + r * h_n)``, ``h_next = (1 - z) * n + z * h``."""

    arithmetic_backward = True

    @staticmethod
    def forward(ctx, input_gates, hidden_gates, h):
        xp, size = h._xp, h.shape[-1]
        x, hg = input_gates.array, hidden_gates.array
        rz = sigmoid_(xp, x[..., :2 * size] + hg[..., :2 * size])
        r, z = rz[..., :size], rz[..., size:]
        n = r * hg[..., 2 * size:]
        n += x[..., 2 * size:]
        xp.tanh(n, out=n)
        ctx.save_for_backward(input_gates, hidden_gates, h)
        ctx.r, ctx.z, ctx.n = r, z, n
        h_next = h.array - n
        h_next *= z
        h_next += n
        return h_next

    @staticmethod
    def backward(ctx, grad):
        if isinstance(grad, Tensor):  # create_graph: activations as functions of the inputs
            x, hg, h = ctx.saved_tensors
            size = h.shape[-1]
            rz = sigmoid(x[..., :2 * size] + hg[..., :2 * size])
            r, z = rz[..., :size], rz[..., size:]
            n = tanh(x[..., 2 * size:] + r * hg[..., 2 * size:])
            return gru_grads(r, z, n, hg[..., 2 * size:], h, grad)
        _, hg, h = ctx.saved_arrays
        return gru_grads(ctx.r, ctx.z, ctx.n, hg[..., 2 * h.shape[-1]:], h, grad)


# --- the cells, with PyTorch's signatures ----------------------------------------------------------
def rnn_tanh_cell(input: Tensor, hx: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None = None,
                  b_hh: Tensor | None = None) -> Tensor:
    """``tanh(input @ w_ih.T + b_ih + hx @ w_hh.T + b_hh)``."""
    return tanh(linear(input, w_ih, b_ih) + linear(hx, w_hh, b_hh))


def rnn_relu_cell(input: Tensor, hx: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None = None,
                  b_hh: Tensor | None = None) -> Tensor:
    """``relu(input @ w_ih.T + b_ih + hx @ w_hh.T + b_hh)``."""
    return relu(linear(input, w_ih, b_ih) + linear(hx, w_hh, b_hh))


@autocast_op()
def lstm_cell(input: Tensor, hx: tuple, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None = None,
              b_hh: Tensor | None = None) -> tuple:
    """One LSTM step: ``(h, c)`` from ``input`` (B, I) and ``hx = (h, c)``; gates in the order i, f, g, o."""
    h, c = hx
    return LSTMCellPointwise.apply(linear(input, w_ih, b_ih) + linear(h, w_hh, b_hh), c)


@autocast_op()
def gru_cell(input: Tensor, hx: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None = None,
             b_hh: Tensor | None = None) -> Tensor:
    """One GRU step: the next ``h`` from ``input`` (B, I) and ``hx`` (B, H); gates in the order r, z, n."""
    return GRUCellPointwise.apply(linear(input, w_ih, b_ih), linear(hx, w_hh, b_hh), hx)
