"""diagonal (a view: writes through it reach the base), diagonal_scatter, diag_embed, diag,
fill_diagonal_: torch's values and gradients, offsets and dims, gradcheck and double backward."""
import numpy as np
import pytest

import distgrad as dg
from distgrad.autograd import gradcheck, gradgradcheck
from helpers import assert_matches_torch, assert_raises_like_torch, host, random_leaf

ARGS = [(0, 0, 1), (1, 0, 1), (-1, 2, 0), (2, -1, -3), (-2, 1, 2), (7, 0, 2)]


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("offset,dim1,dim2", ARGS)
def test_diagonal_and_its_scatter_match_torch(seed, offset, dim1, dim2, device):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(tuple(rng.integers(1, 5, 3).tolist()))
    assert_matches_torch(lambda m, a: m.diagonal(a, offset, dim1, dim2), [x], device)
    src = rng.standard_normal(np.diagonal(x, offset, dim1, dim2).shape)
    assert_matches_torch(lambda m, a, s: m.diagonal_scatter(a, s, offset, dim1, dim2), [x, src], device)


@pytest.mark.parametrize("offset,dim1,dim2", ARGS)
def test_diag_embed_matches_torch(offset, dim1, dim2, device):
    x = np.random.default_rng(0).standard_normal((2, 3))
    assert_matches_torch(lambda m, a: m.diag_embed(a, offset, dim1, dim2), [x], device)


@pytest.mark.parametrize("diagonal", [-2, 0, 1, 4])
def test_diag_of_vectors_and_matrices_matches_torch(diagonal, device):
    rng = np.random.default_rng(1)
    assert_matches_torch(lambda m, a: m.diag(a, diagonal), [rng.standard_normal(3)], device)
    assert_matches_torch(lambda m, a: m.diag(a, diagonal), [rng.standard_normal((3, 5))], device)


@pytest.mark.parametrize("op", [lambda a: a.diagonal(1, 0, 2), lambda a: dg.diag_embed(a[0], -1),
                                lambda a: dg.diag(a[:, 0]), lambda a: dg.diag(a[1], 1),
                                lambda a: dg.diagonal_scatter(a, a[:, :, 0] * 2, 0, 1, 2)],
                         ids=["diagonal", "diag_embed", "diag-vector", "diag-matrix", "diagonal_scatter"])
def test_gradcheck_and_double_backward(op, device):
    x = random_leaf((3, 3, 4), device)
    assert gradcheck(op, [x])
    assert gradgradcheck(op, [x])


def test_diagonal_is_a_view_writes_reach_the_base_and_share_the_version(device):
    x = dg.zeros(3, 4, device=device)
    d = x.diagonal(1)
    assert d._version is x._version
    d.fill_(2.0)
    d[0] = 7.0
    expected = np.zeros((3, 4))
    expected[[0, 1, 2], [1, 2, 3]] = [7, 2, 2]
    np.testing.assert_array_equal(host(x), expected)
    assert x._version[0] == 2


def test_a_saved_tensor_written_through_its_diagonal_refuses_backward(device):
    x = random_leaf((3, 3), device)
    y = x * 1
    z = y * y  # saves y
    with dg.no_grad():
        y.diagonal().zero_()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        z.sum().backward()


def test_diag_of_a_matrix_is_a_copy(device):
    x = dg.ones(2, 2, device=device)
    dg.diag(x)[0] = 5.0
    assert host(x)[0, 0] == 1.0


@pytest.mark.parametrize("shape,wrap", [((3, 3), False), ((5, 3), True), ((5, 3), False), ((3, 5), False),
                                        ((2, 2, 2), False)])
def test_fill_diagonal_matches_torch(shape, wrap, device):
    torch = pytest.importorskip("torch")
    x = dg.zeros(*shape, device=device)
    assert x.fill_diagonal_(4.0, wrap=wrap) is x and x._version[0] == 1
    np.testing.assert_array_equal(host(x), torch.zeros(*shape).fill_diagonal_(4.0, wrap=wrap).numpy())
    leaf = random_leaf(shape, device)
    y = leaf * 1
    y.fill_diagonal_(0.0, wrap=wrap)
    y.sum().backward()
    np.testing.assert_array_equal(host(leaf.grad), 1 - torch.zeros(*shape).fill_diagonal_(1.0, wrap=wrap).numpy())


@pytest.mark.parametrize("call,message", [
    (lambda m: m.diag(m.ones(2, 3, 4)), "diag\\(\\): Supports 1D or 2D tensors. Got 3D"),
    (lambda m: m.diagonal(m.ones(2, 3), 0, 1, 1), "diagonal dimensions cannot be identical 1, 1"),
    (lambda m: m.diagonal_scatter(m.zeros(2, 3), m.ones(3)), "expected src to have a size equal to the slice"),
])
def test_errors_read_like_torch(call, message):
    assert_raises_like_torch(call, message)
