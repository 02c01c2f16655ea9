"""nn layers: shapes, default init, train/eval behaviour, errors, and outputs and gradients vs PyTorch."""
import inspect
import math

import numpy as np
import pytest

import distgrad
from distgrad import nn
from distgrad.autograd import gradcheck
from helpers import compare_with_torch, host


@pytest.fixture(autouse=True)
def seeded():
    distgrad.manual_seed(0)


# --- Linear, Identity ----------------------------------------------------------------------------------
def test_linear_shapes_and_no_bias():
    layer = nn.Linear(5, 3)
    assert layer.weight.shape == (3, 5) and layer.bias.shape == (3,)
    no_bias = nn.Linear(5, 3, bias=False)
    assert no_bias.bias is None and [n for n, _ in no_bias.named_parameters()] == ["weight"]
    assert nn.Linear(2, 2, dtype=distgrad.float64).weight.dtype == np.float64


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(4, 5), (2, 3, 5)])
def test_linear_matches_torch(bias, shape, device):
    torch = pytest.importorskip("torch")
    compare_with_torch(nn.Linear(5, 3, bias=bias), torch.nn.Linear(5, 3, bias=bias), shape, device=device)


def test_identity_returns_its_input_and_ignores_arguments():
    x = distgrad.ones(2)
    assert nn.Identity(54, unused="x")(x) is x


def test_mlp_gradcheck_in_float64():
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    x = distgrad.randn(5, 3, dtype=distgrad.float64, requires_grad=True)
    assert gradcheck(lambda x, *params: model(x), (x, *model.parameters()))


def test_a_few_sgd_steps_reduce_the_loss():
    x = distgrad.randn(32, 4)
    y = x.sum(dim=1, keepdim=True) * 0.5
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))
    loss_fn = nn.MSELoss()
    losses = []
    for _ in range(20):
        model.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        losses.append(loss.item())
        for p in model.parameters():
            p.array -= 0.05 * p.grad.array
    assert losses[-1] < 0.5 * losses[0]


# --- Conv2d ------------------------------------------------------------------------------------------
def test_conv2d_parameter_shapes_and_bounds():
    conv = nn.Conv2d(4, 6, (3, 5), groups=2)
    assert conv.weight.shape == (6, 2, 3, 5) and conv.bias.shape == (6,)
    bound = 1 / math.sqrt(2 * 3 * 5)
    assert np.abs(host(conv.weight)).max() <= bound and np.abs(host(conv.bias)).max() <= bound


@pytest.mark.parametrize("kwargs", [
    dict(kernel_size=3),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=(3, 2), padding=(1, 0), dilation=2, bias=False),
    dict(kernel_size=3, groups=2),
    dict(kernel_size=3, padding="same"),
    dict(kernel_size=3, padding="valid"),
])
def test_conv2d_matches_torch(kwargs, device):
    torch = pytest.importorskip("torch")
    compare_with_torch(nn.Conv2d(4, 6, **kwargs), torch.nn.Conv2d(4, 6, **kwargs), (2, 4, 7, 8), device=device)


def test_conv2d_argument_errors():
    with pytest.raises(ValueError, match="in_channels must be divisible by groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="out_channels must be divisible by groups"):
        nn.Conv2d(4, 3, 3, groups=2)
    with pytest.raises(ValueError, match="Invalid padding string 'full'"):
        nn.Conv2d(3, 4, 3, padding="full")
    with pytest.raises(ValueError, match="padding='same' is not supported for strided convolutions"):
        nn.Conv2d(3, 4, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="padding_mode must be one of"):
        nn.Conv2d(3, 4, 3, padding_mode="mirror")


# --- pooling -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [
    lambda m: m.MaxPool2d(2),
    lambda m: m.MaxPool2d(3, stride=2, padding=1),
    lambda m: m.AvgPool2d(2),
    lambda m: m.AvgPool2d(3, stride=2, padding=1, count_include_pad=False),
    lambda m: m.AdaptiveAvgPool2d((2, 3)),
    lambda m: m.AdaptiveAvgPool2d(1),
])
def test_pooling_matches_torch(make, device):
    torch = pytest.importorskip("torch")
    compare_with_torch(make(nn), make(torch.nn), (2, 3, 6, 7), device=device)


# --- normalisation -----------------------------------------------------------------------------------
def test_batchnorm_parameters_and_buffers():
    bn = nn.BatchNorm2d(3)
    assert [n for n, _ in bn.named_parameters()] == ["weight", "bias"]
    assert list(bn.state_dict()) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    assert bn.num_batches_tracked.dtype == np.int64 and bn.num_batches_tracked.item() == 0
    np.testing.assert_array_equal(host(bn.running_var), 1.0)
    plain = nn.BatchNorm1d(3, affine=False, track_running_stats=False)
    assert list(plain.state_dict()) == [] and plain.running_mean is None


@pytest.mark.parametrize("kwargs", [dict(), dict(momentum=None), dict(affine=False), dict(bias=False),
                                    dict(track_running_stats=False)])
def test_batchnorm2d_training_steps_and_eval_match_torch(kwargs, device):
    torch = pytest.importorskip("torch")
    if "bias" in kwargs and "bias" not in inspect.signature(torch.nn.BatchNorm2d).parameters:
        pytest.skip("this PyTorch's BatchNorm2d has no bias argument")
    ours, theirs = nn.BatchNorm2d(3, **kwargs), torch.nn.BatchNorm2d(3, **kwargs)
    for _ in range(3):  # running statistics accumulate over steps
        compare_with_torch(ours, theirs, (4, 3, 5, 5), device=device)
        ours.zero_grad(), theirs.zero_grad()
    ours.eval(), theirs.eval()
    compare_with_torch(ours, theirs, (4, 3, 5, 5), device=device)


@pytest.mark.parametrize("shape", [(8, 3), (4, 3, 5)])
def test_batchnorm1d_matches_torch(shape, device):
    torch = pytest.importorskip("torch")
    compare_with_torch(nn.BatchNorm1d(3), torch.nn.BatchNorm1d(3), shape, device=device)


def test_batchnorm_counts_batches_and_rejects_wrong_rank():
    bn = nn.BatchNorm1d(3)
    bn(distgrad.randn(4, 3))
    bn(distgrad.randn(4, 3))
    assert bn.num_batches_tracked.item() == 2
    bn.eval()(distgrad.randn(4, 3))
    assert bn.num_batches_tracked.item() == 2
    with pytest.raises(ValueError, match=r"expected 2D or 3D input \(got 4D input\)"):
        bn(distgrad.randn(2, 3, 4, 4))
    with pytest.raises(ValueError, match=r"expected 4D input \(got 2D input\)"):
        nn.BatchNorm2d(3)(distgrad.randn(4, 3))


@pytest.mark.parametrize("shape, kwargs", [(5, {}), ((4, 5), {}), (5, dict(elementwise_affine=False)),
                                           (5, dict(bias=False))])
def test_layernorm_matches_torch(shape, kwargs, device):
    torch = pytest.importorskip("torch")
    ours, theirs = nn.LayerNorm(shape, **kwargs), torch.nn.LayerNorm(shape, **kwargs)
    if ours.weight is not None:  # non-trivial affine parameters
        nn.init.normal_(ours.weight)
    compare_with_torch(ours, theirs, (2, 3, 4, 5), device=device)


# --- dropout, flatten, embedding ---------------------------------------------------------------------
def test_dropout_in_training_zeroes_and_rescales_and_in_eval_is_identity():
    drop = nn.Dropout(0.25)
    x = distgrad.ones(100, 100)
    y = host(drop(x))
    kept = y != 0
    assert kept.mean() == pytest.approx(0.75, abs=0.02)
    np.testing.assert_allclose(y[kept], 1 / 0.75)
    drop.eval()
    np.testing.assert_array_equal(host(drop(x)), 1.0)
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1, but got 1.5"):
        nn.Dropout(1.5)


def test_flatten_and_unflatten_match_torch():
    torch = pytest.importorskip("torch")
    for ours, theirs in [(nn.Flatten(), torch.nn.Flatten()), (nn.Flatten(0, 2), torch.nn.Flatten(0, 2)),
                         (nn.Unflatten(1, (3, 4)), torch.nn.Unflatten(1, (3, 4))),
                         (nn.Unflatten(-1, (-1, 2)), torch.nn.Unflatten(-1, (-1, 2)))]:
        out = compare_with_torch(ours, theirs, (2, 12, 2))
        assert out.shape == tuple(theirs(torch.zeros(2, 12, 2)).shape)


def test_unflatten_errors():
    with pytest.raises(TypeError, match="unflattened_size must be tuple of ints"):
        nn.Unflatten(1, 3)
    with pytest.raises(RuntimeError, match=r"unflatten: Provided sizes \[3, 5\] don't multiply up to the size"):
        nn.Unflatten(1, (3, 5))(distgrad.zeros(2, 12))


def test_embedding_matches_torch_and_padding_row_gets_no_gradient(device):
    torch = pytest.importorskip("torch")
    ours, theirs = nn.Embedding(10, 4, padding_idx=2), torch.nn.Embedding(10, 4, padding_idx=2)
    np.testing.assert_array_equal(host(ours.weight)[2], 0.0)
    theirs.load_state_dict({"weight": torch.from_numpy(host(ours.weight).copy())})
    ours.to(device)
    idx = np.array([[1, 2, 3], [2, 9, 1]])
    out, expected = ours(distgrad.tensor(idx, device=device)), theirs(torch.from_numpy(idx))
    np.testing.assert_allclose(host(out), expected.detach().numpy())
    out.sum().backward()
    expected.sum().backward()
    np.testing.assert_allclose(host(ours.weight.grad), theirs.weight.grad.numpy())
    np.testing.assert_array_equal(host(ours.weight.grad)[2], 0.0)


def test_embedding_max_norm_renormalises_looked_up_rows_like_torch(device):
    torch = pytest.importorskip("torch")
    ours, theirs = nn.Embedding(6, 4, max_norm=1.0), torch.nn.Embedding(6, 4, max_norm=1.0)
    nn.init.normal_(ours.weight, std=2.0)  # most rows start above max_norm
    before = host(ours.weight).copy()
    theirs.load_state_dict({"weight": torch.from_numpy(host(ours.weight).copy())})
    ours.to(device)
    idx = np.array([0, 2, 2, 5])
    out, expected = ours(distgrad.tensor(idx, device=device)), theirs(torch.from_numpy(idx))
    np.testing.assert_allclose(host(out), expected.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(host(ours.weight), theirs.weight.detach().numpy(), rtol=1e-6)
    np.testing.assert_array_equal(host(ours.weight)[[1, 3, 4]], before[[1, 3, 4]])  # not looked up
    assert np.linalg.norm(host(ours.weight)[[0, 2, 5]], axis=1).max() <= 1.0 + 1e-6


def test_embedding_from_pretrained_and_errors():
    table = distgrad.randn(5, 3)
    emb = nn.Embedding.from_pretrained(table)
    assert not emb.weight.requires_grad and emb.weight.array is table.array
    assert nn.Embedding.from_pretrained(table, freeze=False).weight.requires_grad
    assert nn.Embedding(5, 3, padding_idx=-1).padding_idx == 4
    with pytest.raises(AssertionError, match="Padding_idx must be within num_embeddings"):
        nn.Embedding(5, 3, padding_idx=5)
    with pytest.raises(AssertionError, match="Embeddings parameter is expected to be 2-dimensional"):
        nn.Embedding.from_pretrained(distgrad.randn(5))
    with pytest.raises(NotImplementedError, match="Embedding: scale_grad_by_freq=True is not supported"):
        nn.Embedding(5, 3, scale_grad_by_freq=True)


# --- activations -------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [
    lambda m: m.ReLU(), lambda m: m.LeakyReLU(0.2), lambda m: m.GELU(), lambda m: m.GELU("tanh"),
    lambda m: m.SiLU(), lambda m: m.Sigmoid(), lambda m: m.Tanh(), lambda m: m.Softmax(dim=1),
    lambda m: m.LogSoftmax(dim=-1), lambda m: m.Identity(),
])
def test_activation_matches_torch(make, device):
    torch = pytest.importorskip("torch")
    compare_with_torch(make(nn), make(torch.nn), (3, 4, 5), device=device)


# --- reprs -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [
    lambda m: m.Linear(784, 512), lambda m: m.Linear(3, 2, bias=False),
    lambda m: m.Conv2d(3, 8, 3), lambda m: m.Conv2d(4, 8, (3, 5), stride=2, padding=1, dilation=2, groups=2,
                                                    bias=False),
    lambda m: m.Conv2d(3, 4, 3, padding="same"),
    lambda m: m.MaxPool2d(2), lambda m: m.MaxPool2d(3, 2, 1), lambda m: m.AvgPool2d(2),
    lambda m: m.AdaptiveAvgPool2d((1, 1)), lambda m: m.Dropout(0.1), lambda m: m.Flatten(), lambda m: m.Unflatten(1, (2, 2)),
    lambda m: m.Embedding(10, 3, padding_idx=0), lambda m: m.ReLU(), lambda m: m.ReLU(inplace=True),
    lambda m: m.LeakyReLU(0.2), lambda m: m.GELU("tanh"), lambda m: m.SiLU(), lambda m: m.Sigmoid(),
    lambda m: m.Tanh(), lambda m: m.Softmax(dim=1), lambda m: m.LogSoftmax(dim=1), lambda m: m.Identity(),
    lambda m: m.Sequential(m.Linear(784, 512), m.ReLU(), m.Sequential(m.Linear(512, 10), m.LogSoftmax(1))),
])
def test_repr_matches_torch(make):
    torch = pytest.importorskip("torch")
    assert repr(make(nn)) == repr(make(torch.nn))


def test_norm_reprs_match_torch_2_13():
    # Written out: PyTorch releases before 2.13 print no "bias=" here.
    assert repr(nn.BatchNorm1d(3, momentum=None)) == (
        "BatchNorm1d(3, eps=1e-05, momentum=None, affine=True, bias=True, track_running_stats=True)")
    assert repr(nn.BatchNorm2d(16, affine=False)) == (
        "BatchNorm2d(16, eps=1e-05, momentum=0.1, affine=False, bias=False, track_running_stats=True)")
    assert repr(nn.LayerNorm((4, 5), bias=False)) == (
        "LayerNorm((4, 5), eps=1e-05, elementwise_affine=True, bias=False)")


def test_sequential_repr_layout():
    net = nn.Sequential(nn.Linear(784, 512), nn.ReLU())
    assert repr(net) == "Sequential(\n  (0): Linear(in_features=784, out_features=512, bias=True)\n  (1): ReLU()\n)"
