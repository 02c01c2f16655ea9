"""sort, argsort, msort, topk, kthvalue, unique, unique_consecutive: torch's values, indices and
gradients; stability, NaN order, 0-d tensors, gradcheck and double backward; torch's errors."""
import numpy as np
import pytest

import distgrad as dg
from distgrad.autograd import gradcheck, gradgradcheck
from helpers import assert_matches_torch, assert_raises_like_torch, host, random_leaf

RNG = np.random.default_rng(0)


def random_shape(seed: int, ndim: int = 3) -> tuple:
    return tuple(np.random.default_rng(seed).integers(1, 6, ndim).tolist())


def ties(shape, seed=0):
    """Small integers as floats: many equal entries, to test stability."""
    return np.random.default_rng(seed).integers(0, 3, shape).astype(np.float64)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("dim", [0, -1, 1])
@pytest.mark.parametrize("descending", [False, True])
def test_sort_matches_torch_stable_sort(seed, dim, descending, device):
    for values in (RNG.standard_normal(random_shape(seed)), ties(random_shape(seed), seed)):
        assert_matches_torch(lambda m, x: m.sort(x, dim=dim, descending=descending, stable=True), [values], device)
        assert_matches_torch(lambda m, x: m.argsort(x, dim=dim, descending=descending, stable=True), [values], device)


def test_sort_puts_nan_last_ascending_and_first_descending(device):
    values = np.array([[1.0, np.nan, 0.0, np.nan, -2.0], [np.nan, 3.0, 3.0, 1.0, np.nan]])
    for descending in (False, True):
        assert_matches_torch(lambda m, x: m.sort(x, descending=descending, stable=True), [values], device)


def test_sort_of_integers_bools_and_0d_tensors(device):
    assert_matches_torch(lambda m, x: m.sort(x, descending=True, stable=True), [np.array([3, 1, 3, 2])], device)
    assert_matches_torch(lambda m, x: m.sort(x, stable=True), [np.array([True, False, True])], device)
    assert_matches_torch(lambda m, x: m.sort(x), [np.array(2.5)], device)
    assert_matches_torch(lambda m, x: x.msort(), [RNG.standard_normal((4, 3))], device)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("largest", [True, False])
def test_topk_matches_torch(seed, largest, device):
    shape = random_shape(seed)
    values = RNG.standard_normal(shape)
    for dim in range(len(shape)):
        for k in (0, 1, shape[dim]):
            assert_matches_torch(lambda m, x: m.topk(x, k, dim=dim, largest=largest), [values], device)


def test_topk_counts_nan_as_largest(device):
    assert_matches_torch(lambda m, x: x.topk(2), [np.array([1.0, np.nan, 3.0])], device)
    assert_matches_torch(lambda m, x: x.topk(2, largest=False), [np.array([1.0, np.nan, 3.0])], device)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("keepdim", [False, True])
def test_kthvalue_matches_torch(seed, keepdim, device):
    shape = random_shape(seed)
    values = RNG.standard_normal(shape)
    for dim in range(-len(shape), len(shape)):
        for k in {1, shape[dim]}:
            assert_matches_torch(lambda m, x: m.kthvalue(x, k, dim, keepdim=keepdim), [values], device)


def test_0d_topk_and_kthvalue(device):
    assert_matches_torch(lambda m, x: x.topk(1), [np.array(4.0)], device)
    assert_matches_torch(lambda m, x: x.kthvalue(1), [np.array(4.0)], device)


@pytest.mark.parametrize("op", [lambda x: x.sort(1, descending=True).values, lambda x: x.topk(2, 0).values,
                                lambda x: x.kthvalue(2, 1).values, lambda x: x.sort(0).values.exp()],
                         ids=["sort", "topk", "kthvalue", "sort-exp"])
def test_gradcheck_and_double_backward(op, device):
    x = random_leaf((3, 4), device)
    assert gradcheck(op, [x])
    assert gradgradcheck(op, [x])


def test_outputs_are_named_tuples_and_indices_never_require_grad(device):
    x = random_leaf((3, 4), device)
    for result in (x.sort(), x.topk(2), x.kthvalue(1)):
        assert result.values.requires_grad and not result.indices.requires_grad
        assert result.indices.dtype == dg.int64
    assert type(x.sort()).__name__ == "sort" and type(x.topk(1)).__name__ == "topk"


@pytest.mark.parametrize("call,message", [
    (lambda m: m.ones(3, 4).topk(5), "selected index k out of range"),
    (lambda m: m.ones(3, 4).topk(-1), "selected index k out of range"),
    (lambda m: m.ones(3, 4).kthvalue(0), "kthvalue\\(\\): selected number k out of range for dimension 1"),
    (lambda m: m.ones(3, 4).kthvalue(5), "kthvalue\\(\\): selected number k out of range for dimension 1"),
])
def test_errors_read_like_torch(call, message):
    assert_raises_like_torch(call, message)


# --- unique ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("inverse,counts", [(False, False), (True, False), (False, True), (True, True)])
def test_unique_matches_torch(seed, inverse, counts, device):
    values = np.random.default_rng(seed).integers(-2, 3, random_shape(seed))
    assert_matches_torch(lambda m, x: m.unique(x, return_inverse=inverse, return_counts=counts), [values], device)
    for dim in range(values.ndim):
        assert_matches_torch(lambda m, x: m.unique(x, return_inverse=inverse, return_counts=counts, dim=dim),
                             [values], device)
        assert_matches_torch(lambda m, x: m.unique_consecutive(x, return_inverse=inverse, return_counts=counts,
                                                               dim=dim), [values], device)
    assert_matches_torch(lambda m, x: m.unique_consecutive(x, return_inverse=inverse, return_counts=counts),
                         [values], device)


def test_unique_keeps_each_nan_apart_and_sorts_floats(device):
    values = np.array([2.0, np.nan, 1.0, np.nan, 2.0])
    assert_matches_torch(lambda m, x: m.unique(x, return_inverse=True, return_counts=True), [values], device,
                         backward=False)


def test_unique_of_empty_tensors(device):
    assert_matches_torch(lambda m, x: m.unique(x, return_inverse=True, return_counts=True), [np.zeros((0, 3))],
                         device, backward=False)
    assert_matches_torch(lambda m, x: m.unique(x, return_inverse=True, return_counts=True, dim=0),
                         [np.zeros((0, 2))], device, backward=False)


def test_unique_inverse_rebuilds_the_input(device):
    x = dg.tensor(RNG.integers(0, 4, (3, 5)), device=device)
    values, inverse = x.unique(return_inverse=True)
    np.testing.assert_array_equal(host(values)[host(inverse)], host(x))


def test_unique_along_a_dim_with_empty_other_dims_raises():
    with pytest.raises(RuntimeError, match="There are 0 sized dimensions, and they aren't selected"):
        dg.unique(dg.zeros(2, 0), dim=0)
