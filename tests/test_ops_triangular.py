"""tril, triu (and in place), tril_indices, triu_indices: torch's values and gradients, batches, offsets."""
import numpy as np
import pytest

import distgrad as dg
from distgrad.autograd import gradcheck, gradgradcheck
from helpers import assert_matches_torch, host, random_leaf


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("op", ["tril", "triu"])
def test_triangles_match_torch(seed, op, device):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(tuple(rng.integers(1, 5, int(rng.integers(2, 5))).tolist()))
    for diagonal in (-2, -1, 0, 1, 3):
        assert_matches_torch(lambda m, a: getattr(m, op)(a, diagonal), [x], device)


@pytest.mark.parametrize("op", ["tril", "triu"])
def test_triangles_gradcheck_double_backward_and_integers(op, device):
    x = random_leaf((2, 3, 4), device)
    assert gradcheck(lambda a: getattr(a, op)(1), [x])
    assert gradgradcheck(lambda a: getattr(a, op)(-1), [x])
    assert_matches_torch(lambda m, a: getattr(a, op)(), [np.arange(12).reshape(3, 4)], device)


@pytest.mark.parametrize("op", ["tril_", "triu_"])
def test_in_place_triangles_write_and_bump_the_version(op, device):
    torch = pytest.importorskip("torch")
    values = np.arange(12.0).reshape(3, 4)
    x = dg.tensor(values, device=device)
    assert getattr(x, op)(1) is x and x._version[0] == 1
    np.testing.assert_array_equal(host(x), getattr(torch.tensor(values), op)(1).numpy())
    y = random_leaf((3, 3), device) * 1
    getattr(y, op)()
    y.sum().backward()


@pytest.mark.parametrize("op", ["tril_indices", "triu_indices"])
@pytest.mark.parametrize("row,col,offset", [(3, 4, 0), (3, 4, 1), (4, 3, -2), (0, 3, 0), (5, 5, 7), (2, 6, -9)])
def test_index_lists_match_torch(op, row, col, offset, device):
    torch = pytest.importorskip("torch")
    ours = getattr(dg, op)(row, col, offset, device=device)
    np.testing.assert_array_equal(host(ours), getattr(torch, op)(row, col, offset).numpy())
    assert ours.dtype == dg.int64 and ours.device == dg.device(device)
    assert getattr(dg, op)(3, 3, dtype=dg.int32).dtype == dg.int32


def test_triangles_need_two_dims():
    with pytest.raises(RuntimeError, match="tril: input tensor must have at least 2 dimensions"):
        dg.ones(3).tril()
