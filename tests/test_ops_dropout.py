"""dropout: masks, scaling, repeatability with manual_seed, gradients, in-place form, errors."""
import numpy as np
import pytest

import distgrad as dg
from distgrad.autograd import gradcheck
from distgrad.ops.dropout import dropout
from helpers import host


def test_kept_entries_are_scaled_and_the_rest_zeroed(device):
    x = dg.ones(20000, device=device)
    y = host(dropout(x, p=0.2))
    assert set(np.unique(y)) <= {0.0, np.float32(1 / 0.8)}
    assert abs((y == 0).mean() - 0.2) < 0.02  # 20000 draws: the standard deviation is 0.003


def test_the_same_seed_gives_the_same_mask(device):
    x = dg.ones(100, device=device)
    dg.manual_seed(5)
    first = host(dropout(x))
    second = host(dropout(x))
    dg.manual_seed(5)
    np.testing.assert_array_equal(host(dropout(x)), first)
    assert not np.array_equal(first, second)


def test_evaluation_and_p_zero_return_the_input_itself(device):
    x = dg.randn(3, device=device)
    assert dropout(x, 0.5, training=False) is x
    assert dropout(x, 0.0) is x


def test_p_one_zeroes_everything_and_its_gradient(device):
    x = dg.randn(4, device=device, requires_grad=True)
    y = dropout(x, 1.0)
    y.sum().backward()
    assert not host(y).any() and not host(x.grad).any()


def test_gradient_is_the_scaled_mask(device):
    x = dg.tensor(np.arange(1.0, 51.0), device=device, requires_grad=True)
    y = dropout(x, 0.4)
    y.sum().backward()
    np.testing.assert_allclose(host(x.grad), (host(y) != 0) / 0.6, rtol=1e-6)


def test_gradcheck_with_a_fixed_mask(device):
    x = dg.tensor(np.random.default_rng(0).standard_normal((3, 4)), dtype=dg.float64, device=device,
                  requires_grad=True)

    def thinned(t):
        dg.manual_seed(3)  # the same mask at every evaluation
        return dropout(t, 0.3)
    assert gradcheck(thinned, [x])


def test_dtype_is_kept(device):
    assert dropout(dg.randn(3, device=device), 0.5).dtype == dg.float32
    assert dropout(dg.randn(3, dtype=dg.float64, device=device), 0.5).dtype == dg.float64


def test_in_place_writes_into_the_input_and_records_the_gradient(device):
    w = dg.randn(1000, device=device, requires_grad=True)
    h = w * 2
    data, version = h.array, h._version[0]
    out = dropout(h, 0.5, inplace=True)
    assert out is h and h.array is data and h._version[0] == version + 1
    out.sum().backward()
    np.testing.assert_allclose(host(w.grad), 2 * (host(out) != 0) / 0.5, rtol=1e-6)


def test_in_place_on_a_leaf_that_requires_grad_is_refused():
    w = dg.randn(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used in an in-place"):
        dropout(w, 0.5, inplace=True)
    with dg.no_grad():
        assert dropout(w, 0.5, inplace=True) is w


def test_p_outside_the_unit_interval_is_refused():
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1, but got 1.5"):
        dropout(dg.randn(3), 1.5)
    with pytest.raises(ValueError, match="but got -0.1"):
        dropout(dg.randn(3), -0.1)
