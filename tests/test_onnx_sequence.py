"""``dg.onnx.export`` of the sequence layers: attention, the Transformer layers, RNN/LSTM/GRU and their cells,
each run in onnxruntime against distgrad's outputs, with the batch dim dynamic."""
import numpy as np
import pytest

import distgrad as dg
import distgrad.nn.functional as F
from distgrad import nn
from helpers import FunctionModule, assert_onnx_matches

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


def _randn(*shape, seed=0):
    return dg.tensor(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


def _check(model, inputs, batch_axes, grow: int = 2, **kwargs):
    """Exports with input i's ``batch_axes[i]`` dynamic (None: static) and checks on inputs ``grow`` longer there."""
    names = [f"x{i}" for i in range(len(inputs))]
    bigger = []
    for i, (t, axis) in enumerate(zip(inputs, batch_axes)):
        shape = tuple(n + grow if a == axis else n for a, n in enumerate(t.shape))
        values = np.random.default_rng(20 + i).standard_normal(shape)
        bigger.append(dg.tensor(values.astype(np.float32)) if t.dtype == dg.float32 else
                      dg.tensor(values > 0) if t.dtype == dg.bool else dg.tensor(np.abs(values * 3).astype(np.int64)))
    axes = {n: {a: "batch"} for n, a in zip(names, batch_axes) if a is not None}
    return assert_onnx_matches(model, tuple(inputs), other_args=[tuple(bigger)], input_names=names,
                               dynamic_axes=axes, **kwargs)


# --- attention -------------------------------------------------------------------------------------------
def test_scaled_dot_product_attention_causal():
    _check(FunctionModule(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True)),
           [_randn(2, 3, 5, 4, seed=s) for s in range(3)], [0, 0, 0])


def test_scaled_dot_product_attention_with_bool_and_float_masks_as_inputs():
    def attend(q, k, v, allowed, bias):
        return (F.scaled_dot_product_attention(q, k, v, attn_mask=allowed),
                F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=0.3))
    allowed = dg.tensor(np.random.default_rng(1).random((2, 1, 5, 6)) > 0.3)
    _check(FunctionModule(attend), [_randn(2, 3, 5, 4), _randn(2, 3, 6, 4, seed=1), _randn(2, 3, 6, 4, seed=2), allowed,
                        _randn(2, 1, 5, 6, seed=3)], [0, 0, 0, 0, 0])


def test_scaled_dot_product_attention_with_grouped_heads():
    _check(FunctionModule(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, enable_gqa=True)),
           [_randn(2, 4, 5, 3), _randn(2, 2, 5, 3, seed=1), _randn(2, 2, 5, 3, seed=2)], [0, 0, 0])


@pytest.mark.parametrize("batch_first", [True, False])
def test_multihead_self_attention_returns_output_and_weights(batch_first):
    dg.manual_seed(0)
    model = nn.MultiheadAttention(8, 2, batch_first=batch_first)
    _check(FunctionModule(lambda x: model(x, x, x), model), [_randn(2, 5, 8) if batch_first else _randn(5, 2, 8)],
           [0 if batch_first else 1])


def test_multihead_cross_attention_with_key_padding_mask_and_kdim():
    dg.manual_seed(0)
    model = nn.MultiheadAttention(8, 2, kdim=6, vdim=4, batch_first=True)
    padding = dg.tensor(np.array([[False] * 5 + [True], [False] * 3 + [True] * 3]))
    _check(FunctionModule(lambda q, k, v, m: model(q, k, v, key_padding_mask=m, average_attn_weights=False), model),
           [_randn(2, 5, 8), _randn(2, 6, 6, seed=1), _randn(2, 6, 4, seed=2), padding], [0, 0, 0, 0])


@pytest.mark.parametrize("norm_first", [False, True])
def test_transformer_encoder_layer(norm_first):
    dg.manual_seed(0)
    layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, batch_first=True, norm_first=norm_first,
                                       activation="gelu")
    _check(layer, [_randn(2, 5, 8)], [0])


def test_transformer_decoder_layer_with_causal_mask():
    dg.manual_seed(0)
    layer = nn.TransformerDecoderLayer(8, 2, dim_feedforward=16)
    mask = nn.Transformer.generate_square_subsequent_mask(5)
    _check(FunctionModule(lambda tgt, memory: layer(tgt, memory, tgt_mask=mask, tgt_is_causal=True), layer),
           [_randn(5, 2, 8), _randn(6, 2, 8, seed=1)], [1, 1])


# --- recurrent layers ------------------------------------------------------------------------------------
RECURRENT = {
    "lstm": lambda: nn.LSTM(4, 6),
    "lstm_two_layers_bidirectional_batch_first": lambda: nn.LSTM(4, 6, num_layers=2, bidirectional=True,
                                                                 batch_first=True),
    "gru": lambda: nn.GRU(4, 6, num_layers=2),
    "gru_bidirectional_no_bias": lambda: nn.GRU(4, 6, bias=False, bidirectional=True),
    "rnn_tanh": lambda: nn.RNN(4, 6, bidirectional=True),
    "rnn_relu_batch_first": lambda: nn.RNN(4, 6, nonlinearity="relu", num_layers=2, batch_first=True),
}


@pytest.mark.parametrize("name", RECURRENT)
def test_recurrent_layer_as_the_onnx_op(name):
    dg.manual_seed(0)
    model = RECURRENT[name]()
    proto = _check(model, [_randn(2, 3, 4) if model.batch_first else _randn(3, 2, 4)],
                   [0 if model.batch_first else 1])
    assert {"LSTM": "LSTM", "GRU": "GRU", "RNN_TANH": "RNN", "RNN_RELU": "RNN"}[model.mode] in \
        [n.op_type for n in proto.graph.node]


def test_lstm_with_initial_states_as_inputs():
    dg.manual_seed(0)
    model = nn.LSTM(4, 6, num_layers=2)
    _check(FunctionModule(lambda x, h, c: model(x, (h, c)), model),
           [_randn(3, 2, 4), _randn(2, 2, 6, seed=1), _randn(2, 2, 6, seed=2)], [1, 1, 1])


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_recurrent_cells(cell):
    dg.manual_seed(0)
    model = {"rnn": nn.RNNCell, "lstm": nn.LSTMCell, "gru": nn.GRUCell}[cell](4, 5)
    if cell == "lstm":
        _check(FunctionModule(lambda x, h, c: model(x, (h, c)), model),
               [_randn(3, 4), _randn(3, 5, seed=1), _randn(3, 5, seed=2)], [0, 0, 0])
    else:
        _check(FunctionModule(lambda x, h: model(x, h), model), [_randn(3, 4), _randn(3, 5, seed=1)], [0, 0])
