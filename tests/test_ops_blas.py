"""addmm, addmv, baddbmm, addbmm (beta, alpha, broadcasting input, in-place forms) and mv: torch's
values and gradients, beta=0 ignoring NaN, gradcheck and double backward, torch's errors."""
import numpy as np
import pytest

import distgrad as dg
from distgrad.autograd import gradcheck, gradgradcheck
from helpers import assert_matches_torch, assert_raises_like_torch, host, random_leaf

SCALES = [(1, 1), (0.5, -2.0), (0, 3.0), (2, 0)]


def case(seed: int):
    rng = np.random.default_rng(seed)
    b, n, m, p = rng.integers(1, 5, 4).tolist()
    return rng, b, n, m, p


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("beta,alpha", SCALES)
def test_products_with_an_added_term_match_torch(seed, beta, alpha, device):
    rng, b, n, m, p = case(seed)
    r = rng.standard_normal
    for input_shape in ((n, p), (p,), (1, p), ()):
        assert_matches_torch(lambda t, x, a1, a2: t.addmm(x, a1, a2, beta=beta, alpha=alpha),
                             [r(input_shape), r((n, m)), r((m, p))], device)
        assert_matches_torch(lambda t, x, a1, a2: t.addbmm(x, a1, a2, beta=beta, alpha=alpha),
                             [r(input_shape), r((b, n, m)), r((b, m, p))], device)
    for input_shape in ((b, n, p), (n, p), (1, 1, p)):
        assert_matches_torch(lambda t, x, a1, a2: t.baddbmm(x, a1, a2, beta=beta, alpha=alpha),
                             [r(input_shape), r((b, n, m)), r((b, m, p))], device)
    for input_shape in ((n,), ()):
        assert_matches_torch(lambda t, x, a1, a2: t.addmv(x, a1, a2, beta=beta, alpha=alpha),
                             [r(input_shape), r((n, m)), r((m,))], device)
    assert_matches_torch(lambda t, a1, a2: t.mv(a1, a2), [r((n, m)), r((m,))], device)


def test_beta_zero_ignores_nan_in_input_but_still_gives_it_a_zero_gradient(device):
    values = [np.array([[np.nan]]), np.ones((1, 2)), np.ones((2, 1))]
    out = assert_matches_torch(lambda t, x, a1, a2: t.addmm(x, a1, a2, beta=0), values, device)
    assert host(out[0]).item() == 2.0


@pytest.mark.parametrize("op", [
    lambda x, a, b: dg.addmm(x[0], a[0], b[0], beta=0.5, alpha=2),
    lambda x, a, b: dg.baddbmm(x, a, b, alpha=-1),
    lambda x, a, b: dg.addbmm(x[0, 0], a, b, beta=3),
    lambda x, a, b: dg.addmv(x[0, :, 0], a[1], b[1, :, 0], beta=2, alpha=0.5),
], ids=["addmm", "baddbmm", "addbmm", "addmv"])
def test_gradcheck_and_double_backward(op, device):
    leaves = [random_leaf((2, 3, 4), device), random_leaf((2, 3, 2), device, 1), random_leaf((2, 2, 4), device, 2)]
    assert gradcheck(op, leaves)
    assert gradgradcheck(op, leaves)


@pytest.mark.parametrize("method,shapes", [("addmm_", ((3, 4), (3, 2), (2, 4))), ("addmv_", ((3,), (3, 2), (2,))),
                                           ("baddbmm_", ((2, 3, 4), (2, 3, 2), (2, 2, 4))),
                                           ("addbmm_", ((3, 4), (5, 3, 2), (5, 2, 4)))])
def test_in_place_forms_match_torch_and_bump_the_version(method, shapes, device):
    torch = pytest.importorskip("torch")
    arrays = [np.random.default_rng(i).standard_normal(s) for i, s in enumerate(shapes)]
    ours = [dg.tensor(a, device=device) for a in arrays]
    theirs = [torch.tensor(a) for a in arrays]
    assert getattr(ours[0], method)(*ours[1:], beta=0.5, alpha=2) is ours[0]
    getattr(theirs[0], method)(*theirs[1:], beta=0.5, alpha=2)
    np.testing.assert_allclose(host(ours[0]), theirs[0].numpy(), rtol=1e-12)
    assert ours[0]._version[0] == 1
    y = random_leaf(shapes[0], device) * 1
    getattr(y, method)(*[random_leaf(s, device) for s in shapes[1:]])
    assert y.grad_fn is not None


@pytest.mark.parametrize("call,message", [
    (lambda m: m.addmm(m.ones(2, 4), m.ones(2, 3), m.ones(4, 4)), "mat1 and mat2 shapes cannot be multiplied"),
    (lambda m: m.addmm(m.ones(3), m.ones(2, 3), m.ones(3, 4)), "expanded size of the tensor"),
    (lambda m: m.addmm(m.ones(2, 4), m.ones(3), m.ones(3, 4)), "mat1 must be a matrix"),
    (lambda m: m.baddbmm(m.ones(2, 2, 4), m.ones(2, 2, 3), m.ones(3, 3, 4)),
     "Expected size for first two dimensions of batch2 tensor to be: \\[2, 3\\] but got: \\[3, 3\\]"),
    (lambda m: m.addbmm(m.ones(2, 4), m.ones(5, 2, 3), m.ones(4, 3, 4)),
     "batch1 and batch2 must have same number of batches, got 5 and 4"),
    (lambda m: m.addmv(m.ones(2), m.ones(2, 3), m.ones(4)), "size mismatch, got input \\(2\\), mat \\(2x3\\), vec"),
    (lambda m: m.mv(m.ones(2, 3), m.ones(3, 1)), "vector \\+ matrix @ vector expected"),
])
def test_errors_read_like_torch(call, message):
    assert_raises_like_torch(call, message)
