"""cross_entropy and nll_loss: values by hand and against PyTorch, gradients (first and second), errors."""
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis.extra import numpy as hnp

import distgrad as dg
from distgrad import backend
from distgrad.autograd import gradcheck, gradgradcheck
from distgrad.ops.loss import (binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy, l1_loss,
                               mse_loss, nll_loss, smooth_l1_loss)

REDUCTIONS = ["none", "mean", "sum"]


def host(t):
    return backend.to_device(t.data, backend.CPU)


def logits(shape, device="cpu", seed=0):
    data = np.random.default_rng(seed).standard_normal(shape)
    return dg.tensor(data, dtype=dg.float64, device=device, requires_grad=True)


def class_targets(shape, num_classes, device="cpu", seed=1, ignore_index=None):
    t = np.random.default_rng(seed).integers(0, num_classes, shape)
    if ignore_index is not None:
        t.ravel()[::3] = ignore_index
    return dg.tensor(t, device=device)


def probability_targets(shape, device="cpu", seed=2):
    p = np.random.default_rng(seed).random(shape)
    p /= p.sum(axis=1, keepdims=True)
    return dg.tensor(p, dtype=dg.float64, device=device, requires_grad=True)


def class_weights(num_classes, device="cpu"):
    return dg.tensor(np.linspace(0.5, 2.0, num_classes), dtype=dg.float64, device=device)


# One entry per behaviour: (input shape, target kind, with weight, ignore_index, label_smoothing).
# With an ignore_index, every third target is set to it.
CASES = {
    "indices": ((4, 5), "index", False, None, 0.0),
    "weighted": ((4, 5), "index", True, None, 0.0),
    "ignored": ((6, 5), "index", False, -100, 0.0),
    "weighted_ignored": ((6, 5), "index", True, 2, 0.0),
    "smoothing": ((4, 5), "index", False, None, 0.2),
    "weighted_ignored_smoothing": ((6, 5), "index", True, 2, 0.3),
    "spatial_4d": ((2, 3, 2, 2), "index", True, 1, 0.1),
    "unbatched": ((5,), "index", False, None, 0.0),
    "probabilities": ((4, 5), "prob", False, None, 0.0),
    "weighted_probabilities_smoothing": ((4, 5), "prob", True, None, 0.25),
    "spatial_probabilities": ((2, 3, 2), "prob", False, None, 0.0),
}


def make_case(name, device="cpu"):
    """(logits, target, keyword options) for the named case, in float64."""
    shape, kind, weighted, ignore_index, smoothing = CASES[name]
    class_dim = 0 if len(shape) == 1 else 1
    num_classes = shape[class_dim]
    x = logits(shape, device)
    if kind == "index":
        target = class_targets(shape[:class_dim] + shape[class_dim + 1:], num_classes, device,
                               ignore_index=ignore_index)
    else:
        target = probability_targets(shape, device)
    weight = class_weights(num_classes, device) if weighted else None
    return x, target, dict(weight=weight, ignore_index=-100 if ignore_index is None else ignore_index,
                           label_smoothing=smoothing)


def test_cross_entropy_by_hand():
    x = dg.tensor([[0.0, math.log(3.0)], [0.0, 0.0]], dtype=dg.float64)
    target = dg.tensor([1, 0])
    expected = [-math.log(0.75), math.log(2.0)]
    np.testing.assert_allclose(host(cross_entropy(x, target, reduction="none")), expected, rtol=1e-12)
    np.testing.assert_allclose(cross_entropy(x, target).item(), np.mean(expected), rtol=1e-12)
    np.testing.assert_allclose(cross_entropy(x, target, reduction="sum").item(), np.sum(expected), rtol=1e-12)


def test_weighted_mean_divides_by_the_weights_of_kept_targets():
    x = dg.tensor([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]], dtype=dg.float64)
    target = dg.tensor([0, 1, -100])
    weight = dg.tensor([1.0, 3.0], dtype=dg.float64)
    # each kept sample has loss log 2, weighted 1 and 3; the ignored one counts for nothing
    assert cross_entropy(x, target, weight).item() == pytest.approx((1 + 3) * math.log(2) / (1 + 3))
    assert nll_loss(dg.log_softmax(x, 1), target, weight, reduction="sum").item() == pytest.approx(4 * math.log(2))


def test_gradient_is_softmax_minus_one_hot():
    x = logits((3, 4))
    target = dg.tensor([0, 3, 1])
    cross_entropy(x, target, reduction="sum").backward()
    expected = host(dg.softmax(x, 1)) - np.eye(4)[[0, 3, 1]]
    np.testing.assert_allclose(host(x.grad), expected, rtol=1e-12, atol=1e-15)


def test_mean_over_only_ignored_targets_is_nan_and_sum_is_zero():
    x = logits((2, 3))
    target = dg.tensor([-100, -100])
    assert math.isnan(cross_entropy(x, target).item())
    assert cross_entropy(x, target, reduction="sum").item() == 0.0


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_gradcheck(device, case, reduction):
    x, target, options = make_case(case, device)
    inputs = [x, target] if target.requires_grad else [x]
    assert gradcheck(lambda x, *t: cross_entropy(x, t[0] if t else target, reduction=reduction, **options), inputs)


@pytest.mark.parametrize("case", ["indices", "weighted_ignored_smoothing", "spatial_4d",
                                  "weighted_probabilities_smoothing"])
def test_cross_entropy_gradgradcheck(device, case):
    x, target, options = make_case(case, device)
    inputs = [x, target] if target.requires_grad else [x]
    assert gradgradcheck(lambda x, *t: cross_entropy(x, t[0] if t else target, reduction="mean", **options), inputs)


@pytest.mark.parametrize("case", ["indices", "weighted_ignored", "spatial_4d", "unbatched"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_loss_gradcheck(device, case, reduction):
    x, target, options = make_case(case, device)
    del options["label_smoothing"]
    assert gradcheck(lambda x: nll_loss(x, target, reduction=reduction, **options), [x])


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_matches_torch(case, reduction):
    torch = pytest.importorskip("torch")
    x, target, options = make_case(case)
    loss = cross_entropy(x, target, reduction=reduction, **options)
    loss.backward(dg.ones(loss.shape, dtype=dg.float64))

    xt = torch.tensor(host(x), requires_grad=True)
    tt = torch.tensor(host(target), requires_grad=target.requires_grad)
    wt = None if options["weight"] is None else torch.tensor(host(options["weight"]))
    expected = torch.nn.functional.cross_entropy(xt, tt, weight=wt, ignore_index=options["ignore_index"],
                                                 label_smoothing=options["label_smoothing"], reduction=reduction)
    expected.backward(torch.ones_like(expected))
    np.testing.assert_allclose(host(loss), expected.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(host(x.grad), xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    if target.requires_grad:
        np.testing.assert_allclose(host(target.grad), tt.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", ["indices", "weighted_ignored", "spatial_4d", "unbatched"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_loss_matches_torch(case, reduction):
    torch = pytest.importorskip("torch")
    x, target, options = make_case(case)
    loss = nll_loss(x, target, options["weight"], ignore_index=options["ignore_index"], reduction=reduction)
    loss.backward(dg.ones(loss.shape, dtype=dg.float64))
    xt = torch.tensor(host(x), requires_grad=True)
    wt = None if options["weight"] is None else torch.tensor(host(options["weight"]))
    expected = torch.nn.functional.nll_loss(xt, torch.tensor(host(target)), weight=wt,
                                            ignore_index=options["ignore_index"], reduction=reduction)
    expected.backward(torch.ones_like(expected))
    np.testing.assert_allclose(host(loss), expected.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(host(x.grad), xt.grad.numpy(), rtol=1e-12)


def test_float32_logits_give_a_float32_loss(device):
    x = dg.randn(4, 3, device=device, requires_grad=True)
    loss = cross_entropy(x, dg.tensor([0, 1, 2, 0], device=device))
    loss.backward()
    assert loss.dtype == dg.float32 and x.grad.dtype == dg.float32


def test_class_weights_take_no_gradient():
    weight = dg.ones(3, dtype=dg.float64, requires_grad=True)
    cross_entropy(logits((2, 3)), dg.tensor([0, 2]), weight).backward()
    assert weight.grad is None


@pytest.mark.parametrize("fn", [cross_entropy, nll_loss])
def test_errors_name_the_mismatch(fn):
    x = dg.randn(3, 5)
    with pytest.raises(ValueError, match=r"Expected input batch_size \(3\) to match target batch_size \(4\)\."):
        fn(x, dg.tensor([1, 2, 3, 4]))
    with pytest.raises(IndexError, match=r"Target 7 is out of bounds\."):
        fn(x, dg.tensor([1, 2, 7]))
    with pytest.raises(IndexError, match=r"Target -3 is out of bounds\."):
        fn(x, dg.tensor([1, -3, 2]))
    with pytest.raises(RuntimeError, match=r"Expected target size \[2, 4, 5\], got \[2, 4, 6\]"):
        fn(dg.randn(2, 3, 4, 5), dg.zeros(2, 4, 6, dtype=dg.int64))
    with pytest.raises(RuntimeError, match=r"weight tensor should be defined either for all 5 classes or no "
                                           r"classes but got weight tensor of shape: \[4\]"):
        fn(x, dg.tensor([1, 2, 3]), dg.ones(4))
    with pytest.raises(ValueError, match="avg is not a valid value for reduction"):
        fn(x, dg.tensor([1, 2, 3]), reduction="avg")
    with pytest.raises(RuntimeError, match="expected target dtype to be Long or Byte, but got float32"):
        fn(x, dg.randn(3))


def test_cross_entropy_option_errors():
    x = dg.randn(3, 5)
    with pytest.raises(RuntimeError, match=r"label_smoothing must be between 0.0 and 1.0. Got: 1.5"):
        cross_entropy(x, dg.tensor([1, 2, 3]), label_smoothing=1.5)
    with pytest.raises(RuntimeError, match=r"class-probability target must have the input's shape \[3, 5\], "
                                           r"got \[3, 4\]"):
        cross_entropy(x, dg.randn(3, 4))
    with pytest.raises(TypeError):  # torch's deprecated positional size_average slot is not silently misread
        cross_entropy(x, dg.tensor([1, 2, 3]), None, None)


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
    return getattr(dg.ops.loss, fn), options


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
    x.data[0, 0] = y.data[0, 0]  # equal entries: PyTorch's gradient of |d| there is 0
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
