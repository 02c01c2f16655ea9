"""Recurrent layers and cells, and padded/packed sequences: against PyTorch in float64 (outputs, final
states, input, state and parameter gradients, over random configurations), gradcheck, errors."""
import numpy as np
import pytest

import distgrad as dg
from distgrad import nn
from distgrad.autograd import gradcheck, gradgradcheck
from distgrad.nn.utils import rnn as rnn_utils
from helpers import assert_matches_torch, assert_raises_like_torch, host

MODES = ("RNN", "LSTM", "GRU")


@pytest.fixture(autouse=True)
def seeded():
    dg.manual_seed(0)


def torch_twin(torch, ours):
    """The PyTorch layer of the same class and arguments, holding ``ours``'s weights (float64)."""
    kwargs = {k: getattr(ours, k) for k in ("bias",)}
    if isinstance(ours, nn.RNNBase):
        kwargs.update({k: getattr(ours, k) for k in ("num_layers", "batch_first", "dropout", "bidirectional")})
        if ours.mode == "LSTM":
            kwargs["proj_size"] = ours.proj_size
    if hasattr(ours, "nonlinearity"):
        kwargs["nonlinearity"] = ours.nonlinearity
    theirs = getattr(torch.nn, type(ours).__name__)(ours.input_size, ours.hidden_size, **kwargs).double()
    theirs.load_state_dict({k: torch.from_numpy(np.array(host(v))) for k, v in ours.state_dict().items()})
    return theirs


def random_layer(mode: str, seed: int):
    """A layer with a random configuration, and what to feed it: (layer, steps, batch, packed, with_hx)."""
    rng = np.random.default_rng(seed)
    hidden = int(rng.integers(2, 6))
    kwargs = dict(num_layers=int(rng.integers(1, 4)), bidirectional=bool(rng.integers(2)),
                  batch_first=bool(rng.integers(2)), bias=bool(rng.random() < 0.75))
    if mode == "LSTM" and rng.random() < 0.5:
        kwargs["proj_size"] = int(rng.integers(1, hidden))
    if mode == "RNN":
        kwargs["nonlinearity"] = ["tanh", "relu"][int(rng.integers(2))]
    layer = getattr(nn, mode)(int(rng.integers(1, 5)), hidden, dtype=dg.float64, **kwargs)
    return layer, int(rng.integers(1, 6)), int(rng.integers(1, 5)), bool(rng.integers(2)), bool(rng.integers(2))


def as_states(hx):
    return tuple(hx) if isinstance(hx, tuple) else (hx,)


def run_both(torch, ours, steps, batch, packed, with_hx, device, seed=0, batched=True):
    """Runs ``ours`` and its PyTorch twin on the same input, states and upstream gradients; returns
    [(name, ours, theirs)] for outputs, final states, and the gradients of input, states and parameters."""
    theirs = torch_twin(torch, ours)
    ours.to(device)
    rng = np.random.default_rng(seed)
    if isinstance(ours, nn.RNNBase):
        shape = ((batch, steps) if ours.batch_first else (steps, batch)) if batched else (steps,)
    else:
        shape = (batch,) if batched else ()
    x = rng.standard_normal(shape + (ours.input_size,))
    xs = dg.tensor(x, device=device, requires_grad=True), torch.tensor(x, requires_grad=True)
    inputs = xs
    if packed:
        lengths = rng.integers(1, steps + 1, batch)
        inputs = (rnn_utils.pack_padded_sequence(xs[0], lengths, ours.batch_first, enforce_sorted=False),
                  torch.nn.utils.rnn.pack_padded_sequence(xs[1], lengths, ours.batch_first, enforce_sorted=False))
    if isinstance(ours, nn.RNNBase):
        sizes = [ours.proj_size or ours.hidden_size, ours.hidden_size][:2 if ours.mode == "LSTM" else 1]
        lead = (ours.num_layers * (2 if ours.bidirectional else 1),)
    else:
        sizes, lead = [ours.hidden_size] * (2 if isinstance(ours, nn.LSTMCell) else 1), ()
    lead += (batch,) if batched else ()
    states = [rng.standard_normal(lead + (n,)) for n in sizes] if with_hx else []
    ours_hx = [dg.tensor(s, device=device, requires_grad=True) for s in states]
    theirs_hx = [torch.tensor(s, requires_grad=True) for s in states]
    pack_hx = (lambda hx: tuple(hx) if len(hx) == 2 else hx[0]) if with_hx else (lambda hx: None)
    results = []
    for layer, inp, hx, lib in ((ours, inputs[0], ours_hx, dg), (theirs, inputs[1], theirs_hx, torch)):
        out = layer(inp, pack_hx(hx))
        out, final = out if isinstance(ours, nn.RNNBase) else (None, out)
        if packed:
            utils = rnn_utils if lib is dg else torch.nn.utils.rnn
            out = utils.pad_packed_sequence(out, ours.batch_first)[0]
        results.append(([out] if out is not None else []) + list(as_states(final)))
    upstream = [rng.standard_normal(tuple(t.shape)) for t in results[1]]
    for values, lib, device_ in ((results[0], dg, device), (results[1], torch, None)):
        kw = {"device": device_} if lib is dg else {}
        loss = sum((v * lib.tensor(u, **kw)).sum() for v, u in zip(values, upstream))
        loss.backward()
    pairs = [("value", o, t) for o, t in zip(*results)]
    pairs += [("grad input", xs[0].grad, xs[1].grad)]
    pairs += [("grad hx", o.grad, t.grad) for o, t in zip(ours_hx, theirs_hx)]
    torch_params = dict(theirs.named_parameters())
    pairs += [("grad " + name, p.grad, torch_params[name].grad) for name, p in ours.named_parameters()]
    return pairs


def assert_pairs_close(pairs, rtol=1e-10, atol=1e-12):
    for name, ours, theirs in pairs:
        expected = theirs.detach().numpy()
        assert ours is not None, name
        assert tuple(ours.shape) == expected.shape, name
        np.testing.assert_allclose(host(ours), expected, rtol=rtol, atol=atol, err_msg=name)


# --- layers against PyTorch --------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("mode", MODES)
def test_layer_matches_torch_on_random_configurations(mode, seed, device):
    torch = pytest.importorskip("torch")
    layer, steps, batch, packed, with_hx = random_layer(mode, seed)
    assert_pairs_close(run_both(torch, layer, steps, batch, packed, with_hx, device, seed))


@pytest.mark.parametrize("mode", MODES)
def test_bidirectional_packed_layers_with_unsorted_lengths_and_initial_states_match_torch(mode, device):
    torch = pytest.importorskip("torch")
    extra = {"proj_size": 2} if mode == "LSTM" else {}
    layer = getattr(nn, mode)(3, 4, num_layers=2, bidirectional=True, dtype=dg.float64, **extra)
    assert_pairs_close(run_both(torch, layer, 6, 5, True, True, device))


@pytest.mark.parametrize("mode", MODES)
def test_unbatched_input_matches_torch(mode, device):
    torch = pytest.importorskip("torch")
    layer = getattr(nn, mode)(3, 4, num_layers=2, bidirectional=True, dtype=dg.float64)
    for with_hx in (False, True):
        assert_pairs_close(run_both(torch, layer, 5, 1, False, with_hx, device, batched=False))
        layer.zero_grad()


def test_packed_output_is_packed_like_torch():
    torch = pytest.importorskip("torch")
    layer = nn.GRU(2, 3, dtype=dg.float64)
    x = np.random.default_rng(0).standard_normal((4, 3, 2))
    lengths = [2, 4, 1]  # distinct, so both sorts agree
    out, h = layer(rnn_utils.pack_padded_sequence(dg.tensor(x), lengths, enforce_sorted=False))
    expected, _ = torch_twin(torch, layer)(torch.nn.utils.rnn.pack_padded_sequence(torch.tensor(x), lengths,
                                                                                   enforce_sorted=False))
    assert isinstance(out, rnn_utils.PackedSequence)
    np.testing.assert_allclose(host(out.data), expected.data.detach().numpy(), rtol=1e-12)
    for ours, theirs in zip(out[1:], expected[1:]):
        np.testing.assert_array_equal(host(ours), theirs.numpy())


def test_dropout_between_layers_follows_train_and_eval():
    torch = pytest.importorskip("torch")
    # dropout 1 zeroes the first layer's outputs: deterministic, so comparable with PyTorch
    layer = nn.LSTM(3, 4, num_layers=2, dropout=1.0, dtype=dg.float64)
    theirs = torch_twin(torch, layer)
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    for mode in ("train", "eval"):
        getattr(layer, mode)(), getattr(theirs, mode)()
        out, _ = layer(dg.tensor(x))
        expected, _ = theirs(torch.tensor(x))
        np.testing.assert_allclose(host(out), expected.detach().numpy(), rtol=1e-10, atol=1e-12)
    layer.train()
    with_dropout = nn.LSTM(3, 4, num_layers=2, dropout=0.5, dtype=dg.float64)
    assert not np.allclose(host(with_dropout(dg.tensor(x))[0]), host(with_dropout.eval()(dg.tensor(x))[0]))


def test_create_graph_gives_the_same_gradients_and_second_derivatives():
    layer = nn.LSTM(2, 3, bidirectional=True, proj_size=2, dtype=dg.float64)
    x = dg.tensor(np.random.default_rng(0).standard_normal((4, 3, 2)), requires_grad=True)
    packed = rnn_utils.pack_padded_sequence(x, [4, 2, 3], enforce_sorted=False)
    out, (h, c) = layer(packed)
    loss = (out.data ** 2).sum() + (h ** 3).sum() + (c ** 3).sum()
    params = list(layer.parameters())
    first = dg.autograd.grad(loss, [x] + params, retain_graph=True)
    again = dg.autograd.grad(loss, [x] + params, create_graph=True)
    for a, b in zip(first, again):
        np.testing.assert_allclose(host(a), host(b), rtol=1e-12, atol=1e-14)
    assert again[0].requires_grad  # and can be differentiated: checked numerically below


@pytest.mark.parametrize("mode", MODES)
def test_layer_gradcheck_and_gradgradcheck(mode):
    extra = {"proj_size": 1} if mode == "LSTM" else {}
    layer = getattr(nn, mode)(1, 2, bidirectional=True, dtype=dg.float64, **extra)
    rng = np.random.default_rng(1)
    x = dg.tensor(rng.standard_normal((3, 2, 1)), requires_grad=True)

    def run(x, *params):
        out, hx = layer(rnn_utils.pack_padded_sequence(x, [3, 2]))
        return (out.data,) + as_states(hx)
    assert gradcheck(run, (x, *layer.parameters()))
    assert gradgradcheck(run, (x, layer.weight_hh_l0_reverse))


# --- cells ---------------------------------------------------------------------------------------------
CELLS = [("RNNCell", {}), ("RNNCell", {"nonlinearity": "relu"}), ("LSTMCell", {}), ("GRUCell", {}),
         ("GRUCell", {"bias": False})]


@pytest.mark.parametrize("name, kwargs", CELLS)
@pytest.mark.parametrize("batched, with_hx", [(True, True), (True, False), (False, True)])
def test_cell_matches_torch(name, kwargs, batched, with_hx, device):
    torch = pytest.importorskip("torch")
    cell = getattr(nn, name)(3, 4, dtype=dg.float64, **kwargs)
    assert_pairs_close(run_both(torch, cell, 1, 5, False, with_hx, device, batched=batched)[1:])


@pytest.mark.parametrize("name, kwargs", CELLS)
def test_cell_gradcheck_and_gradgradcheck(name, kwargs):
    cell = getattr(nn, name)(2, 3, dtype=dg.float64, **kwargs)
    rng = np.random.default_rng(2)
    x = dg.tensor(rng.standard_normal((2, 2)), requires_grad=True)
    states = [dg.tensor(rng.standard_normal((2, 3)), requires_grad=True) for _ in range(2 if name == "LSTMCell" else 1)]
    hx = (lambda s: tuple(s)) if name == "LSTMCell" else (lambda s: s[0])
    run = lambda x, *s_and_p: as_states(cell(x, hx(s_and_p[:len(states)])))  # noqa: E731
    assert gradcheck(run, (x, *states, *cell.parameters()))
    assert gradgradcheck(run, (x, *states))


@pytest.mark.parametrize("name, gates", [("lstm_cell", 4), ("gru_cell", 3), ("rnn_tanh_cell", 1),
                                         ("rnn_relu_cell", 1)])
def test_cell_functions_have_torchs_signatures(name, gates, device):
    rng = np.random.default_rng(3)
    shapes = [(2, 3), (2, 4), (2, 4), (4 * gates, 3), (4 * gates, 4), (4 * gates,), (4 * gates,)]

    def run(m, x, h, c, *weights):
        return getattr(m, name)(x, (h, c) if name == "lstm_cell" else h, *weights)
    assert_matches_torch(run, [rng.standard_normal(s) for s in shapes], device, rtol=1e-12)


# --- parameters, initialisation, repr ----------------------------------------------------------------------
@pytest.mark.parametrize("mode, kwargs", [("LSTM", dict(num_layers=2, bidirectional=True, proj_size=3)),
                                          ("GRU", dict(num_layers=3, bias=False)),
                                          ("RNN", dict(nonlinearity="relu", bidirectional=True)),
                                          ("LSTM", dict(batch_first=True, dropout=0.5, num_layers=2))])
def test_parameter_names_shapes_and_repr_match_torch(mode, kwargs):
    torch = pytest.importorskip("torch")
    ours, theirs = getattr(nn, mode)(5, 4, **kwargs), getattr(torch.nn, mode)(5, 4, **kwargs)
    assert [(n, tuple(p.shape)) for n, p in ours.named_parameters()] == \
        [(n, tuple(p.shape)) for n, p in theirs.named_parameters()]
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert repr(ours) == repr(theirs)
    assert [[tuple(p.shape) for p in ws] for ws in ours.all_weights] == \
        [[tuple(p.shape) for p in ws] for ws in theirs.all_weights]


@pytest.mark.parametrize("name, kwargs", CELLS)
def test_cell_parameters_and_repr_match_torch(name, kwargs):
    torch = pytest.importorskip("torch")
    ours, theirs = getattr(nn, name)(5, 4, **kwargs), getattr(torch.nn, name)(5, 4, **kwargs)
    assert [(n, tuple(p.shape)) for n, p in ours.named_parameters()] == \
        [(n, tuple(p.shape)) for n, p in theirs.named_parameters()]
    assert repr(ours) == repr(theirs)


@pytest.mark.parametrize("layer", [nn.LSTM(8, 16, 2), nn.GRUCell(8, 16), nn.RNN(8, 16, bidirectional=True)])
def test_initialisation_is_uniform_on_one_over_sqrt_hidden(layer):
    bound = 1 / np.sqrt(16)
    values = np.concatenate([host(p).ravel() for p in layer.parameters()])
    assert values.min() >= -bound and values.max() <= bound
    assert abs(values.std() - bound / np.sqrt(3)) < 0.1 * bound  # the uniform's standard deviation


def test_float32_layer_runs_in_float32_and_flatten_parameters_is_accepted():
    layer = nn.LSTM(3, 4)
    layer.flatten_parameters()
    out, (h, c) = layer(dg.randn(5, 2, 3))
    assert out.dtype == h.dtype == c.dtype == np.float32 and out.shape == (5, 2, 4)


# --- errors ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("call, error, message", [
    (lambda m: m.nn.LSTM(3, 4, proj_size=4), ValueError, "proj_size has to be smaller than hidden_size"),
    (lambda m: m.nn.RNN(3, 4, nonlinearity="sigmoid"), ValueError, "Unknown nonlinearity 'sigmoid'"),
    (lambda m: m.nn.GRU(3, 4, dropout=1.5), ValueError, "dropout should be a number in range"),
    (lambda m: m.nn.LSTM(3, 4, 2)(m.randn(2, 1, 5)), RuntimeError,
     r"input.size\(-1\) must be equal to input_size. Expected 3, got 5"),
    (lambda m: m.nn.LSTM(3, 4, 2)(m.randn(2, 1, 1, 3)), ValueError, "Expected input to be 2D or 3D, got 4D instead"),
    (lambda m: m.nn.LSTM(3, 4, 2)(m.randn(2, 1, 3), (m.zeros(1, 1, 4), m.zeros(2, 1, 4))), RuntimeError,
     r"Expected hidden\[0\] size \(2, 1, 4\), got \[1, 1, 4\]"),
    (lambda m: m.nn.GRU(3, 4)(m.randn(2, 1, 3, dtype=m.float64)), ValueError,
     r"RNN input dtype \(.*float64\) does not match weight dtype \(.*float32\)"),
    (lambda m: m.nn.GRUCell(3, 4)(m.randn(5, 2)), RuntimeError, "input has inconsistent input_size: got 2 expected 3"),
])
def test_layer_errors_have_torchs_messages(call, error, message):
    assert_raises_like_torch(call, message, error)


def test_dropout_without_a_second_layer_warns_like_torch():
    with pytest.warns(UserWarning, match="non-zero dropout expects num_layers greater than 1"):
        nn.GRU(3, 4, dropout=0.5)


# --- padded and packed sequences ------------------------------------------------------------------------
def sequences(lengths, features=(2,), seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((n,) + features) for n in lengths]


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_pad_sequence_matches_torch_with_gradients(batch_first, padding_side, device):
    def run(m, *seqs):
        return m.nn.utils.rnn.pad_sequence(list(seqs), batch_first, -1.5, padding_side)
    assert_matches_torch(run, sequences([3, 5, 1, 5]), device)


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("lengths, enforce_sorted", [([5, 3, 3, 1], True), ([2, 5, 1, 4], False), ([4], True)])
def test_pack_padded_sequence_matches_torch_and_pads_back(batch_first, lengths, enforce_sorted, device):
    padded = np.random.default_rng(0).standard_normal((6, len(lengths), 3, 2))
    if batch_first:
        padded = padded.swapaxes(0, 1).copy()

    def run(m, padded):
        utils = m.nn.utils.rnn
        packed = utils.pack_padded_sequence(padded, m.tensor(lengths), batch_first, enforce_sorted)
        indices = [] if enforce_sorted else [packed.sorted_indices, packed.unsorted_indices]
        assert (packed.sorted_indices is None) == enforce_sorted
        back, back_lengths = utils.pad_packed_sequence(packed, batch_first, 7.0, total_length=7)
        return [packed.data, packed.batch_sizes, back, back_lengths] + indices
    outputs = assert_matches_torch(run, [padded], device)
    assert outputs[1].device == dg.device("cpu") and outputs[1].dtype == np.int64


def test_pack_sequence_unpack_sequence_and_unpad_sequence_round_trip():
    arrays = sequences([2, 4, 3])
    packed = rnn_utils.pack_sequence([dg.tensor(a) for a in arrays], enforce_sorted=False)
    assert packed.batch_sizes.tolist() == [3, 3, 2, 1]
    for got, expected in zip(rnn_utils.unpack_sequence(packed), arrays):
        np.testing.assert_array_equal(host(got), expected)
    padded = rnn_utils.pad_sequence([dg.tensor(a) for a in arrays])
    for got, expected in zip(rnn_utils.unpad_sequence(padded, [2, 4, 3]), arrays):
        np.testing.assert_array_equal(host(got), expected)


def test_packed_sequence_moves_and_casts_as_a_whole():
    packed = rnn_utils.pack_sequence([dg.tensor(a) for a in sequences([1, 3])], enforce_sorted=False)
    as_float = packed.float()
    assert isinstance(as_float, rnn_utils.PackedSequence) and as_float.data.dtype == np.float32
    assert as_float.sorted_indices is not None and not as_float.is_cuda
    assert packed.to(dg.float64) is packed
    np.testing.assert_array_equal(host(packed.unsorted_indices), [1, 0])


@pytest.mark.parametrize("call, error, message", [
    (lambda m: m.nn.utils.rnn.pack_padded_sequence(m.zeros(4, 3, 2), [2, 4, 1]), RuntimeError,
     "must be sorted in decreasing order when `enforce_sorted` is True"),
    (lambda m: m.nn.utils.rnn.pack_padded_sequence(m.zeros(4, 3, 2), [4, 2, 0]), RuntimeError,
     "Length of all samples has to be greater than 0"),
    (lambda m: m.nn.utils.rnn.pack_padded_sequence(m.zeros(4, 3, 2), [4, 2]), RuntimeError,
     r"Expected `len\(lengths\)` to be equal to batch_size, but got 2 \(batch_size=3\)"),
    (lambda m: m.nn.utils.rnn.pad_packed_sequence(m.nn.utils.rnn.pack_padded_sequence(m.zeros(4, 3, 2), [4, 2, 1]),
                                                  total_length=3), ValueError,
     "Expected total_length to be at least the length of the longest sequence in input, but got total_length=3 "
     "and max sequence length being 4"),
])
def test_packing_errors_have_torchs_messages(call, error, message):
    assert_raises_like_torch(call, message, error)


# --- PyTorch example code, as written ----------------------------------------------------------------------
def word_language_model(torch):
    """pytorch/examples' word_language_model (RNNModel's LSTM branch, repackage_hidden, the training loop
    of main.py) as written, for ``torch`` being PyTorch or distgrad; returns the losses of 10 steps."""
    nn = torch.nn

    class RNNModel(nn.Module):
        def __init__(self, ntoken, ninp, nhid, nlayers, dropout=0.5):
            super().__init__()
            self.ntoken = ntoken
            self.drop = nn.Dropout(dropout)
            self.encoder = nn.Embedding(ntoken, ninp)
            self.rnn = nn.LSTM(ninp, nhid, nlayers, dropout=dropout)
            self.decoder = nn.Linear(nhid, ntoken)
            self.nhid, self.nlayers = nhid, nlayers

        def forward(self, input, hidden):
            emb = self.drop(self.encoder(input))
            output, hidden = self.rnn(emb, hidden)
            output = self.drop(output)
            decoded = self.decoder(output)
            decoded = decoded.view(-1, self.ntoken)
            return nn.functional.log_softmax(decoded, dim=1), hidden

        def init_hidden(self, bsz):
            # the example's weight.new_zeros((self.nlayers, bsz, self.nhid)), written with zeros
            return (torch.zeros(self.nlayers, bsz, self.nhid), torch.zeros(self.nlayers, bsz, self.nhid))

    def repackage_hidden(h):
        if isinstance(h, torch.Tensor):
            return h.detach()
        return tuple(repackage_hidden(v) for v in h)

    ntokens, bptt, lr = 10, 6, 20.0
    data = torch.tensor(np.random.default_rng(0).integers(0, ntokens, 120))
    data = data.view(4, -1).t().contiguous()  # batchify(data, 4)
    model = RNNModel(ntokens, 8, 16, 2, dropout=0.0)
    model.load_state_dict({k: torch.tensor(v) for k, v in initial_weights(model).items()})
    criterion = nn.NLLLoss()
    hidden = model.init_hidden(4)
    losses = []
    for i in range(0, data.size(0) - 1, bptt)[:10]:
        seq_len = min(bptt, len(data) - 1 - i)
        source, targets = data[i:i + seq_len], data[i + 1:i + 1 + seq_len].view(-1)
        model.zero_grad()
        hidden = repackage_hidden(hidden)
        output, hidden = model(source, hidden)
        loss = criterion(output, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
        for p in model.parameters():
            p.data.add_(p.grad, alpha=-lr)
        losses.append(loss.item())
    return losses


def initial_weights(model) -> dict:
    """The same float32 values for both frameworks' models, by parameter name."""
    rng = np.random.default_rng(1)
    return {k: (rng.uniform(-0.3, 0.3, tuple(v.shape))).astype(np.float32) for k, v in model.state_dict().items()}


def test_word_language_model_training_runs_as_written_and_follows_torch():
    torch = pytest.importorskip("torch")
    np.testing.assert_allclose(word_language_model(dg), word_language_model(torch), rtol=2e-4)


def test_mnist_rnn_style_classifier_takes_the_last_output():
    rnn = nn.LSTM(input_size=28, hidden_size=16, batch_first=True)
    fc = nn.Linear(16, 10)
    images = dg.randn(3, 1, 28, 28)
    output, hidden = rnn(images.reshape(-1, 28, 28))
    logits = fc(output[:, -1, :])
    nn.functional.cross_entropy(logits, dg.tensor([1, 2, 3])).backward()
    assert logits.shape == (3, 10) and rnn.weight_hh_l0.grad.shape == (64, 16)
    np.testing.assert_allclose(host(output[:, -1, :]), host(hidden[0][0]))


def test_final_state_is_not_a_view_of_the_output_and_writes_to_the_output_are_caught():
    layer = nn.RNN(2, 3)
    out, h = layer(dg.randn(4, 2, 2))
    h.data.add_(1.0)
    assert not np.allclose(host(out[-1]), host(h[0]))
    with dg.no_grad():
        out.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()
