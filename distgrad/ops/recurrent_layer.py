"""One direction of one recurrent layer over a packed batch, as one Function (``RecurrentLayer``).

Layout (``distgrad.nn.utils.rnn``): the input projections ``input_gates`` (N, G) hold time step 0 of
every sequence, then step 1 of every sequence still running, and so on; step t has
``batch_sizes[t]`` rows (never growing: sequences sorted by decreasing length, row b of every step
belongs to sequence b). A padded batch is the case of equal sizes. Per step the layer does one
product with ``w_hh`` and the gates' arithmetic:

    RNN    h = tanh(x + h W_hh^T)            (or relu)                        x: (b, H)
    LSTM   i f g o = act(x + h W_hh^T);  c = f c + i g;  h = (o tanh c) W_hr^T  x: (b, 4H)
    GRU    r z n from x and h W_hh^T + b_hh;  h = (1 - z) n + z h           x: (b, 3H)

Recorded step by step, a step is two or three nodes and its backward several more. ``RecurrentLayer``
runs the whole time loop on arrays instead, writing each step's values into buffers of N rows, and
its backward runs the loop back over them: each step's gate gradients go into an (N, G) buffer, which
is the gradient of ``input_gates`` and gives ``w_hh``'s gradient as one product at the end, rather
than one product and one sum per step. Where the batch shrinks, the rows of ended sequences leave the
state (their final states); going backward they join again from the final states' gradients.

``scan`` is the same layer written with recorded ops (``Linear`` and the fused cells of
``recurrent.py``). Under ``create_graph=True`` the backward recomputes the layer with it and
differentiates that, so second derivatives work.
"""
from __future__ import annotations

import itertools

from distgrad.autograd.function import Function
from distgrad.autograd.grad import grad as autograd_grad
from distgrad.autograd.grad_mode import enable_grad
from distgrad.backend import array_module
from distgrad.ops.autocasting import autocast_op
from distgrad.ops.elementwise import relu, tanh
from distgrad.ops.joining import cat, split
from distgrad.ops.linalg import Linear, linear
from distgrad.ops.recurrent import (GRUCellPointwise, LSTMCellPointwise, activate_lstm_gates_, gru_grads,
                                    lstm_gate_scale, lstm_grads, sigmoid_)
from distgrad.tensor import Tensor

__all__ = []  # used by distgrad.nn's RNN, LSTM and GRU


def recurrent_layer(mode: str, input: Tensor, batch_sizes: list, state: tuple, w_ih: Tensor, w_hh: Tensor,
                    b_ih: Tensor | None = None, b_hh: Tensor | None = None, w_hr: Tensor | None = None,
                    reverse: bool = False) -> tuple:
    """One direction of one layer of ``mode`` ("RNN_TANH", "RNN_RELU", "LSTM", "GRU") over a packed
    ``input`` (N, I): its outputs (N, H) and final ``state`` ((h,), or (h, c) for the LSTM), each
    sequence's after its last step (after step 0 for ``reverse``, which runs from the end).

    The input projections of all steps are one product; both biases are added there, except the
    GRU's hidden bias, which sits inside ``r * (h W_hh^T + b_hh)``.
    """
    return _LAYER_OF_MODE[mode](mode, input, batch_sizes, state, w_ih, w_hh, b_ih, b_hh, w_hr, reverse)


def _layer(mode, input, batch_sizes, state, w_ih, w_hh, b_ih, b_hh, w_hr, reverse) -> tuple:
    if mode != "GRU" and b_ih is not None:
        b_ih, b_hh = b_ih + b_hh, None
    c0 = state[1] if mode == "LSTM" else None
    out, *final = RecurrentLayer.apply(linear(input, w_ih, b_ih), state[0], c0, w_hh, b_hh, w_hr,
                                       tuple(batch_sizes), reverse, mode)
    return out, tuple(final)


# Under autocast a layer follows PyTorch's whole-layer kernels (distgrad/amp/policy.py, "<mode>_layer"):
# on CUDA cuDNN's, in the low dtype for every mode; on the CPU oneDNN's LSTM (low dtype), the RNN that
# PyTorch builds from linear (low dtype) and the GRU it builds from gru_cell, which CPU autocast leaves alone.
_LAYER_OF_MODE = {mode: autocast_op(mode.lower() + "_layer")(_layer)
                  for mode in ("RNN_TANH", "RNN_RELU", "LSTM", "GRU")}


def _order(steps: int, reverse: bool):
    return range(steps - 1, -1, -1) if reverse else range(steps)


def _join_rows(parts):
    return cat(parts) if isinstance(parts[0], Tensor) else array_module(parts[0]).concatenate(parts)


def _run(order, batch_sizes: tuple, source: tuple, step) -> tuple:
    """Runs ``state = step(t, state)`` for t in ``order``, the state's rows following ``batch_sizes[t]``:
    rows that join the state come from ``source``'s same rows, rows that leave it are kept aside.
    Returns the rows that left and the rows left at the end, together in row order."""
    rows = batch_sizes[order[0]]
    state = tuple(s if s.shape[0] == rows else s[:rows] for s in source)
    left = []  # each piece's rows lie above the next one's
    for t in order:
        size = batch_sizes[t]
        if size < rows:
            left.append(tuple(s[size:] for s in state))
            state = tuple(s[:size] for s in state)
        elif size > rows:
            state = tuple(_join_rows((s, src[rows:size])) for s, src in zip(state, source))
        rows = size
        state = step(t, state)
    return tuple(_join_rows((s,) + tuple(p[k] for p in reversed(left))) if left else s for k, s in enumerate(state))


class RecurrentLayer(Function):
    """``(input_gates, h0, c0, w_hh, b_hh, w_hr, batch_sizes, reverse, mode) -> (outputs, h_n[, c_n])``;
    ``c0`` for the LSTM only, ``b_hh`` for the GRU only (the others' biases are in ``input_gates``)."""

    arithmetic_backward = True

    @staticmethod
    def forward(ctx, input_gates, h0, c0, w_hh, b_hh, w_hr, batch_sizes, reverse, mode):
        arrays = [None if t is None else t.array for t in (input_gates, w_hh, b_hh, w_hr)]
        kernel = _KERNELS[mode](input_gates._xp, *arrays, batch_sizes, relu=mode == "RNN_RELU")
        order = _order(len(batch_sizes), reverse)
        initial = (h0.array,) if c0 is None else (h0.array, c0.array)
        # a final state may be a view of the outputs: a copy, so that writing to one leaves the other alone
        finals = tuple(s if s.base is None else s.copy() for s in _run(order, batch_sizes, initial, kernel.step))
        ctx.kernel, ctx.order, ctx.args = kernel, order, (batch_sizes, reverse, mode)
        out = Tensor(kernel.out)  # saved too: the RNN's backward reads it, so writes to it must be refused
        ctx.save_for_backward(input_gates, h0, c0, w_hh, b_hh, w_hr, out)
        return (out,) + finals

    @staticmethod
    def backward(ctx, grad_out, *grad_finals):
        if isinstance(grad_out, Tensor):  # create_graph: differentiate the layer written with recorded ops
            return _recorded_backward(ctx, ctx.saved_tensors[:6], (grad_out,) + grad_finals)
        ctx.saved_arrays  # raises if an input or the output was written to since forward
        kernel = ctx.kernel
        kernel.start_backward()
        d_initial = _run(ctx.order[::-1], ctx.args[0], grad_finals, lambda t, d: kernel.back(t, d, grad_out))
        return (kernel.d_gates, d_initial[0], d_initial[1] if len(d_initial) > 1 else None) + \
            kernel.weight_grads(*ctx.needs_input_grad[3:6]) + (None, None, None)


# --- one step forward and back, on arrays ---------------------------------------------------------
class _Kernel:
    """The buffers of one layer call (N rows each) and its steps; ``spans[t]`` are step t's rows."""

    def __init__(self, xp, input_gates, w_hh, b_hh, w_hr, batch_sizes, relu):
        self.xp, self.x, self.w_hh, self.b_hh, self.w_hr, self.relu = xp, input_gates, w_hh, b_hh, w_hr, relu
        starts = itertools.accumulate(batch_sizes[:-1], initial=0)
        self.spans = [slice(start, start + size) for start, size in zip(starts, batch_sizes)]
        self.hidden = w_hh.shape[0] // self.gates
        self.h_prev = xp.empty((input_gates.shape[0], w_hh.shape[1]), input_gates.dtype)
        self.out = xp.empty_like(self.h_prev)

    def _rows(self, size: int):
        return self.xp.empty((self.x.shape[0], size), self.x.dtype)

    def start_backward(self) -> None:
        self.d_gates = self.xp.empty_like(self.x)

    def weight_grads(self, need_w_hh: bool, need_b_hh: bool, need_w_hr: bool) -> tuple:
        """The gradients of ``w_hh``, ``b_hh`` and ``w_hr``, after the backward loop."""
        return (self.d_gates.T @ self.h_prev if need_w_hh else None), None, None


class _RNNKernel(_Kernel):
    gates = 1

    def step(self, t: int, state: tuple) -> tuple:
        xp, rows, (h,) = self.xp, self.spans[t], state
        self.h_prev[rows] = h
        h = self.out[rows]
        xp.matmul(self.h_prev[rows], self.w_hh.T, out=h)
        h += self.x[rows]
        xp.maximum(h, 0, out=h) if self.relu else xp.tanh(h, out=h)
        return (h,)

    def back(self, t: int, d_state: tuple, grad_out) -> tuple:
        rows = self.spans[t]
        d_h, h = d_state[0] + grad_out[rows], self.out[rows]
        d_pre = self.d_gates[rows]
        self.xp.multiply(d_h, (h > 0) if self.relu else 1 - h * h, out=d_pre)
        return (d_pre @ self.w_hh,)


class _LSTMKernel(_Kernel):
    gates = 4

    def __init__(self, xp, input_gates, w_hh, b_hh, w_hr, batch_sizes, relu):
        super().__init__(xp, input_gates, w_hh, b_hh, w_hr, batch_sizes, relu)
        self.act = xp.empty_like(input_gates)
        self.c_prev, self.tanh_c = self._rows(self.hidden), self._rows(self.hidden)
        self.unprojected = self._rows(self.hidden) if w_hr is not None else None  # o * tanh(c)
        self.scale, self.shift = lstm_gate_scale(xp, self.hidden, input_gates.dtype)

    def step(self, t: int, state: tuple) -> tuple:
        xp, rows, n, (h, c) = self.xp, self.spans[t], self.hidden, state
        self.h_prev[rows], self.c_prev[rows] = h, c
        act = self.act[rows]
        xp.matmul(h, self.w_hh.T, out=act)
        act += self.x[rows]
        activate_lstm_gates_(xp, act, self.scale, self.shift)
        c = act[:, n:2 * n] * c
        c += act[:, :n] * act[:, 2 * n:3 * n]
        tanh_c = self.tanh_c[rows]
        xp.tanh(c, out=tanh_c)
        h = self.out[rows]
        if self.w_hr is None:
            xp.multiply(act[:, 3 * n:], tanh_c, out=h)
        else:
            xp.multiply(act[:, 3 * n:], tanh_c, out=self.unprojected[rows])
            xp.matmul(self.unprojected[rows], self.w_hr.T, out=h)
        return h, c

    def start_backward(self) -> None:
        super().start_backward()
        self.d_h = self.xp.empty_like(self.out) if self.w_hr is not None else None

    def back(self, t: int, d_state: tuple, grad_out) -> tuple:
        rows = self.spans[t]
        d_h = d_state[0] + grad_out[rows]
        if self.w_hr is not None:
            self.d_h[rows] = d_h
            d_h = d_h @ self.w_hr
        d_gates, d_c = lstm_grads(self.act[rows], self.c_prev[rows], self.tanh_c[rows], d_h, d_state[1],
                                  out=self.d_gates[rows])
        return d_gates @ self.w_hh, d_c

    def weight_grads(self, need_w_hh: bool, need_b_hh: bool, need_w_hr: bool) -> tuple:
        d_w_hh = super().weight_grads(need_w_hh, False, False)[0]
        return d_w_hh, None, (self.d_h.T @ self.unprojected if need_w_hr else None)


class _GRUKernel(_Kernel):
    gates = 3

    def __init__(self, xp, input_gates, w_hh, b_hh, w_hr, batch_sizes, relu):
        super().__init__(xp, input_gates, w_hh, b_hh, w_hr, batch_sizes, relu)
        self.hidden_gates = xp.empty_like(input_gates)  # h W_hh^T + b_hh
        self.rz, self.n = self._rows(2 * self.hidden), self._rows(self.hidden)

    def step(self, t: int, state: tuple) -> tuple:
        xp, rows, size, (h,) = self.xp, self.spans[t], self.hidden, state
        x = self.x[rows]
        self.h_prev[rows] = h
        hidden = self.hidden_gates[rows]
        xp.matmul(h, self.w_hh.T, out=hidden)
        if self.b_hh is not None:
            hidden += self.b_hh
        rz, n = self.rz[rows], self.n[rows]
        sigmoid_(xp, xp.add(x[:, :2 * size], hidden[:, :2 * size], out=rz))
        xp.multiply(rz[:, :size], hidden[:, 2 * size:], out=n)
        n += x[:, 2 * size:]
        xp.tanh(n, out=n)
        h_next = self.out[rows]
        xp.subtract(h, n, out=h_next)
        h_next *= rz[:, size:]
        h_next += n
        return (h_next,)

    def start_backward(self) -> None:
        super().start_backward()
        self.d_hidden = self.xp.empty_like(self.x)

    def back(self, t: int, d_state: tuple, grad_out) -> tuple:
        rows, size = self.spans[t], self.hidden
        rz = self.rz[rows]
        _, d_hidden, d_h = gru_grads(rz[:, :size], rz[:, size:], self.n[rows], self.hidden_gates[rows, 2 * size:],
                                     self.h_prev[rows], d_state[0] + grad_out[rows], self.d_gates[rows],
                                     self.d_hidden[rows])
        d_h += d_hidden @ self.w_hh
        return (d_h,)

    def weight_grads(self, need_w_hh: bool, need_b_hh: bool, need_w_hr: bool) -> tuple:
        d_w_hh = self.d_hidden.T @ self.h_prev if need_w_hh else None
        return d_w_hh, (self.d_hidden.sum(axis=0) if need_b_hh else None), None


_KERNELS = {"RNN_TANH": _RNNKernel, "RNN_RELU": _RNNKernel, "LSTM": _LSTMKernel, "GRU": _GRUKernel}


def _recorded_backward(ctx, saved, grads) -> tuple:
    inputs = [t for t, needed in zip(saved, ctx.needs_input_grad) if needed]
    with enable_grad():
        outputs = scan(*saved, *ctx.args)
    found = iter(autograd_grad(outputs, inputs, grads, create_graph=True, allow_unused=True))
    return tuple(next(found) if needed else None for needed in ctx.needs_input_grad)


# --- the layer as recorded ops ---------------------------------------------------------------------
def scan(input_gates, h0, c0, w_hh, b_hh, w_hr, batch_sizes, reverse, mode) -> tuple:
    """``RecurrentLayer`` written with recorded ops, one step at a time (two or three nodes a step)."""
    steps = split(input_gates, list(batch_sizes))
    outputs = [None] * len(steps)

    def step(t, state):
        h = state[0]
        if mode == "GRU":
            state = (GRUCellPointwise.apply(steps[t], Linear.apply(h, w_hh, b_hh), h),)
        elif mode == "LSTM":
            h, c = LSTMCellPointwise.apply(Linear.apply(h, w_hh, steps[t]), state[1])
            state = (h if w_hr is None else Linear.apply(h, w_hr, None), c)
        else:
            state = ((tanh if mode == "RNN_TANH" else relu)(Linear.apply(h, w_hh, steps[t])),)
        outputs[t] = state[0]
        return state
    finals = _run(_order(len(steps), reverse), batch_sizes, (h0,) if c0 is None else (h0, c0), step)
    return (cat(outputs),) + finals
