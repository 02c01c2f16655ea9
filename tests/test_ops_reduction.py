"""Reductions: forward against NumPy and PyTorch, gradients by finite differences, dims, dtypes, errors."""
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import distgrad as dg
from distgrad.autograd import gradcheck, gradgradcheck
from helpers import host, leaf_keeping_layout

FAST = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@st.composite
def shapes_and_dims(draw, max_dims=3):
    """A shape, a ``dim`` argument for it (None, an int or a tuple, negatives included) and keepdim."""
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=max_dims, min_side=1, max_side=3))
    axes = draw(st.lists(st.integers(0, len(shape) - 1), unique=True, max_size=len(shape)))
    signed = tuple(a - len(shape) if draw(st.booleans()) else a for a in axes)
    dim = draw(st.sampled_from([None, signed] + ([signed[0]] if signed else [])))
    return shape, dim, draw(st.booleans())


def numpy_axes(dim):
    return None if dim is None or dim == () else dim


def _logsumexp(a, axis, keepdims):
    return np.log(np.exp(a).sum(axis=axis, keepdims=keepdims))


# op name -> (distgrad call, NumPy reference)
REDUCTIONS = {
    "sum": (lambda x, d, k: x.sum(d, keepdim=k), lambda a, d, k: a.sum(axis=d, keepdims=k)),
    "mean": (lambda x, d, k: x.mean(d, keepdim=k), lambda a, d, k: a.mean(axis=d, keepdims=k)),
    "var": (lambda x, d, k: x.var(d, keepdim=k), lambda a, d, k: a.var(axis=d, keepdims=k, ddof=1)),
    "std": (lambda x, d, k: x.std(d, keepdim=k, correction=0), lambda a, d, k: a.std(axis=d, keepdims=k)),
    "prod": (lambda x, d, k: x.prod(d, keepdim=k), lambda a, d, k: a.prod(axis=d, keepdims=k)),
    "logsumexp": (lambda x, d, k: x.logsumexp(d, keepdim=k), _logsumexp),
    "amax": (lambda x, d, k: x.amax(() if d is None else d, keepdim=k), lambda a, d, k: a.max(axis=d, keepdims=k)),
    "amin": (lambda x, d, k: x.amin(() if d is None else d, keepdim=k), lambda a, d, k: a.min(axis=d, keepdims=k)),
    "norm": (lambda x, d, k: x.norm(dim=d, keepdim=k),
             lambda a, d, k: np.sqrt((a * a).sum(axis=d, keepdims=k))),
    "norm3": (lambda x, d, k: x.norm(3, d, k), lambda a, d, k: (np.abs(a) ** 3).sum(axis=d, keepdims=k) ** (1 / 3)),
    "norm_inf": (lambda x, d, k: x.norm(math.inf, d, k), lambda a, d, k: np.abs(a).max(axis=d, keepdims=k)),
}


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
@FAST
@given(case=shapes_and_dims(), seed=st.integers(0, 2**16))
def test_reduction_matches_numpy_and_finite_differences(device, name, case, seed):
    shape, dim, keepdim = case
    ours, reference = REDUCTIONS[name]
    array = np.random.default_rng(seed).uniform(0.5, 2.0, shape) * np.random.default_rng(seed).choice([-1, 1], shape)
    reduced = np.atleast_1d(numpy_axes(dim) if numpy_axes(dim) is not None else range(len(shape)))
    assume(name not in ("var", "std") or math.prod(shape[a] for a in reduced) > 1)  # one entry: 0/0
    out = ours(leaf_keeping_layout(device, array), dim, keepdim)
    np.testing.assert_allclose(host(out), reference(array, numpy_axes(dim), keepdim), rtol=1e-10, atol=1e-12)
    assert gradcheck(lambda x: ours(x, dim, keepdim), leaf_keeping_layout(device, array))


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
def test_reduction_of_a_permuted_tensor_has_the_right_gradient(device, name):
    ours, _ = REDUCTIONS[name]
    x = leaf_keeping_layout(device, np.random.default_rng(1).uniform(0.5, 2.0, (3, 2, 4)).transpose(2, 0, 1))
    assert not x.is_contiguous()
    assert gradcheck(lambda t: ours(t.permute(1, 2, 0), (0, -1), False), x)


@pytest.mark.parametrize("name", ["sum", "mean", "var", "std", "logsumexp", "prod", "norm", "norm3"])
def test_reduction_is_twice_differentiable(device, name):
    ours, _ = REDUCTIONS[name]
    x = leaf_keeping_layout(device, np.random.default_rng(2).uniform(0.5, 2.0, (2, 3)))
    assert gradgradcheck(lambda t: ours(t, 1, False), x)
    assert gradgradcheck(lambda t: ours(t, None, True), x)


def test_cumsum_gradient_is_a_reversed_cumsum(device):
    x = leaf_keeping_layout(device, np.arange(6.0).reshape(2, 3))
    np.testing.assert_allclose(host(x.cumsum(-1)), [[0, 1, 3], [3, 7, 12]])
    x.cumsum(1).sum().backward()
    np.testing.assert_allclose(host(x.grad), [[3, 2, 1], [3, 2, 1]])
    assert gradcheck(lambda t: dg.cumsum(t.t(), 0), x)
    assert gradgradcheck(lambda t: (dg.cumsum(t, -2) ** 2), x)


# --- prod with zeros ---------------------------------------------------------------------------------
@pytest.mark.parametrize("values", [[2.0, 0.0, 3.0, 4.0], [0.0, 2.0, 0.0, 3.0], [0.0, 0.0, 0.0, 5.0],
                                    [1.5, 2.0, 3.0, 4.0]])
def test_prod_gradient_is_the_product_of_the_others_even_with_zeros(device, values):
    x = leaf_keeping_layout(device, values)
    x.prod().backward()
    others = [math.prod(values[:i] + values[i + 1:]) for i in range(4)]
    np.testing.assert_allclose(host(x.grad), others)
    assert gradcheck(dg.prod, leaf_keeping_layout(device, values))
    assert gradgradcheck(dg.prod, leaf_keeping_layout(device, values))


def test_prod_along_a_dim_handles_slices_with_and_without_zeros(device):
    array = np.array([[0.0, 2.0, 3.0], [1.0, 2.0, 3.0], [0.0, 0.0, 3.0], [0.0, 0.0, 0.0]])
    assert gradcheck(lambda t: t.prod(1), leaf_keeping_layout(device, array))
    assert gradgradcheck(lambda t: t.prod(1, keepdim=True), leaf_keeping_layout(device, array))
    assert gradgradcheck(lambda t: t.prod(0), leaf_keeping_layout(device, array.T.copy()))


# --- extremes ---------------------------------------------------------------------------------------------
def test_amax_and_max_share_the_gradient_evenly_between_ties(device):
    x = leaf_keeping_layout(device, [[1.0, 5.0, 5.0], [2.0, 2.0, 2.0]])
    x.amax(1).sum().backward()
    np.testing.assert_allclose(host(x.grad), [[0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]])
    y = leaf_keeping_layout(device, [3.0, 1.0, 3.0, 3.0])
    y.max().backward()
    np.testing.assert_allclose(host(y.grad), [1 / 3, 0, 1 / 3, 1 / 3])
    z = leaf_keeping_layout(device, [3.0, 1.0, 1.0])
    dg.min(z).backward()
    np.testing.assert_allclose(host(z.grad), [0, 0.5, 0.5])


def test_max_along_a_dim_returns_values_and_indices_and_grads_the_index(device):
    x = leaf_keeping_layout(device, [[1.0, 7.0, 7.0], [4.0, 2.0, 3.0]])
    result = x.max(dim=1)
    values, indices = result
    assert result.values is values and result.indices is indices
    np.testing.assert_allclose(host(values), [7, 4])
    np.testing.assert_array_equal(host(indices), [1, 0])
    assert indices.dtype == dg.int64 and not indices.requires_grad
    values.sum().backward()
    np.testing.assert_allclose(host(x.grad), [[0, 1, 0], [1, 0, 0]])
    low = x.min(0, keepdim=True)
    assert low.values.shape == (1, 3) and host(low.indices).tolist() == [[0, 1, 1]]


@FAST
@given(case=shapes_and_dims(), seed=st.integers(0, 2**16))
def test_max_and_min_along_a_dim_match_numpy_and_finite_differences(device, case, seed):
    shape, dim, keepdim = case
    dim = dim[0] if isinstance(dim, tuple) and dim else -1 if dim in (None, ()) else dim
    array = np.random.default_rng(seed).permutation(math.prod(shape)).reshape(shape) / 7.0
    for op, pick in ((dg.max, np.argmax), (dg.min, np.argmin)):
        values, indices = op(leaf_keeping_layout(device, array), dim, keepdim)
        expected = np.expand_dims(pick(array, axis=dim), dim)
        np.testing.assert_array_equal(host(indices), expected if keepdim else expected.squeeze(dim))
        np.testing.assert_allclose(host(values), np.take_along_axis(array, expected, dim).reshape(values.shape))
        assert gradcheck(lambda t: op(t, dim, keepdim).values, leaf_keeping_layout(device, array))


def test_max_of_two_tensors_is_the_elementwise_maximum(device):
    a, b = leaf_keeping_layout(device, [1.0, 5.0]), leaf_keeping_layout(device, [3.0, 2.0])
    np.testing.assert_allclose(host(dg.max(a, b)), [3, 5])
    np.testing.assert_allclose(host(a.min(b)), [1, 2])


def test_argmax_and_argmin_give_int64_indices(device):
    x = dg.tensor([[1.0, 9.0, 3.0], [8.0, 2.0, 0.0]], device=device)
    assert host(x.argmax()).item() == 1 and x.argmax().dtype == dg.int64
    assert host(x.argmin(dim=1)).tolist() == [0, 2]
    assert x.argmax(dim=-1, keepdim=True).shape == (2, 1)
    assert x.argmax(keepdim=True).shape == (1, 1)
    assert not x.requires_grad_().argmax().requires_grad


# --- dtypes, bools, methods --------------------------------------------------------------------------------
def test_float16_reductions_accumulate_in_float32(device):
    x = dg.ones(100000, dtype=dg.float16, device=device)
    assert x.mean().dtype == dg.float16 and host(x.mean()).item() == 1.0  # a float16 sum would overflow
    assert host(x.var()).item() == 0.0
    assert host(dg.full((70000,), 0.01, dtype=dg.float16, device=device).norm()).item() == pytest.approx(2.646, 1e-3)


def test_integer_and_bool_sums_are_int64(device):
    assert dg.tensor([1, 2, 3], dtype=dg.int32, device=device).sum().dtype == dg.int64
    assert host(dg.tensor([True, True, False], device=device).sum()).item() == 2
    assert dg.tensor([True, False], device=device).cumsum(0).dtype == dg.int64
    assert host(dg.tensor([2, 3], dtype=dg.uint8, device=device).prod()).item() == 6


def test_all_and_any_give_bool_tensors(device):
    x = dg.tensor([[1.0, 0.0], [2.0, 3.0]], device=device)
    assert host(x.all()).item() is False and host(x.any()).item() is True
    assert host(x.all(dim=1)).tolist() == [False, True]
    assert x.any(1, keepdim=True).shape == (2, 1) and x.any(1).dtype == dg.bool


def test_sum_keepdim_and_dim_tuples_as_methods(device):
    x = dg.tensor(np.arange(24.0).reshape(2, 3, 4), device=device)
    assert x.sum(dim=1, keepdim=True).shape == (2, 1, 4)
    assert x.sum((0, -1)).shape == (3,)
    assert x.mean(dim=()).shape == ()
    assert host(x.max(dim=0).values).shape == (3, 4)


def test_var_and_std_take_correction_or_unbiased(device):
    array = np.array([1.0, 2.0, 4.0, 7.0])
    x = dg.tensor(array, device=device)
    assert host(x.var()).item() == pytest.approx(array.var(ddof=1))
    assert host(x.var(unbiased=False)).item() == pytest.approx(array.var())
    assert host(x.var(False)).item() == pytest.approx(array.var())
    assert host(x.std(correction=2)).item() == pytest.approx(array.std(ddof=2))
    assert math.isnan(host(dg.tensor([3.0], device=device).var()).item())


def test_logsumexp_is_stable(device):
    x = dg.tensor([[1000.0, 1000.0], [-math.inf, -math.inf]], dtype=dg.float64, device=device)
    out = host(x.logsumexp(1))
    assert out[0] == pytest.approx(1000 + math.log(2)) and out[1] == -math.inf
    y = leaf_keeping_layout(device, [[1000.0, 1000.0, 999.0]])
    y.logsumexp(1).sum().backward()
    np.testing.assert_allclose(host(y.grad).sum(), 1.0)


def test_norm_and_std_of_constants_have_a_zero_gradient(device):
    x = leaf_keeping_layout(device, [0.0, 0.0])
    x.norm().backward()
    np.testing.assert_array_equal(host(x.grad), [0, 0])
    y = leaf_keeping_layout(device, [2.0, 2.0])
    y.std().backward()
    np.testing.assert_array_equal(host(y.grad), [0, 0])


def test_norm_p_variants(device):
    array = np.array([[3.0, -4.0], [0.0, 1.0]])
    x = dg.tensor(array, device=device)
    assert host(x.norm()).item() == pytest.approx(np.sqrt(26))
    assert host(x.norm(p=1)).item() == 8 and host(x.norm(0)).item() == 3
    np.testing.assert_allclose(host(x.norm(-math.inf, dim=1)), [3, 0])
    assert host(x.norm("fro")).item() == pytest.approx(np.sqrt(26))
    assert gradcheck(lambda t: t.norm(1, 0), leaf_keeping_layout(device, array + 0.5))
    assert gradcheck(lambda t: t.norm(-math.inf, 1), leaf_keeping_layout(device, array + 0.5))


# --- against PyTorch --------------------------------------------------------------------------------------
def test_values_and_gradients_match_torch(device):
    torch = pytest.importorskip("torch")
    array = np.array([[2.0, 0.0, 2.0, -1.5], [0.5, 3.0, 3.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    cases = [
        lambda m: m.sum(1, keepdim=True), lambda m: m.mean((0, 1)), lambda m: m.var(0, correction=0),
        lambda m: m.std(-1), lambda m: m.prod(1), lambda m: m.prod(0), lambda m: m.logsumexp(0),
        lambda m: m.amax(1), lambda m: m.amin((0, 1)), lambda m: m.max(), lambda m: m.min(),
        lambda m: m.max(1).values, lambda m: m.min(0, keepdim=True).values, lambda m: m.norm(),
        lambda m: m.norm(3, 1), lambda m: m.norm(1, 0), lambda m: m.norm(math.inf, 1), lambda m: m.cumsum(0),
    ]
    for i, case in enumerate(cases):
        x, t = leaf_keeping_layout(device, array), torch.tensor(array, requires_grad=True)
        ours, theirs = case(x), case(t)
        np.testing.assert_allclose(host(ours), theirs.detach().numpy(), rtol=1e-12, err_msg=f"case {i}")
        (ours * dg.tensor(np.arange(ours.numel()).reshape(ours.shape) + 1.0, device=device)).sum().backward()
        (theirs * torch.arange(1.0, theirs.numel() + 1, dtype=torch.float64).reshape(theirs.shape)).sum().backward()
        np.testing.assert_allclose(host(x.grad), t.grad.numpy(), rtol=1e-12, atol=1e-15, err_msg=f"case {i}")


# --- errors -------------------------------------------------------------------------------------------------
def test_errors_read_like_torch(device):
    x = dg.tensor(np.ones((2, 3)), device=device)
    with pytest.raises(IndexError, match=r"Dimension out of range \(expected to be in range of \[-2, 1\], but got 2\)"):
        x.sum(2)
    with pytest.raises(RuntimeError, match="dim 0 appears multiple times in the list of dims"):
        x.mean((0, -2))
    with pytest.raises(RuntimeError, match="mean\\(\\): could not infer output dtype.*Got: int64"):
        dg.tensor([1, 2], device=device).mean()
    with pytest.raises(RuntimeError, match="std and var only support floating point"):
        dg.tensor([1, 2], device=device).var()
    with pytest.raises(RuntimeError, match="max\\(\\): Expected reduction dim to be specified for input.numel\\(\\) == 0"):
        dg.zeros(0, 3, device=device).max()
    with pytest.raises(IndexError, match="amax\\(\\): Expected reduction dim 0 to have non-zero size"):
        dg.zeros(0, 3, device=device).amax(0)
    with pytest.raises(IndexError, match="argmax\\(\\): Expected reduction dim 0 to have non-zero size"):
        dg.zeros(0, 3, device=device).argmax(0)
    with pytest.raises(IndexError, match="argmin\\(\\): Expected reduction dim to be specified"):
        dg.zeros(0, 3, device=device).argmin()
    with pytest.raises(ValueError, match="norm: p='nuc' is not supported"):
        x.norm("nuc")
    with pytest.raises(RuntimeError, match="cannot specify both unbiased and correction"):
        x.var(unbiased=True, correction=0)
