"""cdist, and normalize / cosine_similarity / pairwise_distance with their modules.

cdist: torch's distances and gradients for p = 0, 0.5, 1, 1.5, 2 (both compute modes), 3, inf,
with broadcast batch dims; zero distances (p = 2 gives a zero gradient there, as torch); gradcheck
and double backward; torch's errors."""
import math

import numpy as np
import pytest

import distgrad as dg
import distgrad.nn.functional as F
from distgrad.autograd import gradcheck, gradgradcheck
from helpers import assert_matches_torch, assert_raises_like_torch, host, random_leaf

PS = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, math.inf]
MODES = ["use_mm_for_euclid_dist_if_necessary", "use_mm_for_euclid_dist", "donot_use_mm_for_euclid_dist"]


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("p", PS)
def test_cdist_matches_torch(seed, p, device):
    rng = np.random.default_rng(seed)
    b, n, r, m = rng.integers(1, 5, 4).tolist()
    x1, x2 = rng.standard_normal((b, n, m)), rng.standard_normal((r, m))
    assert_matches_torch(lambda t, a, c: t.cdist(a, c, p=p), [x1, x2], device, rtol=1e-6)
    assert_matches_torch(lambda t, a, c: t.cdist(a, c, p=p), [x1[:, None], x1[None]], device, rtol=1e-6)


@pytest.mark.parametrize("mode", MODES)
def test_euclidean_compute_modes_match_torch_with_many_rows(mode, device):
    rng = np.random.default_rng(0)
    x1, x2 = rng.standard_normal((2, 30, 3)), rng.standard_normal((2, 27, 3))
    assert_matches_torch(lambda t, a, c: t.cdist(a, c, compute_mode=mode), [x1, x2], device, rtol=1e-6)


@pytest.mark.parametrize("p", PS)
@pytest.mark.parametrize("mode", MODES[1:])
def test_zero_distances_get_torchs_gradient(p, mode, device):
    x1 = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, -1.0]])
    x2 = np.array([[0.0, 0.0], [1.0, 2.0], [2.0, -1.0]])
    assert_matches_torch(lambda t, a, c: t.cdist(a, c, p=p, compute_mode=mode), [x1, x2], device, rtol=1e-6)


@pytest.mark.parametrize("p", [0.5, 1.0, 1.5, 2.0, 3.0, math.inf])
def test_gradcheck_and_double_backward(p, device):
    x1, x2 = random_leaf((2, 3, 4), device), random_leaf((5, 4), device, 1)
    assert gradcheck(lambda a, b: dg.cdist(a, b, p), [x1, x2])
    if p not in (1.0, math.inf):  # piecewise linear: the second derivative is zero, finite differences agree
        assert gradgradcheck(lambda a, b: dg.cdist(a, b, p), [x1, x2])


@pytest.mark.parametrize("call,message,error", [
    (lambda m: m.cdist(m.ones(3), m.ones(3)), "cdist only supports at least 2D tensors, X1 got: 1D", RuntimeError),
    (lambda m: m.cdist(m.ones(2, 3), m.ones(2, 4)), "X1 and X2 must have the same number of columns. X1: 3 X2: 4",
     RuntimeError),
    (lambda m: m.cdist(m.ones(2, 3), m.ones(2, 3), p=-1), "cdist only supports non-negative p values", RuntimeError),
    (lambda m: m.cdist(m.ones(2, 3, dtype=m.int64), m.ones(2, 3, dtype=m.int64)),
     "cdist only supports floating-point dtypes, X1 got", RuntimeError),
    (lambda m: m.cdist(m.ones(2, 3), m.ones(2, 3), compute_mode="x"), "x is not a valid value for compute_mode",
     ValueError),
])
def test_errors_read_like_torch(call, message, error):
    assert_raises_like_torch(call, message, error)


# --- normalize, cosine_similarity, pairwise_distance (against PyTorch in float64, gradcheck) -------------------
RNG = np.random.default_rng(0)


@pytest.mark.parametrize("p,dim,shape", [(2.0, 1, (3, 4)), (1.0, 0, (3, 4)), (3.0, -1, (2, 3, 5)),
                                         (float("inf"), 1, (2, 5, 3)), (2.0, 0, (6,))])
def test_normalize_matches_torch(p, dim, shape, device):
    assert_matches_torch(lambda m, x: m.nn.functional.normalize(x, p, dim), [RNG.standard_normal(shape)], device,
                         gradcheck=True)


def test_normalize_leaves_a_zero_vector_at_zero():
    x = dg.zeros(2, 3, dtype=dg.float64)
    assert not host(F.normalize(x)).any()


@pytest.mark.parametrize("shapes,dim", [(((4, 5), (4, 5)), 1), (((3, 4, 5), (3, 4, 5)), -1), (((4, 5), (1, 5)), 1),
                                        (((2, 1, 5), (3, 5)), 2), (((6,), (6,)), 0), (((3, 4), (3, 4)), 0)])
def test_cosine_similarity_matches_torch(shapes, dim, device):
    assert_matches_torch(lambda m, a, b: m.nn.functional.cosine_similarity(a, b, dim),
                         [RNG.standard_normal(s) for s in shapes], device, gradcheck=True)


def test_cosine_similarity_stays_within_one_and_is_one_for_parallel_vectors():
    x = dg.tensor([[1e100, 1e100], [3.0, 4.0]], dtype=dg.float64)
    np.testing.assert_allclose(host(F.cosine_similarity(x, x * 2)), [1.0, 1.0])


def test_cosine_similarity_errors():
    with pytest.raises(RuntimeError, match="expected common dtype to be floating point"):
        F.cosine_similarity(dg.ones(2, 3, dtype=dg.int64), dg.ones(2, 3, dtype=dg.int64))
    with pytest.raises(RuntimeError, match="do not broadcast"):
        F.cosine_similarity(dg.ones(2, 3), dg.ones(4, 3))


@pytest.mark.parametrize("p,keepdim,shapes", [(2.0, False, ((4, 5), (4, 5))), (1.0, True, ((4, 5), (4, 5))),
                                              (3.0, False, ((2, 3, 5), (3, 5))), (2.0, False, ((5,), (5,)))])
def test_pairwise_distance_matches_torch(p, keepdim, shapes, device):
    assert_matches_torch(lambda m, a, b: m.nn.functional.pairwise_distance(a, b, p, keepdim=keepdim),
                         [RNG.standard_normal(s) for s in shapes], device, gradcheck=True)


@pytest.mark.parametrize("make", [lambda m: m.nn.CosineSimilarity(dim=0, eps=1e-6),
                                  lambda m: m.nn.PairwiseDistance(p=1.5, keepdim=True)])
def test_distance_modules_match_torch(make, device):
    assert_matches_torch(lambda m, a, b: make(m)(a, b), [RNG.standard_normal((4, 6)), RNG.standard_normal((4, 6))],
                         device)
