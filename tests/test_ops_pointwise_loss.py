"""Regression and binary losses: values by hand and against PyTorch, gradients (first and second), broadcasting
warnings and errors."""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis.extra import numpy as hnp

import distgrad as dg
from distgrad.autograd import gradcheck, gradgradcheck
from distgrad.ops.pointwise_loss import (binary_cross_entropy, binary_cross_entropy_with_logits, l1_loss, mse_loss,
                                         smooth_l1_loss)
from helpers import host

REDUCTIONS = ["none", "mean", "sum"]


# --- regression losses ------------------------------------------------------------------------------
def pair(shape, device="cpu", seed=3):
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal(shape), rng.standard_normal(shape)
    return (dg.tensor(a, dtype=dg.float64, device=device, requires_grad=True),
            dg.tensor(b, dtype=dg.float64, device=device, requires_grad=True))


REGRESSION = {"mse_loss": {}, "l1_loss": {}, "smooth_l1_loss": {"beta": 0.7}, "beta_zero_is_l1": {"beta": 0.0},
              "weighted_mse": {"weight": True}, "weighted_l1": {"weight": True}}


def regression(name, device="cpu"):
    """(loss function, its keyword options) for a REGRESSION entry; weights are float64 on ``device``."""
    options = dict(REGRESSION[name])
    if options.pop("weight", False):
        options["weight"] = dg.tensor(np.random.default_rng(9).random((3, 4)), dtype=dg.float64, device=device)
    fn = {"beta_zero_is_l1": "smooth_l1_loss", "weighted_mse": "mse_loss", "weighted_l1": "l1_loss"}.get(name, name)
    return getattr(dg.ops.pointwise_loss, fn), options


def test_regression_losses_by_hand():
    x = dg.tensor([0.0, 1.0, 4.0], dtype=dg.float64)
    y = dg.tensor([0.5, 1.0, 1.0], dtype=dg.float64)
    assert mse_loss(x, y).item() == pytest.approx((0.25 + 0 + 9) / 3)
    assert l1_loss(x, y, reduction="sum").item() == pytest.approx(3.5)
    np.testing.assert_allclose(host(smooth_l1_loss(x, y, reduction="none", beta=1.0)), [0.125, 0.0, 2.5])


@pytest.mark.parametrize("name", sorted(REGRESSION))
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_regression_gradcheck(device, name, reduction):
    x, y = pair((3, 4), device)
    fn, options = regression(name, device)
    assert gradcheck(lambda a, b: fn(a, b, reduction=reduction, **options), [x, y])


@pytest.mark.parametrize("name", sorted(REGRESSION))
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_regression_matches_torch(name, reduction):
    torch = pytest.importorskip("torch")
    x, y = pair((3, 4))
    x.array[0, 0] = y.array[0, 0]  # equal entries: PyTorch's gradient of |d| there is 0
    fn, options = regression(name)
    loss = fn(x, y, reduction=reduction, **options)
    loss.backward(dg.ones(loss.shape, dtype=dg.float64))
    xt, yt = torch.tensor(host(x), requires_grad=True), torch.tensor(host(y), requires_grad=True)
    if "weight" in options:
        options["weight"] = torch.tensor(host(options["weight"]))
    expected = getattr(torch.nn.functional, fn.__name__)(xt, yt, reduction=reduction, **options)
    expected.backward(torch.ones_like(expected))
    np.testing.assert_allclose(host(loss), expected.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(host(x.grad), xt.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(host(y.grad), yt.grad.numpy(), rtol=1e-12)


@settings(max_examples=20, deadline=None)
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3))
def test_regression_broadcasts_the_target_like_numpy_and_warns(shapes):
    (input_shape, target_shape), result_shape = shapes
    x, y = pair(input_shape, seed=1)[0], pair(target_shape, seed=2)[1]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loss = mse_loss(x, y, reduction="none")
        assert len(caught) == (input_shape != target_shape)
        assert gradcheck(lambda a, b: mse_loss(a, b, reduction="sum"), [x, y])
    assert loss.shape == result_shape
    np.testing.assert_allclose(host(loss), (host(x) - host(y)) ** 2)


def test_regression_warns_when_target_broadcasts():
    with pytest.warns(UserWarning, match=r"Using a target size \(\[1, 4\]\) that is different to the input size "
                                         r"\(\[3, 4\]\)"):
        loss = mse_loss(dg.zeros(3, 4), dg.ones(1, 4))
    assert loss.item() == 1.0


def test_weights_must_have_the_input_shape():
    with pytest.raises(ValueError, match="Weights and input must have the same size."):
        mse_loss(dg.zeros(3), dg.zeros(3), weight=dg.ones(1))


def test_smooth_l1_rejects_negative_beta():
    with pytest.raises(RuntimeError, match="smooth_l1_loss does not support negative values for beta."):
        smooth_l1_loss(dg.zeros(2), dg.zeros(2), beta=-1.0)


# --- binary losses ----------------------------------------------------------------------------------
def binary_case(device="cpu", seed=4, shape=(4, 3)):
    rng = np.random.default_rng(seed)
    x = dg.tensor(rng.standard_normal(shape) * 2, dtype=dg.float64, device=device, requires_grad=True)
    y = dg.tensor(rng.random(shape), dtype=dg.float64, device=device, requires_grad=True)
    weight = dg.tensor(rng.random(shape[-1]) + 0.5, dtype=dg.float64, device=device)
    pos_weight = dg.tensor(rng.random(shape[-1]) * 3, dtype=dg.float64, device=device)
    return x, y, weight, pos_weight


@pytest.mark.parametrize("options", ["plain", "weight", "pos_weight", "both"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_with_logits_gradcheck(device, options, reduction):
    x, y, weight, pos_weight = binary_case(device)
    kwargs = {"weight": weight if options in ("weight", "both") else None,
              "pos_weight": pos_weight if options in ("pos_weight", "both") else None}
    assert gradcheck(lambda a, b: binary_cross_entropy_with_logits(a, b, reduction=reduction, **kwargs), [x, y])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_gradcheck(device, reduction):
    x, y, weight, _ = binary_case(device)
    probs = dg.tensor(0.05 + 0.9 * np.random.default_rng(5).random((4, 3)), dtype=dg.float64, device=device,
                      requires_grad=True)
    assert gradcheck(lambda a, b: binary_cross_entropy(a, b, weight, reduction=reduction), [probs, y])


def test_bce_with_logits_gradgradcheck(device):
    x, y, weight, pos_weight = binary_case(device, shape=(2, 3))
    assert gradgradcheck(lambda a, b: binary_cross_entropy_with_logits(a, b, weight, pos_weight=pos_weight), [x, y])


def test_bce_with_logits_is_stable_for_large_logits():
    x = dg.tensor([800.0, -800.0, 800.0], dtype=dg.float64, requires_grad=True)
    y = dg.tensor([1.0, 0.0, 0.0], dtype=dg.float64)
    loss = binary_cross_entropy_with_logits(x, y, reduction="none")
    np.testing.assert_allclose(host(loss), [0.0, 0.0, 800.0])
    loss.sum().backward()
    np.testing.assert_allclose(host(x.grad), [0.0, 0.0, 1.0])


def test_bce_clamps_the_log_at_minus_100():
    loss = binary_cross_entropy(dg.tensor([0.0, 1.0]), dg.tensor([1.0, 1.0]), reduction="none")
    np.testing.assert_allclose(host(loss), [100.0, 0.0])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_losses_match_torch(reduction):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x, y, weight, pos_weight = binary_case()
    probs = dg.tensor(1 / (1 + np.exp(-host(x))), dtype=dg.float64, requires_grad=True)
    ours = [binary_cross_entropy_with_logits(x, y, weight, reduction=reduction, pos_weight=pos_weight),
            binary_cross_entropy(probs, y, weight, reduction=reduction)]
    for loss in ours:
        loss.backward(dg.ones(loss.shape, dtype=dg.float64))
    xt, yt, pt = (torch.tensor(host(t), requires_grad=True) for t in (x, y, probs))
    wt, pwt = torch.tensor(host(weight)), torch.tensor(host(pos_weight))
    theirs = [F.binary_cross_entropy_with_logits(xt, yt, wt, reduction=reduction, pos_weight=pwt),
              F.binary_cross_entropy(pt, yt, wt, reduction=reduction)]
    for loss, expected in zip(ours, theirs):
        np.testing.assert_allclose(host(loss), expected.detach().numpy(), rtol=1e-10)
        expected.backward(torch.ones_like(expected))
    np.testing.assert_allclose(host(x.grad), xt.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(host(probs.grad), pt.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(host(y.grad), yt.grad.numpy(), rtol=1e-10)


def test_binary_loss_errors():
    with pytest.raises(ValueError, match=r"Target size \(\[4\]\) must be the same as input size \(\[3\]\)"):
        binary_cross_entropy_with_logits(dg.zeros(3), dg.zeros(4))
    with pytest.raises(ValueError, match=r"Using a target size \(\[4\]\) that is different to the input size "
                                         r"\(\[3\]\) is deprecated"):
        binary_cross_entropy(dg.zeros(3), dg.zeros(4))
    with pytest.raises(RuntimeError, match="all elements of input should be between 0 and 1"):
        binary_cross_entropy(dg.tensor([0.5, 1.5]), dg.zeros(2))
