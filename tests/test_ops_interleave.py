"""repeat_interleave: int and tensor repeats, with and without dim, the index form; torch's values,
gradients (copies sum back), double backward and errors."""
import numpy as np
import pytest

import distgrad as dg
from distgrad.autograd import gradcheck, gradgradcheck
from helpers import assert_matches_torch, assert_raises_like_torch, host, random_leaf


@pytest.mark.parametrize("seed", range(3))
def test_repeat_interleave_matches_torch(seed, device):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(tuple(rng.integers(1, 5, 3).tolist()))
    assert_matches_torch(lambda m, a: a.repeat_interleave(2), [x], device)
    assert_matches_torch(lambda m, a: m.repeat_interleave(a, 0, dim=1), [x], device)
    for dim in range(-3, 3):
        repeats = rng.integers(0, 4, x.shape[dim])
        assert_matches_torch(lambda m, a, r: a.repeat_interleave(r, dim=dim), [x, repeats], device)
        assert_matches_torch(lambda m, a: a.repeat_interleave(3, dim), [x], device)
        assert_matches_torch(lambda m, a, r: a.repeat_interleave(r, dim=dim, output_size=int(repeats.sum())),
                             [x, repeats], device)
    assert_matches_torch(lambda m, a, r: a.repeat_interleave(r, dim=1), [x, np.array(2)], device)
    assert_matches_torch(lambda m, a, r: m.repeat_interleave(a, r), [x, rng.integers(0, 3, x.size)], device)


def test_the_index_form_and_0d_inputs(device):
    assert_matches_torch(lambda m, r: m.repeat_interleave(r), [np.array([1, 0, 2, 3])], device)
    assert_matches_torch(lambda m, r: m.repeat_interleave(r), [np.zeros(0, np.int64)], device)
    assert_matches_torch(lambda m, a: a.repeat_interleave(2), [np.array(3.5)], device)


def test_gradcheck_and_double_backward(device):
    x = random_leaf((3, 2), device)
    repeats = dg.tensor([2, 0, 1], device=device)
    assert gradcheck(lambda a: a.repeat_interleave(repeats, dim=0), [x])
    assert gradgradcheck(lambda a: a.repeat_interleave(2) ** 2, [x])


@pytest.mark.parametrize("call,message", [
    (lambda m: m.tensor([[1, 2], [3, 4]]).repeat_interleave(m.tensor([1, 2, 3]), dim=0),
     "repeats must have the same size as input along dim, but got repeats.size\\(0\\) = 3 and input.size\\(0\\) = 2"),
    (lambda m: m.tensor([[1, 2], [3, 4]]).repeat_interleave(m.tensor([-1, 2]), dim=0), "repeats can not be negative"),
    (lambda m: m.tensor([[1, 2], [3, 4]]).repeat_interleave(-1), "Repeats must be non-negative"),
    (lambda m: m.tensor([[1, 2], [3, 4]]).repeat_interleave(m.tensor([[1, 2]]), dim=0),
     "repeats must be 0-dim or 1-dim tensor"),
])
def test_errors_read_like_torch(call, message):
    assert_raises_like_torch(call, message)


def test_repeats_may_live_on_the_host_for_a_gpu_input(device):
    x = dg.tensor([1.0, 2.0], device=device)
    np.testing.assert_array_equal(host(x.repeat_interleave(dg.tensor([2, 1]))), [1, 1, 2])
