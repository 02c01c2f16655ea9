"""layer_norm, batch_norm, group_norm: statistics, running-stat updates, gradients, errors, PyTorch parity."""
import numpy as np
import pytest

import distgrad as dg
from distgrad.autograd import gradcheck, gradgradcheck
from distgrad.ops.normalization import batch_norm, group_norm, layer_norm
from helpers import host


def leaf(shape, device="cpu", seed=0, offset=0.0):
    data = np.random.default_rng(seed).standard_normal(shape) + offset
    return dg.tensor(data, dtype=dg.float64, device=device, requires_grad=True)


def affine(shape, device="cpu"):
    """A (weight, bias) pair of ``shape``; the weights lie in [0.5, 1.5)."""
    rng = np.random.default_rng(7)
    return (dg.tensor(rng.random(shape) + 0.5, dtype=dg.float64, device=device, requires_grad=True),
            dg.tensor(rng.standard_normal(shape), dtype=dg.float64, device=device, requires_grad=True))


def test_layer_norm_output_has_zero_mean_and_unit_variance(device):
    x = leaf((4, 6), device, offset=3.0)
    y = host(layer_norm(x, (6,), eps=0.0))
    np.testing.assert_allclose(y.mean(axis=1), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=1), 1, rtol=1e-12)


def test_batch_norm_normalises_each_channel_over_batch_and_space(device):
    x = leaf((5, 3, 4), device, offset=-2.0)
    y = host(batch_norm(x, None, None, training=True, eps=0.0))
    np.testing.assert_allclose(y.mean(axis=(0, 2)), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(0, 2)), 1, rtol=1e-12)


def test_batch_norm_training_updates_running_stats_with_unbiased_variance(device):
    x = leaf((4, 2), device)
    running_mean = dg.zeros(2, dtype=dg.float64, device=device)
    running_var = dg.ones(2, dtype=dg.float64, device=device)
    batch_norm(x, running_mean, running_var, training=True, momentum=0.25)
    data = host(x)
    np.testing.assert_allclose(host(running_mean), 0.25 * data.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(host(running_var), 0.75 + 0.25 * data.var(axis=0, ddof=1), rtol=1e-12)
    assert running_mean._version[0] == 1


def test_batch_norm_evaluation_uses_running_stats(device):
    x = leaf((3, 2), device)
    running_mean = dg.tensor([1.0, -1.0], dtype=dg.float64, device=device)
    running_var = dg.tensor([4.0, 0.25], dtype=dg.float64, device=device)
    weight, bias = affine(2, device)
    y = batch_norm(x, running_mean, running_var, weight, bias, eps=0.0)
    expected = (host(x) - [1.0, -1.0]) / [2.0, 0.5] * host(weight) + host(bias)
    np.testing.assert_allclose(host(y), expected, rtol=1e-12)
    np.testing.assert_allclose(host(running_mean), [1.0, -1.0])  # evaluation leaves them alone


@pytest.mark.parametrize("shape", [(4, 3), (3, 2, 4), (2, 3, 2, 2)])
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_gradcheck(device, shape, training):
    x = leaf(shape, device)
    weight, bias = affine(shape[1], device)
    running_mean = dg.zeros(shape[1], dtype=dg.float64, device=device)
    running_var = dg.ones(shape[1], dtype=dg.float64, device=device)
    assert gradcheck(lambda x, w, b: batch_norm(x, running_mean, running_var, w, b, training=training),
                     [x, weight, bias])


@pytest.mark.parametrize("normalized_shape", [(4,), (3, 4)])
@pytest.mark.parametrize("with_affine", [True, False])
def test_layer_norm_gradcheck(device, normalized_shape, with_affine):
    x = leaf((2, 3, 4), device)
    if not with_affine:
        assert gradcheck(lambda x: layer_norm(x, normalized_shape), [x])
        return
    weight, bias = affine(normalized_shape, device)
    assert gradcheck(lambda x, w, b: layer_norm(x, normalized_shape, w, b), [x, weight, bias])


def test_group_norm_gradcheck(device):
    x = leaf((2, 4, 3), device)
    weight, bias = affine(4, device)
    assert gradcheck(lambda x, w, b: group_norm(x, 2, w, b), [x, weight, bias])


def test_layer_norm_gradgradcheck(device):
    x = leaf((2, 4), device)
    weight, bias = affine(4, device)
    assert gradgradcheck(lambda x, w, b: layer_norm(x, (4,), w, b), [x, weight, bias])


def test_batch_norm_training_gradgradcheck(device):
    x = leaf((3, 2, 2), device)
    weight, bias = affine(2, device)
    assert gradgradcheck(lambda x, w, b: batch_norm(x, None, None, w, b, training=True), [x, weight, bias])


@pytest.mark.parametrize("shape", [(4, 3), (3, 3, 5), (2, 3, 2, 4)])
def test_batch_norm_matches_torch_over_several_steps(shape):
    torch = pytest.importorskip("torch")
    weight, bias = affine(3)
    ours = [dg.zeros(3, dtype=dg.float64), dg.ones(3, dtype=dg.float64)]
    theirs = [torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)]
    wt, bt = (torch.tensor(host(t), requires_grad=True) for t in (weight, bias))
    for step in range(3):
        x = leaf(shape, seed=step, offset=step)
        xt = torch.tensor(host(x), requires_grad=True)
        y = batch_norm(x, *ours, weight, bias, training=True, momentum=0.3)
        yt = torch.nn.functional.batch_norm(xt, *theirs, wt, bt, training=True, momentum=0.3)
        np.testing.assert_allclose(host(y), yt.detach().numpy(), rtol=1e-10, atol=1e-12)
        (y * y * y).sum().backward()
        (yt * yt * yt).sum().backward()
        np.testing.assert_allclose(host(x.grad), xt.grad.numpy(), rtol=1e-9, atol=1e-10)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(host(a), b.numpy(), rtol=1e-12)
    np.testing.assert_allclose(host(weight.grad), wt.grad.numpy(), rtol=1e-9)
    np.testing.assert_allclose(host(bias.grad), bt.grad.numpy(), rtol=1e-9)
    evaluated = batch_norm(x, *ours, weight, bias)
    expected = torch.nn.functional.batch_norm(xt, *theirs, wt, bt)
    np.testing.assert_allclose(host(evaluated), expected.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_layer_and_group_norm_match_torch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = leaf((2, 4, 3))
    weight, bias = affine(4)
    xt, wt, bt = (torch.tensor(host(t), requires_grad=True) for t in (x, weight, bias))
    w3, b3 = affine(3)
    w3t, b3t = (torch.tensor(host(t), requires_grad=True) for t in (w3, b3))
    ours = layer_norm(x, (3,), w3, b3).sum() + (group_norm(x, 2, weight, bias) ** 2).sum()
    theirs = F.layer_norm(xt, (3,), w3t, b3t).sum() + (F.group_norm(xt, 2, wt, bt) ** 2).sum()
    ours.backward()
    theirs.backward()
    np.testing.assert_allclose(ours.item(), theirs.item(), rtol=1e-12)
    for a, b in ((x, xt), (weight, wt), (bias, bt), (w3, w3t), (b3, b3t)):
        np.testing.assert_allclose(host(a.grad), b.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_float32_stays_float32(device):
    x = dg.randn(4, 3, device=device)
    running_mean, running_var = dg.zeros(3, device=device), dg.ones(3, device=device)
    assert batch_norm(x, running_mean, running_var, training=True).dtype == dg.float32
    assert running_var.dtype == dg.float32
    assert layer_norm(x, (3,)).dtype == dg.float32


def test_layer_norm_errors():
    with pytest.raises(RuntimeError, match=r"Given normalized_shape=\[4\], expected input with shape \[\*, 4\], "
                                           r"but got input of size\[2, 3\]"):
        layer_norm(dg.randn(2, 3), (4,))
    with pytest.raises(RuntimeError, match=r"Expected weight to be of same shape as normalized_shape, but got "
                                           r"weight of shape \[4\] and normalized_shape = \[3\]"):
        layer_norm(dg.randn(2, 3), (3,), weight=dg.ones(4))


def test_batch_norm_errors():
    with pytest.raises(ValueError, match=r"Expected more than 1 value per channel when training, got input size "
                                         r"\[1, 3\]"):
        batch_norm(dg.randn(1, 3), dg.zeros(3), dg.ones(3), training=True)
    with pytest.raises(RuntimeError, match="running_mean should contain 3 elements not 4"):
        batch_norm(dg.randn(2, 3), dg.zeros(4), dg.ones(3), training=True)
    with pytest.raises(RuntimeError, match="bias should contain 3 elements not 2"):
        batch_norm(dg.randn(2, 3), dg.zeros(3), dg.ones(3), bias=dg.ones(2))
    with pytest.raises(RuntimeError, match="running_mean must be defined in evaluation mode"):
        batch_norm(dg.randn(2, 3), None, None)


def test_group_norm_needs_divisible_channels():
    with pytest.raises(RuntimeError, match=r"Expected number of channels in input to be divisible by num_groups, "
                                           r"but got input of shape \[2, 6, 3\] and num_groups=4"):
        group_norm(dg.randn(2, 6, 3), 4)
