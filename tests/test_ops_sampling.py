"""Random fills (ranges, distributions, seeding, errors as torch's), dg.bernoulli and dg.normal, and multinomial.

multinomial: frequencies follow the weights (with and without replacement), dg.manual_seed and
generators make draws repeatable, no repeats without replacement, torch's errors."""
import numpy as np
import pytest

import distgrad as dg
from helpers import assert_raises_like_torch, host

WEIGHTS = np.array([[1.0, 2.0, 3.0, 0.0], [0.0, 0.0, 5.0, 5.0]])


def test_draws_with_replacement_follow_the_weights(device):
    dg.manual_seed(0)
    draws = host(dg.multinomial(dg.tensor(WEIGHTS, device=device), 40000, replacement=True))
    assert draws.shape == (2, 40000) and draws.dtype == np.int64
    for row, w in zip(draws, WEIGHTS):
        np.testing.assert_allclose(np.bincount(row, minlength=4) / row.size, w / w.sum(), atol=0.01)


def test_first_draws_without_replacement_follow_the_weights_and_never_repeat(device):
    dg.manual_seed(1)
    rows = dg.tensor(np.tile(WEIGHTS[:1], (20000, 1)), device=device)
    draws = host(dg.multinomial(rows, 3))
    np.testing.assert_allclose(np.bincount(draws[:, 0], minlength=4) / len(draws), [1 / 6, 2 / 6, 3 / 6, 0], atol=0.01)
    # P(second = 0 | first = 2) = 1 / 3 for weights 1, 2, (3 taken)
    second = draws[draws[:, 0] == 2, 1]
    assert abs(np.mean(second == 0) - 1 / 3) < 0.02
    assert all(len(set(r)) == 3 for r in draws[:200])
    assert not (draws == 3).any()  # a zero weight comes only when the positive ones run out


def test_zero_weights_are_drawn_last_when_all_categories_are_needed(device):
    draws = host(dg.multinomial(dg.tensor([1.0, 0.0, 0.0], device=device), 3))
    assert draws[0] == 0 and sorted(draws) == [0, 1, 2]


def test_manual_seed_and_generators_make_draws_repeatable(device):
    weights = dg.tensor(WEIGHTS, device=device)
    dg.manual_seed(7)
    first = host(weights.multinomial(4))
    dg.manual_seed(7)
    np.testing.assert_array_equal(host(weights.multinomial(4)), first)
    g = dg.Generator().manual_seed(3)
    a = host(dg.multinomial(weights, 5, True, generator=g))
    g.manual_seed(3)
    np.testing.assert_array_equal(host(dg.multinomial(weights, 5, True, generator=g)), a)


def test_a_vector_gives_a_vector_and_no_gradient(device):
    w = dg.tensor([0.2, 0.8], dtype=dg.float64, device=device, requires_grad=True)
    out = dg.multinomial(w, 1)
    assert out.shape == (1,) and not out.requires_grad
    assert dg.multinomial(dg.zeros(0, 3), 2).shape == (0, 2)


@pytest.mark.parametrize("call,message", [
    (lambda m: m.multinomial(m.tensor([1.0, 2.0]), 3), "cannot sample n_sample > prob_dist.size\\(-1\\) samples"),
    (lambda m: m.multinomial(m.tensor([0.0, 0.0]), 1), "invalid multinomial distribution \\(sum of probabilities"),
    (lambda m: m.multinomial(m.tensor([-1.0, 2.0]), 1), "probability tensor contains either `inf`, `nan` or"),
    (lambda m: m.multinomial(m.tensor([float("nan"), 2.0]), 1), "probability tensor contains either `inf`, `nan`"),
    (lambda m: m.multinomial(m.ones(2, 2, 2), 1), "prob_dist must be 1 or 2 dim"),
    (lambda m: m.multinomial(m.tensor([1, 2]), 1), "multinomial only supports floating-point dtypes for input"),
    (lambda m: m.multinomial(m.tensor([1.0, 2.0]), 0), "cannot sample n_sample <= 0 samples"),
])
def test_errors_read_like_torch(call, message):
    assert_raises_like_torch(call, message)


# --- random fills, bernoulli, normal ------------------------------------------------------------------
N = 20000


def fill(device, method, *args, dtype=dg.float64, **kwargs):
    return host(getattr(dg.empty(N, dtype=dtype, device=device), method)(*args, **kwargs))


@pytest.mark.parametrize("method,args,mean,var", [
    ("uniform_", (-1, 3), 1.0, 16 / 12), ("normal_", (2, 0.5), 2.0, 0.25),
    ("exponential_", (2.0,), 0.5, 0.25), ("bernoulli_", (0.3,), 0.3, 0.21),
    ("geometric_", (0.25,), 4.0, 12.0), ("log_normal_", (0.0, 0.5), np.exp(0.125), (np.exp(0.25) - 1) * np.exp(0.25)),
])
def test_fills_have_the_distribution_moments(method, args, mean, var, device):
    dg.manual_seed(0)
    x = fill(device, method, *args)
    se = np.sqrt(var / N)
    assert abs(x.mean() - mean) < 6 * se
    assert abs(x.var() - var) < 0.1 * var


def test_fill_supports_and_ranges(device):
    dg.manual_seed(1)
    assert set(np.unique(fill(device, "bernoulli_", 0.5))) == {0.0, 1.0}
    r = fill(device, "random_", 3, 7)
    assert set(np.unique(r)) == {3, 4, 5, 6}
    assert set(np.unique(fill(device, "random_", 4))) == {0, 1, 2, 3}
    assert fill(device, "geometric_", 0.5).min() >= 1
    u = fill(device, "uniform_", 2, 2.5)
    assert u.min() >= 2 and u.max() < 2.5
    c = fill(device, "cauchy_", 1.0, 2.0)
    assert abs(np.median(c) - 1.0) < 0.1
    assert fill(device, "random_").max() <= 2 ** 53


def test_integer_tensors_take_random_and_bernoulli(device):
    dg.manual_seed(2)
    x = dg.zeros(1000, dtype=dg.int64, device=device).random_(0, 10)
    assert x.dtype == np.int64 and 0 <= host(x).min() and host(x).max() <= 9
    b = dg.zeros(1000, dtype=dg.uint8, device=device).bernoulli_(0.5)
    assert set(np.unique(host(b))) == {0, 1}
    assert dg.zeros(8, dtype=dg.bool, device=device).random_().dtype == np.bool_


def test_bernoulli_takes_a_tensor_of_probabilities(device):
    p = dg.tensor([0.0, 1.0, 0.0, 1.0], device=device)
    assert host(dg.empty(4, device=device).bernoulli_(p)).tolist() == [0, 1, 0, 1]
    assert host(dg.bernoulli(p)).tolist() == [0, 1, 0, 1]
    assert host(p.bernoulli()).dtype == np.float32
    assert host(dg.bernoulli(p, 1.0)).tolist() == [1, 1, 1, 1]


def test_manual_seed_repeats_every_fill(device):
    def draws():
        dg.manual_seed(7)
        return [fill(device, m, *a) for m, a in (("uniform_", ()), ("normal_", ()), ("random_", (5,)),
                                                 ("bernoulli_", ()), ("exponential_", ()))]
    for a, b in zip(draws(), draws()):
        np.testing.assert_array_equal(a, b)


def test_a_generator_argument_is_used():
    g = dg.Generator().manual_seed(3)
    a = dg.empty(5).uniform_(generator=g).tolist()
    g.manual_seed(3)
    assert dg.empty(5).uniform_(generator=g).tolist() == a


def test_half_tensors_are_filled_in_float32_and_rounded():
    x = dg.empty(100, dtype=dg.float16).normal_()
    assert x.dtype == np.float16 and np.isfinite(host(x)).all()


def test_normal_forms_like_torch(device):
    torch = pytest.importorskip("torch")
    mean = dg.zeros(2, 1, device=device, dtype=dg.float64)
    assert dg.normal(mean, dg.ones(3, device=device)).shape == tuple(torch.normal(torch.zeros(2, 1),
                                                                                  torch.ones(3)).shape)
    assert dg.normal(mean, 2.0).dtype == np.float64
    assert dg.normal(0.0, dg.ones(3, device=device)).shape == (3,)
    x = dg.normal(1.0, 0.5, size=(4, 5), device=device)
    assert x.shape == (4, 5) and x.dtype == np.float32 and x.device == dg.device(device)
    with pytest.raises(TypeError, match="size argument is required"):
        dg.normal(0.0, 1.0)
    with pytest.raises(RuntimeError, match="std >= 0.0"):
        dg.normal(mean, -1.0)


def test_sampling_gives_zero_gradients_like_torch():
    mean = dg.zeros(3, dtype=dg.float64, requires_grad=True)
    std = dg.ones(3, dtype=dg.float64, requires_grad=True)
    p = dg.full((3,), 0.5, dtype=dg.float64, requires_grad=True)
    (dg.normal(mean, std).sum() + dg.bernoulli(p).sum()).backward()
    for t in (mean, std, p):
        assert t.grad.tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("call,error,message", [
    (lambda: dg.zeros(2).bernoulli_(1.5), RuntimeError, r"bernoulli_ expects p to be in \[0, 1\]"),
    (lambda: dg.bernoulli(dg.tensor([1.5])), RuntimeError, r"bernoulli expects p to be in \[0, 1\]"),
    (lambda: dg.zeros(2, dtype=dg.int64).exponential_(), RuntimeError, "dtype must be a floating point"),
    (lambda: dg.zeros(2).exponential_(-1), RuntimeError, "expects lambda > 0.0"),
    (lambda: dg.zeros(2).random_(5, 2), RuntimeError, "expects 'from' to be less than 'to'"),
    (lambda: dg.zeros(2).uniform_(2, 1), RuntimeError, r"\[from, to\) range"),
    (lambda: dg.zeros(2).normal_(0, -1), RuntimeError, "std >= 0.0"),
    (lambda: dg.zeros(2, dtype=dg.int64).normal_(), RuntimeError, "expects a floating point tensor"),
    (lambda: dg.zeros(2, requires_grad=True).uniform_(), RuntimeError, "a leaf Variable that requires grad"),
])
def test_fill_errors_like_torch(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_a_fill_under_no_grad_writes_a_parameter_and_bumps_its_version():
    w = dg.nn.Parameter(dg.zeros(4))
    before = w._version[0]
    with dg.no_grad():
        w.uniform_(-1, 1)
    assert w._version[0] == before + 1 and np.abs(host(w)).max() > 0
