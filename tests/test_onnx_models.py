"""``dg.onnx.export`` of whole models (the MNIST MLP and CNN of examples/mnist.py, a Transformer encoder, the
tiny GPT of examples/gpt.py, an LSTM language model), the file's names and dynamic axes, and the errors for
what cannot be exported (each naming the op and the module that called it)."""
import math

import numpy as np
import pytest

import distgrad as dg
from distgrad import nn
from distgrad.bench.gpt import GPTConfig, gpt_model
from helpers import FunctionModule, assert_onnx_matches, host, load_example

onnx = pytest.importorskip("onnx")
onnxruntime = pytest.importorskip("onnxruntime")


def _images(n, seed=0):
    return dg.tensor(np.random.default_rng(seed).standard_normal((n, 1, 28, 28)).astype(np.float32))


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_mnist_models_with_a_dynamic_batch(name, device):
    dg.manual_seed(0)
    model = load_example("mnist").MODELS[name]().to(device)
    proto = assert_onnx_matches(model, (_images(4).to(device),), other_args=[(_images(7, seed=1).to(device),)],
                                input_names=["images"], output_names=["logits"],
                                dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}})
    (graph_input,), (graph_output,) = proto.graph.input, proto.graph.output
    assert [d.dim_param or d.dim_value for d in graph_input.type.tensor_type.shape.dim] == ["batch", 1, 28, 28]
    assert [d.dim_param or d.dim_value for d in graph_output.type.tensor_type.shape.dim] == ["batch", 10]
    assert {i.name for i in proto.graph.initializer} >= {name for name, _ in model.named_parameters()}


def test_transformer_encoder_with_a_causal_mask():
    dg.manual_seed(0)
    layer = nn.TransformerEncoderLayer(16, 4, dim_feedforward=32, batch_first=True, activation="gelu")

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Linear(5, 16)
            self.encoder = nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(16))
            self.mask = nn.Transformer.generate_square_subsequent_mask(6)

        def forward(self, x):
            return self.encoder(self.embed(x), mask=self.mask)

    x = dg.tensor(np.random.default_rng(0).standard_normal((3, 6, 5)).astype(np.float32))
    other = dg.tensor(np.random.default_rng(1).standard_normal((1, 6, 5)).astype(np.float32))
    assert_onnx_matches(Encoder(), (x,), other_args=[(other,)], input_names=["x"], dynamic_axes={"x": [0]})


def test_tiny_gpt_logits_with_a_dynamic_batch(device):
    dg.manual_seed(0)
    model = gpt_model(dg, GPTConfig(vocab_size=20, block_size=8, n_layer=2, n_head=2, n_embd=16, dropout=0.1))
    model.to(device)
    ids = dg.tensor(np.random.default_rng(0).integers(0, 20, (3, 8)), device=device)
    more = dg.tensor(np.random.default_rng(1).integers(0, 20, (5, 8)), device=device)
    proto = assert_onnx_matches(model, (ids,), other_args=[(more,)], input_names=["idx"],
                                dynamic_axes={"idx": {0: "batch"}})
    names = {i.name for i in proto.graph.initializer}
    assert "lm_head.weight" in names or "wte.weight" in names


def test_export_runs_in_eval_mode_and_gives_each_module_its_mode_back():
    modes = []

    class Probe(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = nn.Dropout(0.5)

        def forward(self, x):
            modes.append((self.training, self.inner.training))
            return self.inner(x)

    model = Probe()
    model.inner.eval()
    dg.onnx.export(model, dg.randn(3))
    assert modes == [(False, False), (False, False)]
    assert model.training and not model.inner.training


def test_lstm_language_model():
    class LanguageModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(12, 6)
            self.lstm = nn.LSTM(6, 8, num_layers=2, batch_first=True, dropout=0.2)
            self.head = nn.Linear(8, 12)

        def forward(self, ids):
            out, (h, c) = self.lstm(self.embed(ids))
            return self.head(out).log_softmax(-1), h, c

    dg.manual_seed(0)
    ids = dg.tensor(np.random.default_rng(0).integers(0, 12, (2, 5)))
    more = dg.tensor(np.random.default_rng(1).integers(0, 12, (4, 5)))
    proto = assert_onnx_matches(LanguageModel(), (ids,), other_args=[(more,)], input_names=["ids"],
                                output_names=["log_probs", "h", "c"], dynamic_axes={"ids": {0: "batch"}})
    assert [d.dim_param or d.dim_value for d in proto.graph.output[1].type.tensor_type.shape.dim] == [2, "batch", 8]


# --- the file ------------------------------------------------------------------------------------------
def test_writes_a_file_that_onnx_checks_and_loads(tmp_path):
    model = nn.Sequential(nn.Linear(3, 2), nn.Tanh())
    path = tmp_path / "model.onnx"
    dg.onnx.export(model, dg.randn(4, 3), str(path))
    loaded = onnx.load(str(path))
    onnx.checker.check_model(loaded, full_check=True)
    assert [i.name for i in loaded.graph.input] == ["input"]  # Sequential.forward(input)
    assert [o.name for o in loaded.graph.output] == ["output"]
    assert loaded.opset_import[0].version == 18


def test_default_names_follow_the_forward_signature_and_tuples():
    class Two(nn.Module):
        def forward(self, tokens, state):
            return tokens * 2, state[0] + state[1]

    proto = dg.onnx.export(Two(), (dg.randn(2), (dg.randn(2), dg.randn(2))))
    assert [i.name for i in proto.graph.input] == ["tokens", "state_0", "state_1"]
    assert [o.name for o in proto.graph.output] == ["output_0", "output_1"]


def test_export_params_false_makes_parameters_inputs():
    model = nn.Linear(3, 2)
    proto = dg.onnx.export(model, dg.randn(4, 3), export_params=False)
    assert not proto.graph.initializer
    assert {i.name for i in proto.graph.input} == {"input", "weight", "bias"}


def test_is_in_onnx_export_is_true_only_while_exporting():
    seen = []

    class Probe(nn.Module):
        def forward(self, x):
            seen.append(dg.onnx.is_in_onnx_export())
            return x + 1

    dg.onnx.export(Probe(), dg.randn(2))
    assert seen == [True, True] and not dg.onnx.is_in_onnx_export()


def test_an_unsupported_opset_is_refused():
    with pytest.raises(ValueError, match="opset_version 11"):
        dg.onnx.export(nn.Linear(2, 2), dg.randn(1, 2), opset_version=11)


# --- what cannot be exported ---------------------------------------------------------------------------
def test_an_op_without_translation_names_the_op_and_the_module():
    class Block(nn.Module):
        def forward(self, x):
            return x.cumprod(1)

    model = nn.Sequential(nn.Linear(3, 3), Block())
    with pytest.raises(dg.onnx.UnsupportedOperatorError, match=r"Cumprod \(called in module 1 \(Block\)\)"):
        dg.onnx.export(model, dg.randn(2, 3))


def test_a_tensor_computed_from_the_input_outside_the_ops_is_refused():
    class Leaky(nn.Module):
        def forward(self, x):
            return x + dg.Tensor(x.array * 2)  # arrays: no op records it

    with pytest.raises(dg.onnx.OnnxExporterError, match="depend on the inputs"):
        dg.onnx.export(Leaky(), dg.randn(2, 3))


def test_control_flow_on_the_inputs_values_is_refused():
    class Branchy(nn.Module):
        def forward(self, x):
            return x.exp() if bool((x == 1).all()) else x.sin()

    x = dg.tensor(np.ones((2, 3), np.float32))
    with pytest.raises(dg.onnx.OnnxExporterError, match="another path"):
        dg.onnx.export(Branchy(), x)


def test_a_size_read_along_a_dynamic_axis_is_computed_from_the_input_shape():
    model = FunctionModule(lambda x: (x.sum(0) / x.shape[0], x.reshape(x.shape[0] * 3, 1) + x.shape[0] * 2))
    assert_onnx_matches(model, (dg.randn(2, 3),), other_args=[(dg.randn(5, 3),)], input_names=["x"],
                        dynamic_axes={"x": [0]})


def test_a_number_computed_from_a_dynamic_size_otherwise_is_refused():
    model = FunctionModule(lambda x: x * math.sqrt(x.shape[0]))
    with pytest.raises(dg.onnx.OnnxExporterError, match="argument 1"):
        dg.onnx.export(model, dg.randn(2, 3), input_names=["x"], dynamic_axes={"x": [0]})


def test_an_in_place_write_the_trace_cannot_see_is_refused():
    class Sneaky(nn.Module):
        def forward(self, ids):
            doubled = ids * 2
            doubled.add_(1)  # integers: no op records it
            return doubled

    with pytest.raises(dg.onnx.OnnxExporterError, match="written to in place"):
        dg.onnx.export(Sneaky(), dg.tensor(np.arange(6).reshape(2, 3)))


def test_recorded_in_place_ops_export():
    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(4, 4)

        def forward(self, x):
            y = self.linear(x)
            y += x
            return nn.functional.relu(y, inplace=True)

    dg.manual_seed(0)
    assert_onnx_matches(Residual(), (dg.randn(3, 4),))


def test_arange_over_a_dynamic_sequence_length_is_refused():
    dg.manual_seed(0)
    model = gpt_model(dg, GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=2, n_embd=8))
    ids = dg.tensor(np.random.default_rng(0).integers(0, 10, (2, 5)))
    with pytest.raises(dg.onnx.OnnxExporterError, match="Embedding"):
        dg.onnx.export(model, (ids,), input_names=["idx"], dynamic_axes={"idx": {0: "batch", 1: "time"}})


def test_every_output_matches_when_the_model_runs_on_a_gpu_tensor_copy(device):
    model = nn.Sequential(nn.Linear(3, 4), nn.GELU()).to(device)
    x = dg.randn(2, 3).to(device)
    proto = dg.onnx.export(model, x)
    session = onnxruntime.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"input": host(x)})
    np.testing.assert_allclose(got, host(model(x)), atol=1e-6)


def test_non_tensor_arguments_are_kept_as_given():
    class Scale(nn.Module):
        def forward(self, x, factor, shift=0.0):
            return x * factor + shift

    x = dg.randn(2, 3)
    proto = assert_onnx_matches(Scale(), (x, 3, {"shift": 1.0}))  # a trailing dict: keyword arguments
    assert [i.name for i in proto.graph.input] == ["x"]
