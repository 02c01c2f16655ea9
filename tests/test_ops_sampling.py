"""multinomial: frequencies follow the weights (with and without replacement), dg.manual_seed and
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
