"""nn.init: fans, gains, bounds and statistics of every initialiser, in place on the tensor's device."""
import math

import numpy as np
import pytest

import distgrad
from distgrad import nn
from distgrad.nn import init
from helpers import host


def host64(t):
    return host(t).astype(np.float64)


@pytest.fixture(autouse=True)
def seeded():
    distgrad.manual_seed(0)


@pytest.mark.parametrize("name, param, expected", [
    ("linear", None, 1.0), ("conv2d", None, 1.0), ("sigmoid", None, 1.0), ("tanh", None, 5 / 3),
    ("relu", None, math.sqrt(2)), ("leaky_relu", None, math.sqrt(2 / (1 + 0.01 ** 2))),
    ("leaky_relu", 0.2, math.sqrt(2 / 1.04)), ("selu", None, 0.75),
])
def test_calculate_gain_table(name, param, expected):
    assert init.calculate_gain(name, param) == pytest.approx(expected)


def test_calculate_gain_errors():
    with pytest.raises(ValueError, match="Unsupported nonlinearity foo"):
        init.calculate_gain("foo")
    with pytest.raises(ValueError, match="negative_slope True not a valid number"):
        init.calculate_gain("leaky_relu", True)


def test_fans_count_the_receptive_field():
    assert init._calculate_fan_in_and_fan_out(distgrad.empty(8, 3, 5, 5)) == (75, 200)
    with pytest.raises(ValueError, match="Fan in and fan out can not be computed for tensor with fewer than 2"):
        init._calculate_fan_in_and_fan_out(distgrad.empty(4))
    with pytest.raises(ValueError, match="Mode fan_avg not supported"):
        init.kaiming_uniform_(distgrad.empty(4, 4), mode="fan_avg")


def test_init_writes_in_place_and_bumps_the_version(device):
    p = nn.Parameter(distgrad.zeros(50, 40, device=device))
    array, version = p.array, p._version[0]
    assert init.uniform_(p, -1, 1) is p
    assert p.array is array and p._version[0] == version + 1
    assert p.requires_grad and p.grad_fn is None


def test_uniform_bounds_and_mean(device):
    x = host64(init.uniform_(distgrad.empty(200, 300, device=device), -2.0, 3.0))
    assert x.min() >= -2.0 and x.max() < 3.0
    assert x.mean() == pytest.approx(0.5, abs=0.03)


def test_normal_statistics(device):
    x = host64(init.normal_(distgrad.empty(200, 300, device=device), mean=1.0, std=0.5))
    assert x.mean() == pytest.approx(1.0, abs=0.01)
    assert x.std() == pytest.approx(0.5, rel=0.02)


def test_trunc_normal_stays_in_bounds_with_the_truncated_moments(device):
    mean, std, a, b = 0.5, 1.0, -0.5, 2.0
    x = host64(init.trunc_normal_(distgrad.empty(200, 300, device=device), mean, std, a, b))
    assert x.min() >= a and x.max() <= b
    alpha, beta = (a - mean) / std, (b - mean) / std
    pdf = lambda z: math.exp(-z * z / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    cdf = lambda z: 0.5 * (1 + math.erf(z / math.sqrt(2)))  # noqa: E731
    mass = cdf(beta) - cdf(alpha)
    expected_mean = mean + std * (pdf(alpha) - pdf(beta)) / mass
    expected_var = std ** 2 * (1 + (alpha * pdf(alpha) - beta * pdf(beta)) / mass
                               - ((pdf(alpha) - pdf(beta)) / mass) ** 2)
    assert x.mean() == pytest.approx(expected_mean, abs=0.01)
    assert x.std() == pytest.approx(math.sqrt(expected_var), rel=0.02)


def test_trunc_normal_far_tail_still_samples_inside_the_interval():
    with pytest.warns(UserWarning, match="mean is more than 2 std from"):
        x = host64(init.trunc_normal_(distgrad.empty(1000), mean=0.0, std=1.0, a=4.0, b=4.5))
    assert x.min() >= 4.0 and x.max() <= 4.5 and x.std() > 0


def test_standard_normal_quantile_matches_the_exact_inverse_cdf():
    from statistics import NormalDist

    p = np.array([1e-12, 1e-6, 0.01, 0.02425, 0.2, 0.5, 0.8, 0.97, 0.999, 1 - 1e-9])
    expected = np.array([NormalDist().inv_cdf(v) for v in p])
    np.testing.assert_allclose(init._standard_normal_quantile(np, p), expected, rtol=1e-8, atol=1e-9)


def test_constant_ones_zeros_eye(device):
    t = distgrad.empty(3, 4, device=device)
    assert np.all(host64(init.constant_(t, 2.5)) == 2.5)
    assert np.all(host64(init.ones_(t)) == 1) and np.all(host64(init.zeros_(t)) == 0)
    np.testing.assert_array_equal(host64(init.eye_(t)), np.eye(3, 4))
    with pytest.raises(ValueError, match="Only tensors with 2 dimensions are supported"):
        init.eye_(distgrad.empty(2, 2, 2))


def test_xavier_uniform_bound_and_xavier_normal_std():
    t = distgrad.empty(300, 200)
    bound = 2.0 * math.sqrt(6 / 500)
    x = host64(init.xavier_uniform_(t, gain=2.0))
    assert np.abs(x).max() <= bound and np.abs(x).max() > 0.95 * bound
    assert host64(init.xavier_normal_(t)).std() == pytest.approx(math.sqrt(2 / 500), rel=0.02)


def test_kaiming_uniform_bound_and_kaiming_normal_std():
    t = distgrad.empty(256, 64, 3, 3)
    fan_in, fan_out = 64 * 9, 256 * 9
    bound = math.sqrt(2) * math.sqrt(3 / fan_in)
    x = host64(init.kaiming_uniform_(t, nonlinearity="relu"))
    assert np.abs(x).max() <= bound and np.abs(x).max() > 0.99 * bound
    std = host64(init.kaiming_normal_(t, mode="fan_out", nonlinearity="relu")).std()
    assert std == pytest.approx(math.sqrt(2 / fan_out), rel=0.02)


def test_kaiming_on_zero_element_tensor_warns_and_leaves_it():
    with pytest.warns(UserWarning, match="Initializing zero-element tensors is a no-op"):
        init.kaiming_uniform_(distgrad.empty(0, 3))


@pytest.mark.parametrize("shape", [(6, 10), (10, 6), (4, 2, 3)])
def test_orthogonal_rows_or_columns_are_orthonormal(shape, device):
    t = init.orthogonal_(distgrad.empty(*shape, device=device), gain=2.0)
    q = host64(t).reshape(shape[0], -1)
    small = q @ q.T if q.shape[0] <= q.shape[1] else q.T @ q
    np.testing.assert_allclose(small, 4.0 * np.eye(small.shape[0]), atol=1e-5)
    with pytest.raises(ValueError, match="Only tensors with 2 or more dimensions are supported"):
        init.orthogonal_(distgrad.empty(3))


def test_seeded_draws_repeat_and_a_generator_can_be_passed():
    distgrad.manual_seed(0)
    a = host64(init.normal_(distgrad.empty(5)))
    distgrad.manual_seed(0)
    np.testing.assert_array_equal(host64(init.normal_(distgrad.empty(5))), a)
    g1, g2 = distgrad.Generator().manual_seed(3), distgrad.Generator().manual_seed(3)
    np.testing.assert_array_equal(host64(init.uniform_(distgrad.empty(5), generator=g1)),
                                  host64(init.uniform_(distgrad.empty(5), generator=g2)))


def test_half_tensors_are_initialised():
    t = init.normal_(distgrad.empty(100, 100, dtype=distgrad.float16))
    assert t.dtype == np.float16 and host64(t).std() == pytest.approx(1.0, rel=0.05)


def test_linear_default_init_bounds_match_pytorch_formula():
    layer = nn.Linear(400, 30)
    bound = 1 / math.sqrt(400)
    w, b = host64(layer.weight), host64(layer.bias)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    assert np.abs(b).max() <= bound
    assert w.std() == pytest.approx(bound / math.sqrt(3), rel=0.05)
