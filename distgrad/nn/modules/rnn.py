"""Recurrent layers with PyTorch's API and parameters: ``RNN``, ``LSTM``, ``GRU`` and their cells.

Parameters carry PyTorch's names and layouts (``weight_ih_l{k}``, ``weight_hh_l{k}``, ``bias_ih_l{k}``,
``bias_hh_l{k}``, ``weight_hr_l{k}`` for an LSTM's projection, ``_reverse`` for the backward
direction; gates stacked i, f, g, o for the LSTM and r, z, n for the GRU), so state dicts convert one
to one. Every layer runs on a packed batch (``distgrad.nn.utils.rnn``): a padded input is the packed
batch whose sequences all have the same length. The time loop of one layer and direction is
``distgrad.ops.recurrent_layer``; the cells are the functions of ``distgrad.ops.recurrent``.
"""
from __future__ import annotations

import math
import numbers
import warnings

from distgrad import creation
from distgrad.nn import functional as F
from distgrad.nn import init
from distgrad.nn.module import Module
from distgrad.nn.parameter import Parameter
from distgrad.nn.utils.rnn import PackedSequence
from distgrad.ops.joining import cat, stack
from distgrad.ops.recurrent import gru_cell, lstm_cell, rnn_relu_cell, rnn_tanh_cell
from distgrad.ops.recurrent_layer import recurrent_layer
from distgrad.tensor import Tensor

__all__ = ["RNNBase", "RNN", "LSTM", "GRU", "RNNCellBase", "RNNCell", "LSTMCell", "GRUCell"]

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}
_WEIGHT_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")  # recurrent_layer's order


def _uniform_on_one_over_sqrt_hidden(module: Module) -> None:
    """PyTorch's default for recurrent layers and cells: every weight and bias uniform on ±1/sqrt(hidden_size)."""
    bound = 1.0 / math.sqrt(module.hidden_size) if module.hidden_size > 0 else 0
    for weight in module.parameters():
        init.uniform_(weight, -bound, bound)


class RNNBase(Module):
    """The multi-layer, optionally bidirectional recurrent layer behind ``RNN``, ``LSTM`` and ``GRU``.

    ``mode`` is "RNN_TANH", "RNN_RELU", "LSTM" or "GRU". Dropout applies to the outputs of every layer
    but the last, in training mode.
    """

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 device=None, dtype=None):
        super().__init__()
        if mode not in _GATES:
            raise ValueError(f"Unrecognized RNN mode: {mode}")
        if not isinstance(dropout, numbers.Number) or not 0 <= dropout <= 1 or isinstance(dropout, bool):
            raise ValueError("dropout should be a number in range [0, 1] representing the probability of an "
                             "element being zeroed")
        if dropout > 0 and num_layers == 1:
            warnings.warn("dropout option adds dropout after all but last recurrent layer, so non-zero dropout "
                          f"expects num_layers greater than 1, but got dropout={dropout} and num_layers={num_layers}")
        for name, value in (("hidden_size", hidden_size), ("num_layers", num_layers)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} should be of type int, got: {type(value).__name__}")
            if value <= 0:
                raise ValueError(f"{name} must be greater than zero")
        if proj_size < 0:
            raise ValueError("proj_size should be a positive integer or zero to disable projections")
        if proj_size >= hidden_size:
            raise ValueError("proj_size has to be smaller than hidden_size")
        if proj_size and mode != "LSTM":
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        self.mode, self.input_size, self.hidden_size = mode, input_size, hidden_size
        self.num_layers, self.bias, self.batch_first = num_layers, bias, batch_first
        self.dropout, self.bidirectional, self.proj_size = float(dropout), bidirectional, proj_size
        directions = 2 if bidirectional else 1
        out_size = proj_size or hidden_size
        gate_size = _GATES[mode] * hidden_size
        self._flat_weights_names = []
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else out_size * directions
            for direction in range(directions):
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                shapes = {"weight_ih": (gate_size, layer_input), "weight_hh": (gate_size, out_size)}
                if bias:
                    shapes.update(bias_ih=(gate_size,), bias_hh=(gate_size,))
                if proj_size:
                    shapes["weight_hr"] = (proj_size, hidden_size)
                for name, shape in shapes.items():
                    self.register_parameter(name + suffix, Parameter(creation.empty(shape, device=device, dtype=dtype)))
                    self._flat_weights_names.append(name + suffix)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _uniform_on_one_over_sqrt_hidden(self)

    def flatten_parameters(self) -> None:
        """Accepted for compatibility: distgrad keeps no flat weight buffer (cuDNN's), so it does nothing."""

    @property
    def _flat_weights(self) -> list:
        return [getattr(self, name) for name in self._flat_weights_names]

    @property
    def all_weights(self) -> list:
        """The parameters grouped per layer and direction, in PyTorch's order."""
        per_direction = len(self._flat_weights_names) // (self.num_layers * (2 if self.bidirectional else 1))
        weights = self._flat_weights
        return [weights[i:i + per_direction] for i in range(0, len(weights), per_direction)]

    # --- shapes ------------------------------------------------------------------------------------
    def _state_sizes(self) -> tuple:
        """The feature size of each state: (h,) or, for the LSTM, (h, c)."""
        h = self.proj_size or self.hidden_size
        return (h, self.hidden_size) if self.mode == "LSTM" else (h,)

    def _check_input(self, input: Tensor, expected_dim: int) -> None:
        if input.ndim != expected_dim:
            raise RuntimeError(f"input must have {expected_dim} dimensions, got {input.ndim}")
        if input.shape[-1] != self.input_size:
            raise RuntimeError(f"input.size(-1) must be equal to input_size. Expected {self.input_size}, "
                               f"got {input.shape[-1]}")
        weight = self.weight_ih_l0
        if input.dtype != weight.dtype:
            raise ValueError(f"RNN input dtype (distgrad.{input.dtype.name}) does not match weight dtype "
                             f"(distgrad.{weight.dtype.name}). Convert input: input.to(distgrad.{weight.dtype.name}), "
                             f"or convert model: model.to(distgrad.{input.dtype.name})")

    def _initial_states(self, hx, batch: int, unbatched: bool, like: Tensor, sorted_indices) -> tuple:
        """``hx`` as a tuple of (layers * directions, batch, size) tensors, zeros when not given."""
        rows = self.num_layers * (2 if self.bidirectional else 1)
        sizes = self._state_sizes()
        if hx is None:
            return tuple(creation.zeros(rows, batch, n, dtype=like.dtype, device=like.device) for n in sizes)
        states = tuple(hx) if self.mode == "LSTM" else (hx,)
        if self.mode == "LSTM" and len(states) != 2 or not all(isinstance(s, Tensor) for s in states):
            raise TypeError(f"{self._get_name()}: hx must be " + ("a tuple (h_0, c_0) of Tensors"
                                                                   if self.mode == "LSTM" else "a Tensor"))
        dim = 2 if unbatched else 3
        out = []
        for k, (state, n) in enumerate(zip(states, sizes)):
            if state.ndim != dim:
                raise RuntimeError(f"For {'unbatched 2-D' if unbatched else 'batched 3-D'} input, hx "
                                   f"{'and cx ' if self.mode == 'LSTM' else ''}should also be {dim}-D but got "
                                   f"{state.ndim}-D tensor")
            if unbatched:
                state = state.unsqueeze(1)
            expected = (rows, batch, n)
            if tuple(state.shape) != expected:
                which = f"hidden[{k}] " if self.mode == "LSTM" else "hidden "
                raise RuntimeError(f"Expected {which}size {expected}, got {list(state.shape)}")
            if sorted_indices is not None:  # rows follow the packed (sorted) batch order
                state = state.index_select(1, sorted_indices)
            out.append(state)
        return tuple(out)

    # --- forward -----------------------------------------------------------------------------------
    def forward(self, input, hx=None):
        """``(output, h_n)``, or ``(output, (h_n, c_n))`` for the LSTM, as PyTorch's layer returns them."""
        packed = isinstance(input, PackedSequence)
        unbatched = False
        if packed:
            data, batch_sizes_t, sorted_indices, unsorted_indices = input
            batch_sizes = [int(n) for n in batch_sizes_t.tolist()]
            self._check_input(data, 2)
        else:
            if input.ndim not in (2, 3):
                raise ValueError(f"{self._get_name()}: Expected input to be 2D or 3D, got {input.ndim}D instead")
            unbatched = input.ndim == 2
            if unbatched:
                input = input.unsqueeze(1)
            elif self.batch_first:
                input = input.transpose(0, 1)
            self._check_input(input, 3)
            steps, batch = input.shape[:2]
            if steps == 0:
                raise RuntimeError("Expected sequence length to be larger than 0 in RNN")
            data, batch_sizes, sorted_indices = input.reshape(steps * batch, input.shape[2]), [batch] * steps, None
        states = self._initial_states(hx, batch_sizes[0], unbatched, data, sorted_indices)
        output, finals = self._run_layers(data, batch_sizes, [s.unbind(0) for s in states])
        finals = tuple(stack(f) for f in finals)
        if packed:
            output = PackedSequence(output, batch_sizes_t, sorted_indices, unsorted_indices)
            if unsorted_indices is not None:
                finals = tuple(f.index_select(1, unsorted_indices) for f in finals)
        else:
            output = output.reshape(steps, batch, output.shape[-1])
            if unbatched:
                output, finals = output.squeeze(1), tuple(f.squeeze(1) for f in finals)
            elif self.batch_first:
                output = output.transpose(0, 1)
        return output, (finals if self.mode == "LSTM" else finals[0])

    def _run_layers(self, data: Tensor, batch_sizes: list, initial: list) -> tuple:
        """The last layer's packed outputs and, per state, the final states of every layer and direction."""
        directions = 2 if self.bidirectional else 1
        finals = [[] for _ in initial]
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(directions):
                index = layer * directions + direction
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                weights = [self._parameters.get(name + suffix) for name in _WEIGHT_NAMES]
                out, state = recurrent_layer(self.mode, data, batch_sizes, tuple(s[index] for s in initial),
                                             *weights, reverse=direction == 1)
                outputs.append(out)
                for k, s in enumerate(state):
                    finals[k].append(s)
            data = outputs[0] if directions == 1 else cat(outputs, -1)
            if self.dropout and self.training and layer < self.num_layers - 1:
                data = F.dropout(data, self.dropout)
        return data, finals

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s


class RNN(RNNBase):
    """An Elman network: ``h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)`` (or relu), per layer."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
        self.nonlinearity = nonlinearity
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size, hidden_size, num_layers,
                         bias, batch_first, dropout, bidirectional, device=device, dtype=dtype)

class LSTM(RNNBase):
    """A long short-term memory layer (gates i, f, g, o); ``proj_size > 0`` projects h by ``weight_hr``."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 device=None, dtype=None):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, device=device, dtype=dtype)


class GRU(RNNBase):
    """A gated recurrent unit layer (gates r, z, n; ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, device=None,
                 dtype=None):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         device=device, dtype=dtype)


# --- cells -------------------------------------------------------------------------------------------
class RNNCellBase(Module):
    """One step of a recurrent layer: ``weight_ih`` (gates * hidden, input), ``weight_hh``, biases."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool, num_chunks: int, device=None, dtype=None):
        super().__init__()
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        gate_size = num_chunks * hidden_size
        self.weight_ih = Parameter(creation.empty(gate_size, input_size, device=device, dtype=dtype))
        self.weight_hh = Parameter(creation.empty(gate_size, hidden_size, device=device, dtype=dtype))
        if bias:
            self.bias_ih = Parameter(creation.empty(gate_size, device=device, dtype=dtype))
            self.bias_hh = Parameter(creation.empty(gate_size, device=device, dtype=dtype))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _uniform_on_one_over_sqrt_hidden(self)

    def _batched(self, input: Tensor, hx, states: int) -> tuple:
        """``input`` and the states as 2-D tensors (zeros when ``hx`` is None), and whether input was 1-D."""
        name = self._get_name()
        if input.ndim not in (1, 2):
            raise ValueError(f"{name}: Expected input to be 1D or 2D, got {input.ndim}D instead")
        unbatched = input.ndim == 1
        if unbatched:
            input = input.unsqueeze(0)
        if input.shape[1] != self.input_size:
            raise RuntimeError(f"input has inconsistent input_size: got {input.shape[1]} expected {self.input_size}")
        if hx is None:
            return input, tuple(creation.zeros(input.shape[0], self.hidden_size, dtype=input.dtype,
                                               device=input.device) for _ in range(states)), unbatched
        hx = tuple(hx) if states == 2 else (hx,)
        for h in hx:
            if h.ndim != 2 - unbatched:
                raise ValueError(f"{name}: Expected hidden to be {2 - unbatched}D, got {h.ndim}D instead")
        hx = tuple(h.unsqueeze(0) for h in hx) if unbatched else hx
        for h in hx:
            if tuple(h.shape) != (input.shape[0], self.hidden_size):
                raise RuntimeError(f"hidden has inconsistent size: got {list(h.shape)}, expected "
                                   f"{[input.shape[0], self.hidden_size]}")
        return input, hx, unbatched

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        nonlinearity = getattr(self, "nonlinearity", "tanh")
        return s if nonlinearity == "tanh" else s + f", nonlinearity={nonlinearity}"


class RNNCell(RNNCellBase):
    """``h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh)`` (or relu)."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise RuntimeError(f"Unknown nonlinearity: {nonlinearity}")
        super().__init__(input_size, hidden_size, bias, 1, device=device, dtype=dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        input, (h,), unbatched = self._batched(input, hx, 1)
        cell = rnn_tanh_cell if self.nonlinearity == "tanh" else rnn_relu_cell
        h = cell(input, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        return h.squeeze(0) if unbatched else h


class LSTMCell(RNNCellBase):
    """One LSTM step: ``(h', c')`` from ``input`` and ``(h, c)``; gates i, f, g, o."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, 4, device=device, dtype=dtype)

    def forward(self, input: Tensor, hx: tuple | None = None) -> tuple:
        input, hx, unbatched = self._batched(input, hx, 2)
        h, c = lstm_cell(input, hx, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        return (h.squeeze(0), c.squeeze(0)) if unbatched else (h, c)


class GRUCell(RNNCellBase):
    """One GRU step: ``h'`` from ``input`` and ``h``; gates r, z, n."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, 3, device=device, dtype=dtype)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        input, (h,), unbatched = self._batched(input, hx, 1)
        h = gru_cell(input, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        return h.squeeze(0) if unbatched else h
