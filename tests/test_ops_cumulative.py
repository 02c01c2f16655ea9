"""cumprod (gradients with zeros in the input, double backward), cummax and cummin (values, indices,
ties and NaN as in torch), random shapes, 0-d tensors, in-place cumprod_."""
import numpy as np
import pytest

import distgrad as dg
from distgrad.autograd import gradcheck, gradgradcheck
from helpers import assert_matches_torch, host, random_leaf


def random_case(seed: int, zeros: int = 0):
    """A random 3-d float64 array with ``zeros`` entries set to 0 (several per slice when possible)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(tuple(rng.integers(1, 6, 3).tolist()))
    x.flat[rng.choice(x.size, min(zeros, x.size), replace=False)] = 0.0
    return x


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("zeros", [0, 1, 6])
def test_cumprod_values_and_gradients_match_torch(seed, zeros, device):
    x = random_case(seed, zeros)
    for dim in range(-3, 3):
        assert_matches_torch(lambda m, a: m.cumprod(a, dim), [x], device)


@pytest.mark.parametrize("row", [[2.0, 0.0, 3.0, 0.0, 4.0], [0.0, 0.0, 2.0, 1.5, 3.0], [1.5, 2.0, 0.0, 3.0, 1.0],
                                 [1.1, 2.0, 0.5, 3.0, 0.0]])
def test_cumprod_gradient_and_double_backward_are_exact_with_zeros(row, device):
    x = dg.tensor(np.array([row, row[::-1]]), device=device, requires_grad=True)
    assert_matches_torch(lambda m, a: m.cumprod(a, 1), [np.array([row, row[::-1]])], device)
    assert gradcheck(lambda a: a.cumprod(1), [x])
    assert gradgradcheck(lambda a: a.cumprod(1), [x])
    assert gradgradcheck(lambda a: a.cumprod(0), [x])


def test_cumprod_double_backward_matches_torch_with_zeros(device):
    torch = pytest.importorskip("torch")
    values = np.array([[2.0, 0.0, 3.0, 0.0, 4.0], [1.5, 2.0, 0.0, 3.0, 1.0]])
    weights = np.random.default_rng(0).standard_normal(values.shape)
    grads = []
    for m, make in ((dg, lambda a: dg.tensor(a, device=device)), (torch, torch.tensor)):
        x = make(values).requires_grad_()
        (g,) = m.autograd.grad((m.cumprod(x, 1) * make(weights)).sum(), x, create_graph=True)
        (gg,) = m.autograd.grad((g * g).sum(), x)
        grads.append((np.asarray(host(g.detach()) if m is dg else g.detach().numpy()),
                      host(gg) if m is dg else gg.numpy()))
    np.testing.assert_allclose(grads[0][0], grads[1][0], rtol=1e-10)
    np.testing.assert_allclose(grads[0][1], grads[1][1], rtol=1e-10)


def test_cumprod_of_integers_gives_int64_and_dtype_casts_first(device):
    assert_matches_torch(lambda m, a: m.cumprod(a, 0), [np.array([1, 2, 3], dtype=np.int32)], device)
    assert_matches_torch(lambda m, a: m.cumprod(a, 0), [np.array([True, True, False])], device)
    assert_matches_torch(lambda m, a: m.cumprod(a, 0, dtype=m.float64), [np.array([1, 2, 3])], device)
    assert_matches_torch(lambda m, a: m.cumprod(a, 0), [np.array(2.5)], device)


def test_cumprod_in_place_writes_and_bumps_the_version(device):
    x = dg.tensor([1.0, 2.0, 3.0], device=device)
    assert x.cumprod_(0) is x and x._version[0] == 1
    np.testing.assert_allclose(host(x), [1, 2, 6])
    y = random_leaf((4,), device) * 1
    y.cumprod_(0)
    assert y.grad_fn is not None


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("op", ["cummax", "cummin"])
def test_cummax_cummin_match_torch(seed, op, device):
    rng = np.random.default_rng(seed)
    x = random_case(seed)
    with_ties = rng.integers(0, 3, x.shape).astype(np.float64)
    for values in (x, with_ties):
        for dim in range(-3, 3):
            assert_matches_torch(lambda m, a: getattr(m, op)(a, dim), [values], device)


@pytest.mark.parametrize("op", ["cummax", "cummin"])
def test_cummax_cummin_with_nan_integers_bools_and_0d(op, device):
    assert_matches_torch(lambda m, a: getattr(m, op)(a, 0),
                         [np.array([1.0, 3.0, 3.0, np.nan, 5.0, np.nan, 2.0])], device)
    assert_matches_torch(lambda m, a: getattr(m, op)(a, 0), [np.array([1, 2, 2, 0, 5])], device)
    assert_matches_torch(lambda m, a: getattr(m, op)(a, 0), [np.array([True, False, True])], device)
    assert_matches_torch(lambda m, a: getattr(m, op)(a, 0), [np.array(3.0)], device)


@pytest.mark.parametrize("op", ["cummax", "cummin"])
def test_cummax_cummin_gradcheck_and_double_backward(op, device):
    x = random_leaf((3, 5), device)
    assert gradcheck(lambda a: getattr(a, op)(1).values, [x])
    assert gradgradcheck(lambda a: getattr(a, op)(0).values, [x])
    result = getattr(x, op)(1)
    assert type(result).__name__ == op and not result.indices.requires_grad
