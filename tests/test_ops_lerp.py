"""lerp with a number and a tensor weight: torch's values (exact at weight 1) and gradients for the
three operands, broadcasting, gradcheck and double backward, dtype errors."""
import numpy as np
import pytest

import distgrad as dg
from distgrad.autograd import gradcheck, gradgradcheck
from helpers import assert_matches_torch, assert_raises_like_torch, host, random_leaf


@pytest.mark.parametrize("seed", range(3))
def test_lerp_matches_torch(seed, device):
    rng = np.random.default_rng(seed)
    r = rng.standard_normal
    for weight in (0.0, 0.3, 0.5, 1.0, -1.5):
        assert_matches_torch(lambda m, a, b: m.lerp(a, b, weight), [r((3, 4)), r((3, 4))], device)
    assert_matches_torch(lambda m, a, b, w: m.lerp(a, b, w), [r((3, 4)), r((2, 1, 4)), r((1, 4))], device)
    assert_matches_torch(lambda m, a, b, w: a.lerp(b, w), [r((4,)), r((4,)), rng.uniform(-1, 2, (3, 4))], device)


def test_weight_one_gives_end_exactly(device):
    start, end = dg.tensor([1e8, 3.0], device=device), dg.tensor([1.0, 1e-8], device=device)
    np.testing.assert_array_equal(host(dg.lerp(start, end, 1.0)), host(end))
    np.testing.assert_array_equal(host(dg.lerp(start, end, dg.ones(2, device=device))), host(end))


def test_a_0d_weight_of_another_dtype_is_accepted(device):
    out = dg.lerp(dg.zeros(2, device=device), dg.ones(2, device=device), dg.tensor(0.25, dtype=dg.float64))
    assert out.dtype == dg.float32 and host(out).tolist() == [0.25, 0.25]


def test_gradcheck_and_double_backward(device):
    leaves = [random_leaf((2, 3), device), random_leaf((3,), device, 1), random_leaf((2, 1), device, 2)]
    assert gradcheck(dg.lerp, leaves)
    assert gradgradcheck(dg.lerp, leaves)
    assert gradgradcheck(lambda a, b: dg.lerp(a, b, 0.7), leaves[:2])


@pytest.mark.parametrize("call,message", [
    (lambda m: m.lerp(m.ones(3), m.ones(3, dtype=m.float64), 0.5), "expected dtype float(32)? for `end` but got"),
    (lambda m: m.lerp(m.ones(3), m.ones(3), m.ones(3, dtype=m.float64)), "expected dtype float(32)? for `weight`"),
])
def test_errors_read_like_torch(call, message):
    assert_raises_like_torch(call, message)
