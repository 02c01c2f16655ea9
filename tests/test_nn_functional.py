"""distgrad.nn.functional: PyTorch's names and signatures, the inplace= activations, a training step."""
import inspect

import numpy as np
import pytest

import distgrad as dg
import distgrad.nn.functional as F
from helpers import host

# PyTorch arguments that distgrad leaves out on purpose (see the module docstring)
LEFT_OUT = {"size_average", "reduce", "_stacklevel", "max_norm", "norm_type", "scale_grad_by_freq", "sparse", "out"}
# PyTorch's C builtins have no introspectable signature: their parameters, from the PyTorch docs
# torch implements these in C++ (no Python signature): their documented parameters, in order
BUILTIN_PARAMETERS = {
    "gelu": ["input", "approximate"], "softplus": ["input", "beta", "threshold"],
    "linear": ["input", "weight", "bias"], "one_hot": ["tensor", "num_classes"],
    "conv2d": ["input", "weight", "bias", "stride", "padding", "dilation", "groups"],
    "conv_transpose2d": ["input", "weight", "bias", "stride", "padding", "output_padding", "groups", "dilation"],
    "avg_pool2d": ["input", "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"],
    "avg_pool1d": ["input", "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad"],
    "max_pool2d": ["input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"],
    "max_pool1d": ["input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"],
    "logsigmoid": ["input"], "hardshrink": ["input", "lambd"], "softshrink": ["input", "lambd"],
    "prelu": ["input", "weight"], "bilinear": ["input1", "input2", "weight", "bias"],
    "cosine_similarity": ["x1", "x2", "dim", "eps"], "pairwise_distance": ["x1", "x2", "p", "eps", "keepdim"],
    "conv1d": ["input", "weight", "bias", "stride", "padding", "dilation", "groups"],
    "conv_transpose1d": ["input", "weight", "bias", "stride", "padding", "output_padding", "groups", "dilation"],
    "adaptive_avg_pool1d": ["input", "output_size"],
    "adaptive_max_pool1d": ["input", "output_size", "return_indices"],
    "adaptive_max_pool2d": ["input", "output_size", "return_indices"],
    "pixel_shuffle": ["input", "upscale_factor"], "pixel_unshuffle": ["input", "downscale_factor"],
    "scaled_dot_product_attention": ["query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale",
                                     "enable_gqa"],
}


def test_every_exported_name_is_a_function():
    for name in F.__all__:
        assert callable(getattr(F, name)), name


@pytest.mark.parametrize("name", F.__all__)
def test_parameters_match_torch(name):
    torch_functional = pytest.importorskip("torch.nn.functional")
    ours = [(p.name, p.default) for p in inspect.signature(getattr(F, name)).parameters.values()]
    if name in BUILTIN_PARAMETERS:
        assert [n for n, _ in ours] == BUILTIN_PARAMETERS[name]
        return
    theirs = inspect.signature(getattr(torch_functional, name)).parameters.values()
    assert ours == [(p.name, p.default) for p in theirs if p.name not in LEFT_OUT]


@pytest.mark.parametrize("name, expected", [("relu", [0.0, 0.0, 2.0]), ("leaky_relu", [-0.01, 0.0, 2.0])])
def test_inplace_activation_writes_into_its_input(device, name, expected):
    x = dg.tensor([-1.0, 0.0, 2.0], device=device)
    data, version = x.array, x._version[0]
    out = getattr(F, name)(x, inplace=True)
    assert out is x and x.array is data and x._version[0] > version
    np.testing.assert_allclose(host(x), expected, rtol=1e-6)


def test_inplace_silu_is_recorded_on_a_non_leaf(device):
    w = dg.tensor([-1.0, 0.5, 2.0], dtype=dg.float64, device=device, requires_grad=True)
    h = w * 1.0
    F.silu(h, inplace=True).sum().backward()
    expected = dg.tensor([-1.0, 0.5, 2.0], dtype=dg.float64, device=device, requires_grad=True)
    F.silu(expected).sum().backward()
    np.testing.assert_allclose(host(w.grad), host(expected.grad), rtol=1e-12)


def test_inplace_on_a_leaf_that_requires_grad_is_refused():
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used in an in-place"):
        F.leaky_relu(dg.randn(3, requires_grad=True), inplace=True)


def mlp_parameters(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((8, 4)) * 0.5, np.zeros(8), np.ones(8), np.zeros(8),
            rng.standard_normal((3, 8)) * 0.5, np.zeros(3)]


def mlp_loss(F, params, x, y, dropout_p=0.0):
    w1, b1, gamma, beta, w2, b2 = params
    h = F.relu(F.layer_norm(F.linear(x, w1, b1), (8,), gamma, beta))
    return F.cross_entropy(F.linear(F.dropout(h, dropout_p), w2, b2), y)


def toy_data(n=64, seed=1):
    """Three well separated blobs in 4-d."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    points = rng.standard_normal((n, 4)) * 0.3 + np.eye(3, 4)[labels] * 3
    return points, labels


def test_sgd_on_an_mlp_drives_the_loss_down(device):
    points, labels = toy_data()
    x, y = dg.tensor(points, device=device), dg.tensor(labels, device=device)
    params = [dg.tensor(p, device=device, requires_grad=True) for p in mlp_parameters()]
    dg.manual_seed(0)
    initial = mlp_loss(F, params, x, y).item()
    for _ in range(30):
        mlp_loss(F, params, x, y, dropout_p=0.1).backward()
        with dg.no_grad():
            for p in params:
                p -= 0.2 * p.grad
                p.grad = None
    assert mlp_loss(F, params, x, y).item() < 0.15 * initial  # about 0.07 * initial, whatever the masks
    predicted = host(F.linear(F.relu(F.layer_norm(F.linear(x, params[0], params[1]), (8,), params[2], params[3])),
                              params[4], params[5])).argmax(axis=1)
    assert (predicted == labels).mean() > 0.95


def test_mlp_loss_and_gradients_match_torch():
    torch = pytest.importorskip("torch")
    points, labels = toy_data(n=16)
    ours = [dg.tensor(p, dtype=dg.float64, requires_grad=True) for p in mlp_parameters()]
    theirs = [torch.tensor(p, requires_grad=True) for p in mlp_parameters()]
    loss = mlp_loss(F, ours, dg.tensor(points), dg.tensor(labels))
    expected = mlp_loss(torch.nn.functional, theirs, torch.tensor(points), torch.tensor(labels))
    loss.backward()
    expected.backward()
    np.testing.assert_allclose(loss.item(), expected.item(), rtol=1e-12)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(host(a.grad), b.grad.numpy(), rtol=1e-9, atol=1e-12)
