"""cross_entropy and nll_loss: values by hand and against PyTorch, gradients (first and second), errors."""
import math

import numpy as np
import pytest

import distgrad as dg
from distgrad.autograd import gradcheck, gradgradcheck
from distgrad.ops.loss import cross_entropy, nll_loss
from helpers import host

REDUCTIONS = ["none", "mean", "sum"]


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
