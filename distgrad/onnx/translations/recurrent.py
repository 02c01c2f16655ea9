"""Recurrent layers as ONNX's own ``RNN``/``LSTM``/``GRU`` ops, and the fused LSTM and GRU cell steps.

distgrad's ``RecurrentLayer`` takes the input projections of all steps, ``x W_ih^T + b``, already
computed (one ``Linear`` before it). The ONNX op is given them as its input ``X`` with an identity for
``W`` (rows permuted: ONNX stacks the LSTM's gates i, o, f, c and the GRU's z, r, h, where PyTorch
stacks i, f, g, o and r, z, n), ``R`` = ``w_hh`` with its rows permuted alike, and for the GRU the
hidden bias (``linear_before_reset=1`` is PyTorch's GRU). One direction of one layer per op, over a
padded batch: packed sequences of different lengths, and LSTM projections, are refused.
"""
from __future__ import annotations

import numpy as np

from distgrad.ops.recurrent import GRUCellPointwise, LSTMCellPointwise
from distgrad.ops.recurrent_layer import RecurrentLayer
from distgrad.onnx.registry import translates

_GATE_ORDER = {"LSTM": (0, 3, 1, 2), "GRU": (1, 0, 2), "RNN_TANH": (0,), "RNN_RELU": (0,)}
_OP_TYPE = {"LSTM": "LSTM", "GRU": "GRU", "RNN_TANH": "RNN", "RNN_RELU": "RNN"}


@translates(RecurrentLayer, varying=(6,))
def _recurrent_layer(e):
    gates, h0, c0, w_hh, b_hh, w_hr, batch_sizes, reverse, mode = e.args
    if len(set(batch_sizes)) > 1:
        e.unsupported("a packed batch of sequences of different lengths (export a padded batch)")
    if w_hr is not None:
        e.unsupported("an LSTM with proj_size (ONNX's LSTM has no projection)")
    dtype = e.out_dtype()
    steps, size, hidden = len(batch_sizes), gates.shape[1], h0.shape[1]
    order = np.concatenate([np.arange(hidden) + g * hidden for g in _GATE_ORDER[mode]])
    batch = e.dims(h0)[0]
    x = e.reshape(e.input(0), e.dims(gates), (steps, batch, size))
    w = e.const(np.eye(size, dtype=dtype)[order][None], "gate_identity")
    r = e.add("Unsqueeze", [e.add("Gather", [e.input(3), e.ints(order)], axis=0), e.ints([0])])
    inputs = [x, w, r]
    attrs = {"hidden_size": hidden, "direction": "reverse" if reverse else "forward"}
    if mode == "GRU":
        attrs["linear_before_reset"] = 1
        if b_hh is not None:
            hidden_bias = e.add("Gather", [e.input(4), e.ints(order)], axis=0)
            bias = e.add("Concat", [e.const(np.zeros(size, dtype), "zeros"), hidden_bias], axis=0)
            inputs.append(e.add("Unsqueeze", [bias, e.ints([0])]))
    elif mode != "LSTM":
        attrs["activations"] = ["Tanh" if mode == "RNN_TANH" else "Relu"]
    inputs += [None] * (4 - len(inputs)) + [None, e.add("Unsqueeze", [e.input(1), e.ints([0])])]
    if mode == "LSTM":
        inputs.append(e.add("Unsqueeze", [e.input(2), e.ints([0])]))
    outputs = e.add(_OP_TYPE[mode], inputs, outputs=3 if mode == "LSTM" else 2, **attrs)
    y = e.add("Squeeze", [outputs[0], e.ints([1])])  # (T, 1, B, H) -> (T, B, H)
    out = e.reshape(y, (steps, batch, hidden), e.out_dims(0))
    finals = [e.add("Squeeze", [o, e.ints([0])]) for o in outputs[1:]]
    return (out, *finals)


def _gates(e, name: str, count: int, size: int) -> list:
    return e.add("Split", [name, e.ints([size] * count)], outputs=count, axis=-1)


@translates(LSTMCellPointwise)
def _lstm_cell(e):
    gates, c = e.args
    i, f, g, o = _gates(e, e.input(0), 4, c.shape[-1])
    i, f, o = (e.add("Sigmoid", [t]) for t in (i, f, o))
    c_next = e.add("Add", [e.add("Mul", [f, e.input(1)]), e.add("Mul", [i, e.add("Tanh", [g])])])
    return e.add("Mul", [o, e.add("Tanh", [c_next])]), c_next


@translates(GRUCellPointwise)
def _gru_cell(e):
    x, hidden_gates, h = e.args
    size = h.shape[-1]
    xr, xz, xn = _gates(e, e.input(0), 3, size)
    hr, hz, hn = _gates(e, e.input(1), 3, size)
    r = e.add("Sigmoid", [e.add("Add", [xr, hr])])
    z = e.add("Sigmoid", [e.add("Add", [xz, hz])])
    n = e.add("Tanh", [e.add("Add", [xn, e.add("Mul", [r, hn])])])
    return e.add("Add", [n, e.add("Mul", [z, e.add("Sub", [e.input(2), n])])])
