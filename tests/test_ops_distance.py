"""normalize, cosine_similarity, pairwise_distance and their modules: against PyTorch in float64, gradcheck."""
import numpy as np
import pytest

import distgrad as dg
import distgrad.nn.functional as F
from distgrad import nn
from helpers import check_against_torch, host

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("p,dim,shape", [(2.0, 1, (3, 4)), (1.0, 0, (3, 4)), (3.0, -1, (2, 3, 5)),
                                         (float("inf"), 1, (2, 5, 3)), (2.0, 0, (6,))])
def test_normalize_matches_torch(p, dim, shape, device):
    torch = pytest.importorskip("torch")
    check_against_torch(lambda x: F.normalize(x, p, dim), lambda x: torch.nn.functional.normalize(x, p, dim),
                        [RNG.standard_normal(shape)], device)


def test_normalize_leaves_a_zero_vector_at_zero():
    x = dg.zeros(2, 3, dtype=dg.float64)
    assert not host(F.normalize(x)).any()


@pytest.mark.parametrize("shapes,dim", [(((4, 5), (4, 5)), 1), (((3, 4, 5), (3, 4, 5)), -1), (((4, 5), (1, 5)), 1),
                                        (((2, 1, 5), (3, 5)), 2), (((6,), (6,)), 0), (((3, 4), (3, 4)), 0)])
def test_cosine_similarity_matches_torch(shapes, dim, device):
    torch = pytest.importorskip("torch")
    arrays = [RNG.standard_normal(s) for s in shapes]
    check_against_torch(lambda a, b: F.cosine_similarity(a, b, dim), lambda a, b: torch.nn.functional.cosine_similarity(
        a, b, dim), arrays, device)


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
    torch = pytest.importorskip("torch")
    arrays = [RNG.standard_normal(s) for s in shapes]
    check_against_torch(lambda a, b: F.pairwise_distance(a, b, p, keepdim=keepdim),
                        lambda a, b: torch.nn.functional.pairwise_distance(a, b, p, keepdim=keepdim), arrays, device)


def test_distance_modules_match_torch(device):
    torch = pytest.importorskip("torch")
    arrays = [RNG.standard_normal((4, 6)), RNG.standard_normal((4, 6))]
    for ours, theirs in ((nn.CosineSimilarity(dim=0, eps=1e-6), torch.nn.CosineSimilarity(dim=0, eps=1e-6)),
                         (nn.PairwiseDistance(p=1.5, keepdim=True), torch.nn.PairwiseDistance(p=1.5, keepdim=True))):
        check_against_torch(ours, theirs, arrays, device, gradcheck=False)
