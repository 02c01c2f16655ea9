"""The margin losses (cosine embedding, margin ranking, hinge embedding, soft margin, multilabel soft margin,
triplet margin) and their modules: against PyTorch in float64 over every reduction, gradcheck, errors."""
import numpy as np
import pytest

import distgrad as dg
import distgrad.nn.functional as F
from helpers import assert_matches_torch

REDUCTIONS = ["none", "mean", "sum"]
RNG = np.random.default_rng(0)


def signs(shape, dtype=np.float64):
    return RNG.choice([-1, 1], shape).astype(dtype)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("batched", [True, False])
def test_cosine_embedding_loss_matches_torch(reduction, batched, device):
    shape = (6, 5) if batched else (5,)
    target = signs(shape[:-1], np.int64)
    for margin in (0.0, 0.3, -0.5):
        assert_matches_torch(
            lambda m, a, b, t: m.nn.functional.cosine_embedding_loss(a, b, t, margin, reduction=reduction),
            [RNG.standard_normal(shape), RNG.standard_normal(shape), target], device, gradcheck=True)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_margin_ranking_hinge_and_soft_margin_losses_match_torch(reduction, device):
    x1, x2 = RNG.standard_normal(7), RNG.standard_normal(7)
    # margin 0.25: no input lands exactly on the hinge
    assert_matches_torch(lambda m, a, b, t: m.nn.functional.margin_ranking_loss(a, b, t, 0.25, reduction=reduction),
                         [x1, x2, signs(7)], device, constants=(2,), gradcheck=True)
    assert_matches_torch(lambda m, a, t: m.nn.functional.hinge_embedding_loss(a, t, 0.7, reduction=reduction),
                         [RNG.uniform(0, 2, (3, 4)), signs((3, 4))], device, constants=(1,), gradcheck=True)
    assert_matches_torch(lambda m, a, t: m.nn.functional.soft_margin_loss(a, t, reduction=reduction),
                         [RNG.standard_normal((3, 4)), signs((3, 4))], device, constants=(1,), gradcheck=True)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_multilabel_soft_margin_loss_matches_torch(reduction, weighted, device):
    x, y = RNG.standard_normal((4, 5)), RNG.integers(0, 2, (4, 5)).astype(np.float64)
    w = RNG.random(5)
    assert_matches_torch(lambda m, a, t: m.nn.functional.multilabel_soft_margin_loss(
        a, t, m.tensor(w).to(a.device) if weighted else None, reduction=reduction), [x, y], device, constants=(1,),
        gradcheck=True)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("p,swap", [(2.0, False), (1.0, True), (3.0, False)])
def test_triplet_margin_loss_matches_torch(reduction, p, swap, device):
    arrays = [RNG.standard_normal((5, 4)) for _ in range(3)]
    assert_matches_torch(
        lambda m, a, b, c: m.nn.functional.triplet_margin_loss(a, b, c, 1.5, p, swap=swap, reduction=reduction),
        arrays, device, gradcheck=True)


def test_margin_loss_modules_match_torch(device):
    x1, x2, x3 = (RNG.standard_normal((4, 3)) for _ in range(3))
    cases = [
        ("CosineEmbeddingLoss", (0.2,), [x1, x2, signs(4, np.int64)]),
        ("MarginRankingLoss", (0.1,), [x1[:, 0], x2[:, 0], signs(4)]),
        ("HingeEmbeddingLoss", (0.5,), [np.abs(x1), signs((4, 3))]),
        ("SoftMarginLoss", (), [x1, signs((4, 3))]),
        ("MultiLabelSoftMarginLoss", (), [x1, RNG.integers(0, 2, (4, 3)).astype(np.float64)]),
        ("TripletMarginLoss", (0.8,), [x1, x2, x3]),
    ]
    for name, args, arrays in cases:
        constants = (len(arrays) - 1,) if name != "TripletMarginLoss" else ()
        assert_matches_torch(lambda m, *t: getattr(m.nn, name)(*args, reduction="sum")(*t), arrays, device,
                             constants=constants)


def test_margin_loss_errors_like_torch():
    with pytest.raises(ValueError, match="margin must be greater than 0, got 0"):
        F.triplet_margin_loss(dg.ones(2, 3), dg.ones(2, 3), dg.ones(2, 3), margin=0)
    with pytest.raises(RuntimeError, match="0D or 1D target tensor expected, multi-target not supported"):
        F.cosine_embedding_loss(dg.ones(3), dg.ones(3), dg.ones(3, 2))
    with pytest.raises(RuntimeError, match=r"1D target tensor expects 2D input tensors, but found inputs with sizes "
                                           r"\[3\] and \[3\]"):
        F.cosine_embedding_loss(dg.ones(3), dg.ones(3), dg.ones(3))
    with pytest.raises(RuntimeError, match="All input tensors should have same dimension"):
        F.margin_ranking_loss(dg.ones(3), dg.ones(3, 1), dg.ones(3))
    with pytest.raises(ValueError, match="is not a valid value for reduction"):
        F.soft_margin_loss(dg.ones(3), dg.ones(3), reduction="avg")
