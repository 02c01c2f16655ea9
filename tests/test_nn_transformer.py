"""Transformer layers, RMSNorm and weight tying against PyTorch: state dicts copied one to one, outputs and
gradients compared in float64."""
import io
import zipfile

import numpy as np
import pytest

import distgrad as dg
import distgrad.nn.functional as F
from distgrad import nn
from helpers import assert_close, compare_gradients, copy_torch_into, host, random_leaf, run_both

torch = pytest.importorskip("torch")
D, HEADS, FF = 8, 2, 12


def _pair(make):
    """``make(library)`` in PyTorch and in distgrad (float64, no dropout), PyTorch's weights in both."""
    torch.manual_seed(0)
    theirs = make(torch.nn).double()
    ours = make(nn).double()
    copy_torch_into(ours, theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    return ours, theirs


def _activation(nn_lib, name):
    return {"relu": "relu", "gelu": "gelu", "gelu_tanh_module": nn_lib.GELU(approximate="tanh")}[name]


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu", "gelu_tanh_module"])
def test_encoder_layer_matches_torch(norm_first, activation):
    ours, theirs = _pair(lambda lib: lib.TransformerEncoderLayer(D, HEADS, FF, dropout=0.0, batch_first=True,
                                                                 norm_first=norm_first,
                                                                 activation=_activation(lib, activation)))
    rng = np.random.default_rng(0)
    src, padding = rng.standard_normal((3, 5, D)), rng.random((3, 5)) < 0.3
    padding[:, 0] = False
    out, expected, mine, yours = run_both(ours, theirs, [src, padding],
                                          lambda m, t: m(t[0], src_key_padding_mask=t[1]), "cpu")
    assert_close(out, expected)
    compare_gradients(ours, theirs)
    assert_close(mine[0].grad, yours[0].grad)


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_layer_matches_torch(norm_first):
    ours, theirs = _pair(lambda lib: lib.TransformerDecoderLayer(D, HEADS, FF, dropout=0.0, norm_first=norm_first))
    rng = np.random.default_rng(1)
    tgt, memory = rng.standard_normal((4, 2, D)), rng.standard_normal((6, 2, D))
    causal = np.triu(np.full((4, 4), -np.inf), 1)
    memory_padding = np.array([[False] * 4 + [True] * 2, [False] * 6])

    def call(m, t):
        return m(t[0], t[1], tgt_mask=t[2], memory_key_padding_mask=t[3], tgt_is_causal=True)
    out, expected, mine, yours = run_both(ours, theirs, [tgt, memory, causal, memory_padding], call, "cpu")
    assert_close(out, expected)
    compare_gradients(ours, theirs)
    assert_close(mine[1].grad, yours[1].grad)


def test_transformer_matches_torch_with_every_mask():
    ours, theirs = _pair(lambda lib: lib.Transformer(D, HEADS, num_encoder_layers=2, num_decoder_layers=2,
                                                     dim_feedforward=FF, dropout=0.0, batch_first=True))
    rng = np.random.default_rng(2)
    src, tgt = rng.standard_normal((2, 5, D)), rng.standard_normal((2, 4, D))
    tgt_mask = nn.Transformer.generate_square_subsequent_mask(4, dtype=dg.float64)
    np.testing.assert_array_equal(host(tgt_mask), torch.nn.Transformer.generate_square_subsequent_mask(4).numpy())
    src_padding = np.array([[False] * 5, [False] * 3 + [True] * 2])

    def call(m, t):
        return m(t[0], t[1], tgt_mask=t[2], src_key_padding_mask=t[3], memory_key_padding_mask=t[3])
    out, expected, mine, yours = run_both(ours, theirs, [src, tgt, host(tgt_mask), src_padding], call, "cpu")
    assert_close(out, expected)
    compare_gradients(ours, theirs)
    assert_close(mine[0].grad, yours[0].grad)


def test_transformer_initialises_matrices_xavier_uniform():
    dg.manual_seed(0)
    model = nn.Transformer(d_model=64, nhead=4, num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=128)
    w = host(model.encoder.layers[0].linear1.weight)
    bound = np.sqrt(6 / (64 + 128))
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    np.testing.assert_array_equal(host(model.encoder.norm.weight), 1)


def test_stacks_copy_the_layer_and_detect_the_causal_mask():
    layer = nn.TransformerEncoderLayer(D, HEADS, FF, dropout=0.0)
    stack = nn.TransformerEncoder(layer, num_layers=3)
    assert len(stack.layers) == 3 and all(m is not layer for m in stack.layers)
    assert stack.layers[0].linear1.weight is not stack.layers[1].linear1.weight
    src = dg.randn(4, 2, D)
    causal = nn.Transformer.generate_square_subsequent_mask(4)
    np.testing.assert_allclose(host(stack(src, mask=causal)), host(stack(src, mask=causal, is_causal=False)),
                               rtol=1e-5, atol=1e-6)


def test_bad_activation_is_refused():
    with pytest.raises(RuntimeError, match="activation should be relu/gelu, not tanh"):
        nn.TransformerEncoderLayer(D, HEADS, activation="tanh")


# --- RMSNorm ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("eps", [None, 1e-3])
def test_rms_norm_matches_torch(eps):
    ours, theirs = _pair(lambda lib: lib.RMSNorm((3, 4), eps=eps))
    with torch.no_grad():
        theirs.weight.uniform_(0.5, 1.5)
    copy_torch_into(ours, theirs)
    x = np.random.default_rng(3).standard_normal((2, 3, 4))
    out, expected, mine, yours = run_both(ours, theirs, [x], lambda m, t: m(t[0]), "cpu")
    assert_close(out, expected)
    compare_gradients(ours, theirs)
    assert_close(mine[0].grad, yours[0].grad)
    assert repr(ours) == repr(theirs)


def test_rms_norm_gradcheck(device):
    x, w = random_leaf((2, 5), device, 0), random_leaf((5,), device, 1)
    assert dg.gradcheck(lambda x, w: F.rms_norm(x, (5,), w, eps=1e-4), [x, w])
    assert dg.gradgradcheck(lambda x, w: F.rms_norm(x, (5,), w), [x, w])


# --- weight tying ----------------------------------------------------------------------------------
class TiedLM:
    """An embedding and an output layer sharing one matrix, written once for both libraries."""

    @staticmethod
    def make(lib_nn):
        class Model(lib_nn.Module):
            def __init__(self):
                super().__init__()
                self.embed = lib_nn.Embedding(7, 4)
                self.body = lib_nn.Linear(4, 4)
                self.head = lib_nn.Linear(4, 7, bias=False)
                self.head.weight = self.embed.weight
            def forward(self, tokens):
                return self.head(self.body(self.embed(tokens)).tanh())
        return Model()


def test_a_tied_weight_is_one_parameter_with_one_summed_gradient():
    ours, theirs = _pair(TiedLM.make)
    assert ours.head.weight is ours.embed.weight
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert len(list(ours.parameters())) == 3  # embed.weight, body.weight, body.bias
    tokens = np.array([[1, 2, 3], [3, 6, 0]])
    out, expected, _, _ = run_both(ours, theirs, [tokens], lambda m, t: m(t[0]), "cpu")
    assert_close(out, expected)
    compare_gradients(ours, theirs)


def test_a_tied_weight_is_saved_once_and_loads_back_tied():
    model = TiedLM.make(nn)
    state = model.state_dict()
    assert "embed.weight" in state and "head.weight" in state  # both names, as PyTorch's state_dict
    buffer = io.BytesIO()
    dg.save(state, buffer)
    arrays = [name for name in zipfile.ZipFile(io.BytesIO(buffer.getvalue())).namelist() if name.endswith(".npy")]
    assert len(arrays) == 3  # the tied matrix once
    loaded = dg.load(io.BytesIO(buffer.getvalue()))
    assert np.shares_memory(loaded["embed.weight"].array, loaded["head.weight"].array)
    fresh = TiedLM.make(nn)
    fresh.load_state_dict(loaded)
    assert fresh.head.weight is fresh.embed.weight
    np.testing.assert_array_equal(host(fresh.head.weight), host(model.embed.weight))
