"""Elementwise ops: values against NumPy (and torch where installed), gradients against finite differences."""
import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

import distgrad as dg
from distgrad.autograd.gradcheck import gradcheck, gradgradcheck
from helpers import host

fixture_settings = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
_erf = np.vectorize(math.erf)


def leaf(values, device, dtype=dg.float64):
    return dg.tensor(np.asarray(values), dtype=dtype, device=device, requires_grad=True)


def transposed(values, device):
    """A float64 leaf that is a non-contiguous (transposed) view."""
    base = dg.tensor(np.asarray(values), dtype=dg.float64, device=device)
    return dg.Tensor(base.array.T).requires_grad_()


def sample(rng, shape, low, high, signed):
    """Uniform on [low, high]; ``signed`` flips random signs, keeping |x| >= low away from a kink at 0."""
    x = rng.uniform(low, high, shape)
    return x * rng.choice([-1.0, 1.0], shape) if signed else x


def _gelu_ref(x):
    return 0.5 * x * (1 + _erf(x / math.sqrt(2)))


def _gelu_tanh_ref(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


# name: (distgrad op, NumPy reference, (low, high, signed) input domain)
UNARY = {
    "exp": (dg.exp, np.exp, (-2, 2, False)),
    "log": (dg.log, np.log, (0.5, 3, False)),
    "log1p": (dg.log1p, np.log1p, (-0.5, 2, False)),
    "expm1": (dg.expm1, np.expm1, (-2, 2, False)),
    "sqrt": (dg.sqrt, np.sqrt, (0.5, 3, False)),
    "rsqrt": (dg.rsqrt, lambda x: 1 / np.sqrt(x), (0.5, 3, False)),
    "square": (dg.square, np.square, (-2, 2, False)),
    "reciprocal": (dg.reciprocal, lambda x: 1 / x, (0.5, 3, True)),
    "abs": (dg.abs, np.abs, (0.1, 2, True)),
    "sin": (dg.sin, np.sin, (-3, 3, False)),
    "cos": (dg.cos, np.cos, (-3, 3, False)),
    "tan": (dg.tan, np.tan, (-1.2, 1.2, False)),
    "tanh": (dg.tanh, np.tanh, (-3, 3, False)),
    "sigmoid": (dg.sigmoid, lambda x: 1 / (1 + np.exp(-x)), (-4, 4, False)),
    "erf": (dg.erf, _erf, (-3, 3, False)),
    "relu": (dg.relu, lambda x: np.maximum(x, 0), (0.1, 2, True)),
    "leaky_relu": (lambda x: dg.leaky_relu(x, 0.2), lambda x: np.where(x > 0, x, 0.2 * x), (0.1, 2, True)),
    "gelu": (dg.gelu, _gelu_ref, (-4, 4, False)),
    "gelu_tanh": (lambda x: dg.gelu(x, approximate="tanh"), _gelu_tanh_ref, (-4, 4, False)),
    "silu": (dg.silu, lambda x: x / (1 + np.exp(-x)), (-4, 4, False)),
    "softplus": (dg.softplus, lambda x: np.log1p(np.exp(x)), (-4, 4, False)),
    "softplus_beta_threshold": (lambda x: dg.softplus(x, beta=2, threshold=3),
                                lambda x: np.where(2 * x > 3, x, np.log1p(np.exp(2 * x)) / 2), (-3, 3, False)),
    "clamp": (lambda x: x.clamp(-0.5, 0.7), lambda x: np.clip(x, -0.5, 0.7), (-1.5, 1.5, False)),
    "clamp_min": (lambda x: x.clamp(min=0.3), lambda x: np.maximum(x, 0.3), (-1.5, 1.5, False)),
    "clip_max": (lambda x: dg.clip(x, max=0.3), lambda x: np.minimum(x, 0.3), (-1.5, 1.5, False)),
}


@pytest.mark.parametrize("name", UNARY)
def test_unary_forward_matches_numpy(name, device):
    op, ref, (low, high, signed) = UNARY[name]
    x = sample(np.random.default_rng(0), (5, 4), low, high, signed)
    for dtype, rtol in ((dg.float64, 1e-12), (dg.float32, 1e-5)):
        out = op(dg.tensor(x, dtype=dtype, device=device))
        assert out.dtype == dtype
        np.testing.assert_allclose(host(out), ref(x.astype(dtype)), rtol=rtol, atol=rtol)


@pytest.mark.parametrize("name", UNARY)
def test_unary_gradcheck_on_transposed_input(name, device):
    op, _, (low, high, signed) = UNARY[name]
    x = transposed(sample(np.random.default_rng(1), (4, 3), low, high, signed), device)
    assert not x.array.flags.c_contiguous
    assert gradcheck(op, (x,))


@pytest.mark.parametrize("name", ["exp", "tanh", "sigmoid", "erf", "gelu", "gelu_tanh", "silu", "softplus", "rsqrt"])
def test_unary_double_backward(name, device):
    op, _, (low, high, signed) = UNARY[name]
    x = leaf(sample(np.random.default_rng(2), (3, 2), low, high, signed), device)
    assert gradgradcheck(op, (x,))


@pytest.mark.parametrize("method", ["exp", "log", "log1p", "expm1", "sqrt", "rsqrt", "square", "reciprocal", "abs",
                                    "sign", "sin", "cos", "tan", "tanh", "sigmoid", "erf", "relu", "floor", "ceil",
                                    "round", "trunc", "isnan", "isinf", "isfinite"])
def test_tensor_method_is_the_function(method):
    x = dg.tensor([0.5, 1.5, 2.5])
    np.testing.assert_array_equal(getattr(x, method)().array, getattr(dg, method)(x).array)


def test_erf_relative_error_is_below_1e_15(device):
    x = np.concatenate([np.linspace(-8, 8, 20000), np.logspace(-300, 1.5, 2000), -np.logspace(-300, 1.5, 2000)])
    expected = _erf(x)
    got = host(dg.erf(dg.tensor(x, device=device)))
    assert np.max(np.abs(got - expected) / np.abs(expected)) < 1e-15


def test_erf_limits_and_nan(device):
    got = host(dg.erf(dg.tensor([np.inf, -np.inf, 30.0, -0.0, np.nan], device=device)))
    np.testing.assert_array_equal(got[:4], [1.0, -1.0, 1.0, 0.0])
    assert np.isnan(got[4])


def test_sigmoid_and_softplus_are_exact_at_extremes_without_overflow(device):
    x = dg.tensor([-1000.0, 1000.0, -50.0], dtype=dg.float64, device=device)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s, sp = host(dg.sigmoid(x)), host(dg.softplus(x))
    np.testing.assert_allclose(s, [0.0, 1.0, np.exp(-50.0)], rtol=1e-15)
    np.testing.assert_allclose(sp, [0.0, 1000.0, np.exp(-50.0)], rtol=1e-15)


def test_gelu_rejects_an_unknown_approximation():
    with pytest.raises(RuntimeError, match="approximate argument must be either none or tanh"):
        dg.gelu(dg.tensor([1.0]), approximate="fast")


# --- PyTorch's conventions at kinks and ties -------------------------------------------------------
def _grads_like_torch(fn_dg, fn_torch, *values):
    torch = pytest.importorskip("torch")
    ours = [dg.tensor(v, dtype=dg.float64, requires_grad=True) for v in values]
    theirs = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in values]
    out, expected = fn_dg(*ours), fn_torch(*theirs)
    np.testing.assert_allclose(out.array, expected.detach().numpy(), rtol=1e-12, atol=1e-300)
    out.backward(dg.ones_like(out))
    expected.backward(torch.ones_like(expected))
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.grad.array, b.grad.numpy(), rtol=1e-12)


KINKS = [-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0]


@pytest.mark.parametrize("name", ["relu", "abs", "sign", "leaky_relu", "clamp", "floor", "round", "gelu",
                                  "gelu_tanh", "softplus", "silu"])
def test_values_and_gradients_at_kinks_match_torch(name):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    pairs = {
        "relu": (dg.relu, torch.relu), "abs": (dg.abs, torch.abs), "sign": (dg.sign, torch.sign),
        "leaky_relu": (lambda x: dg.leaky_relu(x, 0.1), lambda x: F.leaky_relu(x, 0.1)),
        "clamp": (lambda x: x.clamp(-1.0, 1.0), lambda x: x.clamp(-1.0, 1.0)),
        "floor": (dg.floor, torch.floor), "round": (dg.round, torch.round),
        "gelu": (dg.gelu, F.gelu), "gelu_tanh": (lambda x: dg.gelu(x, "tanh"), lambda x: F.gelu(x, approximate="tanh")),
        "softplus": (lambda x: dg.softplus(x, beta=2, threshold=2), lambda x: F.softplus(x, beta=2, threshold=2)),
        "silu": (dg.silu, F.silu),
    }
    ours, theirs = pairs[name]
    _grads_like_torch(ours, theirs, KINKS)


def test_sign_of_nan_is_zero_like_torch(device):
    assert host(dg.sign(dg.tensor([np.nan, -3.0], device=device))).tolist() == [0.0, -1.0]


def test_clamp_passes_the_gradient_at_its_bounds(device):
    x = leaf([-1.0, -0.5, 0.0, 0.5, 1.0], device)
    x.clamp(-0.5, 0.5).backward(dg.ones(5, dtype=dg.float64, device=device))
    assert host(x.grad).tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]


def test_clamp_with_tensor_bounds_matches_torch_even_when_min_exceeds_max():
    values = [-2.0, 0.0, 1.0, 3.0]
    lo, hi = [-1.0, 2.0, 0.5, 0.0], [1.0, 1.0, 0.5, 2.0]
    _grads_like_torch(lambda x, a, b: dg.clamp(x, a, b), lambda x, a, b: x.clamp(a, b), values, lo, hi)


@pytest.mark.parametrize("op", ["maximum", "minimum"])
def test_maximum_minimum_split_the_gradient_on_ties(op, device):
    a, b = leaf([1.0, 2.0, 3.0], device), leaf([1.0, 5.0, 0.0], device)
    getattr(dg, op)(a, b).backward(dg.ones(3, dtype=dg.float64, device=device))
    first_wins = [0.5, 0.0, 1.0] if op == "maximum" else [0.5, 1.0, 0.0]
    assert host(a.grad).tolist() == first_wins
    assert host(b.grad).tolist() == [1 - g for g in first_wins]


def test_clamp_needs_a_bound():
    with pytest.raises(RuntimeError, match="At least one of 'min' or 'max' must not be None"):
        dg.clamp(dg.tensor([1.0]))


def test_maximum_rejects_a_number():
    with pytest.raises(TypeError, match=r"maximum\(\): argument 'other' \(position 2\) must be Tensor, not int"):
        dg.maximum(dg.tensor([1.0]), 2)


# --- broadcasting binary ops ----------------------------------------------------------------------
@fixture_settings
@given(shapes=mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3), seed=st.integers(0, 2 ** 16))
def test_maximum_minimum_broadcast(device, shapes, seed):
    rng = np.random.default_rng(seed)
    a, b = (rng.standard_normal(s) for s in shapes.input_shapes)
    ta, tb = leaf(a, device), leaf(b, device)
    assert host(dg.maximum(ta, tb)).tolist() == np.maximum(a, b).tolist()
    assert host(dg.minimum(ta, tb)).tolist() == np.minimum(a, b).tolist()
    assert gradcheck(dg.maximum, (ta, tb)) and gradcheck(dg.minimum, (ta, tb))


@fixture_settings
@given(shapes=mutually_broadcastable_shapes(num_shapes=3, max_dims=3, max_side=3), seed=st.integers(0, 2 ** 16))
def test_where_broadcasts_all_three_and_sums_gradients_back(device, shapes, seed):
    rng = np.random.default_rng(seed)
    sc, sa, sb = shapes.input_shapes
    cond = rng.random(sc) > 0.5
    a, b = rng.standard_normal(sa), rng.standard_normal(sb)
    tc, ta, tb = dg.tensor(cond, device=device), leaf(a, device), leaf(b, device)
    out = dg.where(tc, ta, tb)
    assert out.shape == shapes.result_shape
    np.testing.assert_array_equal(host(out), np.where(cond, a, b))
    assert gradcheck(lambda x, y: dg.where(tc, x, y), (ta, tb))


@fixture_settings
@given(shapes=mutually_broadcastable_shapes(num_shapes=3, max_dims=3, max_side=3), seed=st.integers(0, 2 ** 16))
def test_clamp_with_broadcast_tensor_bounds(device, shapes, seed):
    rng = np.random.default_rng(seed)
    sx, slo, shi = shapes.input_shapes
    x, lo, hi = rng.normal(0, 1.5, sx), rng.uniform(-1, -0.1, slo), rng.uniform(0.1, 1, shi)
    tx, tlo, thi = leaf(x, device), leaf(lo, device), leaf(hi, device)
    np.testing.assert_array_equal(host(dg.clamp(tx, tlo, thi)), np.minimum(np.maximum(x, lo), hi))
    assert gradcheck(dg.clamp, (tx, tlo, thi))


def test_where_gradients_have_each_inputs_shape(device):
    cond = dg.tensor([[True], [False], [True]], device=device)
    a, b = leaf(np.ones((1, 4)), device), leaf(2.0, device)
    dg.where(cond, a, b).backward(dg.ones(3, 4, dtype=dg.float64, device=device))
    assert host(a.grad).tolist() == [[2.0] * 4] and host(b.grad).item() == 4.0


def test_where_with_numbers_keeps_torchs_dtypes():
    cond = dg.tensor([True, False])
    assert dg.where(cond, dg.tensor([1.0, 2.0]), 0.5).dtype == dg.float32
    assert dg.where(cond, dg.tensor([1, 2]), 0.5).dtype == dg.float32
    assert dg.where(cond, 1.0, 0).dtype == dg.float32
    assert dg.where(cond, 1, 0).dtype == dg.int64
    assert dg.tensor([1.0, 2.0]).where(cond, -1.0).tolist() == [1.0, -1.0]


def test_where_with_only_a_condition_gives_indices():
    rows, cols = dg.where(dg.tensor([[True, False], [False, True]]))
    assert rows.tolist() == [0, 1] and cols.tolist() == [0, 1]


def test_where_requires_a_bool_condition():
    with pytest.raises(RuntimeError, match="where expected condition to be a boolean tensor, but got .*float32"):
        dg.where(dg.tensor([1.0]), dg.tensor([1.0]), dg.tensor([2.0]))


# --- rounding, integer inputs -----------------------------------------------------------------------
@pytest.mark.parametrize("op", [dg.floor, dg.ceil, dg.round, dg.trunc, dg.sign])
def test_rounding_ops_have_zero_gradient(op, device):
    x = leaf([-1.7, -0.2, 0.4, 2.5], device)
    out = op(x)
    assert out.requires_grad
    out.backward(dg.ones(4, dtype=dg.float64, device=device))
    assert host(x.grad).tolist() == [0.0] * 4


def test_rounding_values():
    x = dg.tensor([-1.5, -0.5, 0.5, 1.5, 2.5, 2.7])
    assert dg.floor(x).tolist() == [-2, -1, 0, 1, 2, 2]
    assert dg.ceil(x).tolist() == [-1, -0, 1, 2, 3, 3]
    assert dg.trunc(x).tolist() == [-1, -0, 0, 1, 2, 2]
    assert dg.round(x).tolist() == [-2, -0, 0, 2, 2, 3]  # half to even, as in torch
    np.testing.assert_allclose(dg.round(dg.tensor([1.2345, -0.0151]), decimals=2).array, [1.23, -0.02])


def test_integer_inputs_follow_torchs_result_dtypes():
    ints = dg.tensor([-2, 0, 3])
    assert dg.exp(ints).dtype == dg.float32 and dg.sigmoid(ints).dtype == dg.float32
    assert dg.abs(ints).tolist() == [2, 0, 3] and dg.abs(ints).dtype == dg.int64
    assert dg.relu(ints).tolist() == [0, 0, 3] and dg.floor(ints).dtype == dg.int64
    assert dg.square(ints).tolist() == [4, 0, 9]


# --- comparisons and logic --------------------------------------------------------------------------
COMPARISONS = [("eq", "__eq__", np.equal), ("ne", "__ne__", np.not_equal), ("lt", "__lt__", np.less),
               ("le", "__le__", np.less_equal), ("gt", "__gt__", np.greater), ("ge", "__ge__", np.greater_equal)]


@pytest.mark.parametrize("name, dunder, ref", COMPARISONS)
def test_comparisons_give_bool_tensors_outside_the_graph(name, dunder, ref, device):
    a, b = np.array([[1.0, 2.0, 3.0]]), np.array([[2.0], [3.0]])
    ta = leaf(a, device)
    for other, other_ref in ((dg.tensor(b, dtype=dg.float64, device=device), b), (2.0, 2.0)):
        for out in (getattr(dg, name)(ta, other), getattr(ta, name)(other), getattr(ta, dunder)(other)):
            assert out.dtype == dg.bool and not out.requires_grad and out.grad_fn is None
            np.testing.assert_array_equal(host(out), ref(a, other_ref))


def test_comparisons_with_a_number_on_the_left_are_reflected():
    x = dg.tensor([1.0, 2.0, 3.0])
    assert (2 < x).tolist() == [False, False, True] and (2 >= x).tolist() == [True, True, False]
    assert (2 == x).tolist() == [False, True, False]


def test_comparing_with_none_is_false_not_an_error():
    x = dg.tensor([1.0])
    assert (x == None) is False and (x != None) is True  # noqa: E711


def test_logical_ops_and_operators_on_bool_tensors(device):
    a = dg.tensor([True, True, False, False], device=device)
    b = dg.tensor([True, False, True, False], device=device)
    assert host(~a).tolist() == [False, False, True, True]
    assert host(a & b).tolist() == [True, False, False, False] == host(dg.logical_and(a, b)).tolist()
    assert host(a | b).tolist() == [True, True, True, False] == host(dg.logical_or(a, b)).tolist()
    assert host(a ^ b).tolist() == [False, True, True, False] == host(dg.logical_xor(a, b)).tolist()
    assert host(True & b).tolist() == host(b).tolist()
    assert host(dg.logical_not(dg.tensor([0.0, 2.0], device=device))).tolist() == [True, False]
    assert host(dg.logical_and(dg.tensor([1.0, 0.0], device=device), dg.tensor([3, 3], device=device))).tolist() == \
        [True, False]


def test_bitwise_operators_on_integers_and_not_on_floats():
    assert (~dg.tensor([0, 5])).tolist() == [-1, -6] and (dg.tensor([6]) & 3).tolist() == [2]
    with pytest.raises(TypeError, match="bitwise_not is only implemented on integer and Boolean-type tensors, got float32"):
        ~dg.tensor([1.0])
    with pytest.raises(TypeError, match="bitwise_and is only implemented on integer and Boolean-type"):
        dg.tensor([True]) & dg.tensor([1.0])


def test_isnan_isinf_isfinite(device):
    x = dg.tensor([1.0, np.nan, np.inf, -np.inf], device=device)
    assert host(dg.isnan(x)).tolist() == [False, True, False, False]
    assert host(x.isinf()).tolist() == [False, False, True, True]
    assert host(x.isfinite()).tolist() == [True, False, False, False]
    assert not dg.isnan(dg.tensor([1, 2])).array.any()


def test_python_abs_and_unary_operators_use_the_ops():
    x = dg.tensor([-1.5, 2.0], requires_grad=True)
    out = abs(x)
    assert out.tolist() == [1.5, 2.0] and out.grad_fn.name == "AbsBackward"
