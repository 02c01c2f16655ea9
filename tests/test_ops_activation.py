"""softmax, log_softmax, softmin: values, stability, gradients (first and second), errors."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import distgrad as dg
from distgrad.autograd import gradcheck, gradgradcheck
from distgrad.ops.activation import log_softmax, softmax, softmin
from helpers import host, random_leaf


def reference_softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax_matches_the_definition_along_each_dim(device, dim):
    x = random_leaf((3, 4, 2), device)
    np.testing.assert_allclose(host(softmax(x, dim)), reference_softmax(host(x), dim), rtol=1e-12)
    np.testing.assert_allclose(host(log_softmax(x, dim)), np.log(reference_softmax(host(x), dim)), rtol=1e-12)


def test_large_logits_neither_overflow_nor_lose_the_log(device):
    x = dg.tensor([[1000.0, 0.0, -1000.0]], dtype=dg.float32, device=device)
    np.testing.assert_allclose(host(softmax(x, 1)), [[1.0, 0.0, 0.0]])
    np.testing.assert_allclose(host(log_softmax(x, 1)), [[0.0, -1000.0, -2000.0]])


def test_softmin_is_softmax_of_the_negation(device):
    x = random_leaf((2, 5), device)
    np.testing.assert_allclose(host(softmin(x, 1)), reference_softmax(-host(x), 1), rtol=1e-12)


def test_tensor_methods_and_float32_stays_float32(device):
    x = dg.randn(2, 3, device=device)
    assert x.softmax(-1).dtype == dg.float32
    np.testing.assert_allclose(host(x.log_softmax(1)), host(log_softmax(x, 1)))


def test_dtype_argument_casts_before_computing(device):
    x = dg.randn(2, 3, device=device)
    assert softmax(x, 1, dtype=dg.float64).dtype == dg.float64


def test_zero_dim_input_has_softmax_one(device):
    x = dg.tensor(3.0, dtype=dg.float64, device=device)
    assert softmax(x, 0).item() == 1.0
    assert log_softmax(x, -1).item() == 0.0


@settings(max_examples=30, deadline=None)
@given(x=hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=4, max_side=4),
                    elements=st.floats(-50, 50)), data=st.data())
def test_softmax_sums_to_one_and_log_softmax_is_its_log(x, data):
    dim = data.draw(st.integers(-x.ndim, x.ndim - 1), label="dim")
    t = dg.tensor(x)
    np.testing.assert_allclose(host(softmax(t, dim)).sum(axis=dim), 1.0, rtol=1e-12)
    np.testing.assert_allclose(np.exp(host(log_softmax(t, dim))), host(softmax(t, dim)), rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("op", [softmax, log_softmax, softmin])
@pytest.mark.parametrize("dim", [0, 1, 2])
def test_gradcheck(device, op, dim):
    x = random_leaf((2, 3, 4), device)
    assert gradcheck(lambda t: op(t, dim), [x])


@pytest.mark.parametrize("op", [softmax, log_softmax])
def test_gradcheck_on_a_non_contiguous_input(device, op):
    base = np.random.default_rng(1).standard_normal((4, 3))
    x = dg.tensor(base, dtype=dg.float64, device=device)
    x = dg.Tensor(x.array.T).requires_grad_()
    assert not x.array.flags.c_contiguous
    assert gradcheck(lambda t: op(t, 1), [x])


@pytest.mark.parametrize("op", [softmax, log_softmax])
@pytest.mark.parametrize("dim", [0, -1])
def test_gradgradcheck(device, op, dim):
    x = random_leaf((3, 4), device)
    assert gradgradcheck(lambda t: op(t, dim), [x])


def test_dim_out_of_range_names_the_valid_range():
    with pytest.raises(IndexError, match=r"Dimension out of range \(expected to be in range of \[-2, 1\], but got 2\)"):
        softmax(dg.randn(3, 4), 2)


def test_integer_input_is_refused():
    with pytest.raises(NotImplementedError, match="softmax.*int64"):
        softmax(dg.tensor([1, 2]), 0)


def test_missing_dim_warns_and_uses_torch_legacy_choice():
    x = dg.randn(2, 3)
    with pytest.warns(UserWarning, match="Implicit dimension choice for softmax"):
        y = softmax(x)
    np.testing.assert_allclose(host(y), host(softmax(x, 1)))


def test_values_and_gradients_match_torch():
    torch = pytest.importorskip("torch")
    data = np.random.default_rng(2).standard_normal((3, 5)) * 4
    weights = np.random.default_rng(3).standard_normal((3, 5))
    for ours, theirs in ((softmax, torch.softmax), (log_softmax, torch.log_softmax)):
        x = dg.tensor(data, requires_grad=True, dtype=dg.float64)
        (ours(x, 1) * dg.tensor(weights)).sum().backward()
        xt = torch.tensor(data, requires_grad=True)
        (theirs(xt, 1) * torch.tensor(weights)).sum().backward()
        np.testing.assert_allclose(host(ours(x, 1)), theirs(xt, 1).detach().numpy(), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(host(x.grad), xt.grad.numpy(), rtol=1e-10, atol=1e-14)
