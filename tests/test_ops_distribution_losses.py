"""kl_div, huber_loss, poisson_nll_loss, gaussian_nll_loss, and the loss modules over the pointwise losses
(BCELoss, SmoothL1Loss, HuberLoss, KLDivLoss, PoissonNLLLoss, GaussianNLLLoss): against PyTorch in float64."""
import warnings

import numpy as np
import pytest

import distgrad as dg
import distgrad.nn.functional as F
from distgrad import nn
from helpers import assert_matches_torch, host

REDUCTIONS = ["none", "mean", "sum"]
RNG = np.random.default_rng(0)


def log_probs(shape):
    x = RNG.standard_normal(shape)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


@pytest.mark.parametrize("reduction", REDUCTIONS + ["batchmean"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_matches_torch_with_gradients_for_both_arguments(reduction, log_target, device):
    target = log_probs((4, 5)) if log_target else np.exp(log_probs((4, 5)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 'mean' warns, in both
        assert_matches_torch(lambda m, x, t: m.nn.functional.kl_div(x, t, reduction=reduction, log_target=log_target),
                             [log_probs((4, 5)), target], device, gradcheck=True)


def test_kl_div_is_zero_where_the_target_is_zero_and_mean_warns_like_torch():
    x = dg.tensor([[-1.0, -2.0]], dtype=dg.float64, requires_grad=True)
    t = dg.tensor([[0.0, 1.0]], dtype=dg.float64)
    loss = F.kl_div(x, t, reduction="none")
    np.testing.assert_allclose(host(loss), [[0.0, 2.0]])
    with pytest.warns(UserWarning, match="'batchmean' divides only by the batch size"):
        F.kl_div(x, t)
    assert F.kl_div(x, t, reduction="batchmean").item() == pytest.approx(2.0)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("delta", [1.0, 0.3, 2.5])
def test_huber_loss_matches_torch(reduction, delta, device):
    assert_matches_torch(lambda m, a, b: m.nn.functional.huber_loss(a, b, reduction, delta),
                         [RNG.standard_normal((3, 5)) * 2, RNG.standard_normal((3, 5))], device, gradcheck=True)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_weighted_huber_loss_matches_torch(reduction, device):
    w = RNG.random((3, 5))
    assert_matches_torch(lambda m, a, b: m.nn.functional.huber_loss(a, b, reduction, 0.5, m.tensor(w).to(a.device)),
                         [RNG.standard_normal((3, 5)) * 2, RNG.standard_normal((3, 5))], device, gradcheck=True)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("log_input,full", [(True, False), (False, False), (True, True), (False, True)])
def test_poisson_nll_loss_matches_torch(reduction, log_input, full, device):
    x = RNG.standard_normal((3, 4)) if log_input else RNG.uniform(0.1, 3, (3, 4))
    target = RNG.integers(0, 5, (3, 4)).astype(np.float64)
    assert_matches_torch(lambda m, a, t: m.nn.functional.poisson_nll_loss(a, t, log_input, full, reduction=reduction),
                         [x, target], device, constants=(1,), gradcheck=True)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("var_shape", [(4, 3), (4, 1), (4,)])
@pytest.mark.parametrize("full", [False, True])
def test_gaussian_nll_loss_matches_torch(reduction, var_shape, full, device):
    var = RNG.uniform(0.2, 2, var_shape)
    assert_matches_torch(lambda m, a, t, v: m.nn.functional.gaussian_nll_loss(a, t, v, full, reduction=reduction),
                         [RNG.standard_normal((4, 3)), RNG.standard_normal((4, 3)), var], device, gradcheck=True)


def test_gaussian_nll_loss_clamps_the_variance_but_passes_its_gradient_like_torch():
    torch = pytest.importorskip("torch")
    assert_matches_torch(lambda m, a, t, v: m.nn.functional.gaussian_nll_loss(a, t, v, eps=0.1),
                         [RNG.standard_normal(4), RNG.standard_normal(4), np.array([0.01, 0.5, 0.05, 2.0])], "cpu")
    assert F.gaussian_nll_loss(dg.ones(3), dg.zeros(3), 0.5).item() == pytest.approx(
        torch.nn.functional.gaussian_nll_loss(torch.ones(3), torch.zeros(3), 0.5).item())
    with pytest.raises(ValueError, match="var is of incorrect size"):
        F.gaussian_nll_loss(dg.ones(4, 3), dg.ones(4, 3), dg.ones(2))
    with pytest.raises(ValueError, match="var has negative entry"):
        F.gaussian_nll_loss(dg.ones(3), dg.ones(3), -1.0)


def test_loss_modules_match_torch(device):
    x, y = RNG.standard_normal((4, 3)), RNG.standard_normal((4, 3))
    p, q = RNG.uniform(0.05, 0.95, (4, 3)), RNG.random((4, 3))
    cases = [
        (lambda m: m.BCELoss(), [p, q], (1,)), (lambda m: m.BCELoss(reduction="sum"), [p, q], (1,)),
        (lambda m: m.SmoothL1Loss(beta=0.5), [x, y], ()), (lambda m: m.HuberLoss(delta=0.7), [x, y], ()),
        (lambda m: m.KLDivLoss(reduction="batchmean", log_target=True), [log_probs((4, 3)), log_probs((4, 3))], ()),
        (lambda m: m.PoissonNLLLoss(log_input=False, full=True), [p * 3, np.round(q * 4)], (1,)),
        (lambda m: m.GaussianNLLLoss(full=True), [x, y, p], ()),
    ]
    for build, arrays, constants in cases:
        assert_matches_torch(lambda m, *t: build(m.nn)(*t), arrays, device, constants=constants)


def test_bce_loss_weight_is_a_buffer_and_matches_torch():
    w = RNG.random((4, 3))
    ours = nn.BCELoss(weight=dg.tensor(w))
    assert "weight" in dict(ours.named_buffers())
    assert_matches_torch(lambda m, p, q: m.nn.BCELoss(weight=m.tensor(w))(p, q),
                         [RNG.uniform(0.05, 0.95, (4, 3)), RNG.random((4, 3))], "cpu", constants=(1,))
