"""scatter (src, value, reduce), index_add, index_copy, index_fill and their in-place forms: torch's
values and gradients with random shapes and indices, gradcheck and double backward, version counters,
0-d tensors, torch's errors."""
import warnings

import numpy as np
import pytest

import distgrad as dg
from distgrad.autograd import gradcheck, gradgradcheck
from helpers import assert_matches_torch, assert_raises_like_torch, host, random_leaf


def scatter_case(seed: int, dim: int, unique: bool = True):
    """input (3-d), an index no bigger than src, and a larger src; with ``unique`` no target repeats
    (PyTorch leaves the winner of repeated writes unspecified)."""
    rng = np.random.default_rng(seed)
    shape = tuple(rng.integers(2, 5, 3).tolist())
    index_shape = tuple(int(rng.integers(1, n + 1)) for n in shape)
    if unique:  # a permutation along dim, cut to the index's length
        perm = np.argsort(rng.random(index_shape[:dim] + (shape[dim],) + index_shape[dim + 1:]), axis=dim)
        index = np.take(perm, np.arange(index_shape[dim]), axis=dim)
    else:
        index = rng.integers(0, shape[dim], index_shape)
    src = rng.standard_normal(tuple(n + 1 for n in index_shape))
    return rng.standard_normal(shape), index, src


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("dim", [0, 1, 2])
def test_scatter_matches_torch(seed, dim, device):
    x, index, src = scatter_case(seed, dim)
    exact = src[tuple(slice(0, n) for n in index.shape)]  # torch's backward fails for a larger src
    assert_matches_torch(lambda m, a, i, s: m.scatter(a, dim, i, s), [x, index, exact], device)
    assert_matches_torch(lambda m, a, i, s: m.scatter(a, dim, i, s), [x, index, src], device, backward=False)
    assert_matches_torch(lambda m, a, i: a.scatter(dim, i, 1.5), [x, index], device)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("dim", [0, 2])
def test_scatter_reduce_matches_torch_with_repeated_indices(seed, dim, device):
    x, index, src = scatter_case(seed, dim, unique=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch: the reduce argument of scatter with a Tensor src is deprecated
        for reduce in ("add", "multiply"):
            assert_matches_torch(lambda m, a, i, s: a.detach().scatter(dim, i, s.detach(), reduce=reduce),
                                 [x, index, src], device, backward=False)
            assert_matches_torch(lambda m, a, i: a.detach().scatter(dim, i, 0.5, reduce=reduce),
                                 [x, index], device, backward=False)


def test_scatter_add_reduce_is_differentiable_in_distgrad(device):
    _, index, _ = scatter_case(0, 1, unique=False)
    i = dg.tensor(index, device=device)
    assert gradcheck(lambda a, s: a.scatter(1, i, s, reduce="add"), [random_leaf((4, 4, 4), device),
                                                                        random_leaf(index.shape, device, 1)])


def test_scatter_multiply_has_no_derivative_as_in_torch(device):
    x = random_leaf((3,), device)
    y = x.scatter(0, dg.tensor([0, 0], device=device), dg.tensor([2.0, 3.0], dtype=dg.float64, device=device),
                  reduce="multiply")
    np.testing.assert_allclose(host(y), host(x.detach()) * [6, 1, 1])
    with pytest.raises(RuntimeError, match="derivative for aten::scatter"):
        y.sum().backward()


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_index_add_copy_fill_match_torch(seed, dim, device):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(tuple(rng.integers(2, 5, 3).tolist()))
    size = x.shape[dim]
    repeated = rng.integers(0, size, size + 2)
    distinct = rng.permutation(size)[: max(size - 1, 1)]
    source = lambda n: rng.standard_normal(x.shape[:dim % 3] + (n,) + x.shape[dim % 3 + 1:])  # noqa: E731
    assert_matches_torch(lambda m, a, i, s: m.index_add(a, dim, i, s, alpha=2.5), [x, repeated,
                                                                                   source(repeated.size)], device)
    assert_matches_torch(lambda m, a, i, s: a.index_copy(dim, i, s), [x, distinct, source(distinct.size)], device)
    assert_matches_torch(lambda m, a, i: a.index_fill(dim, i, -1.0), [x, np.array([0, -1])], device)


def test_0d_tensors_act_as_one_element_vectors(device):
    one = np.array(1.0)
    assert_matches_torch(lambda m, a, i, s: a.index_add(0, i, s), [one, np.array([0]), np.array(2.0)], device)
    assert_matches_torch(lambda m, a, i, s: a.index_copy(0, i, s), [one, np.array([0]), np.array(2.0)], device)
    assert_matches_torch(lambda m, a, i, s: a.scatter(0, i, s), [one, np.array(0), np.array(2.0)], device)


OPS = {
    "scatter": lambda a, s, i: a.scatter(1, i, s),
    "index_add": lambda a, s, i: a.index_add(0, i[0, :3], s[:, :4], alpha=-2),
    "index_copy": lambda a, s, i: a.index_copy(1, i[0, :2], s[:, :2]),
    "index_fill": lambda a, s, i: a.index_fill(1, i[0, :2], 2.0) * s[:, :4],
}


@pytest.mark.parametrize("name", OPS)
def test_gradcheck_and_double_backward(name, device):
    i = dg.tensor([[2, 0, 1, 3]], device=device)  # distinct targets along dim 1
    a, s = random_leaf((3, 4), device), random_leaf((3, 5), device, 1)
    fn = lambda a, s: OPS[name](a, s, i)  # noqa: E731
    assert gradcheck(fn, [a, s])
    assert gradgradcheck(fn, [a, s])


@pytest.mark.parametrize("method,args", [
    ("scatter_", lambda d: (1, dg.tensor([[1, 0]], device=d), dg.tensor([[5.0, 6.0]], device=d))),
    ("scatter_", lambda d: (0, dg.tensor([[1, 0]], device=d), 7.0)),
    ("scatter_", lambda d: (1, dg.tensor([[1, 1]], device=d), dg.tensor([[5.0, 6.0]], device=d), "add")),
    ("index_add_", lambda d: (0, dg.tensor([1, 1], device=d), dg.ones(2, 3, device=d))),
    ("index_copy_", lambda d: (1, dg.tensor([2], device=d), dg.ones(2, 1, device=d))),
    ("index_fill_", lambda d: (1, dg.tensor([0, 2], device=d), 3.0)),
])
def test_in_place_forms_write_bump_the_version_and_match_torch(method, args, device):
    torch = pytest.importorskip("torch")
    base = np.arange(6.0).reshape(2, 3)
    ours, theirs = dg.tensor(base, dtype=dg.float32, device=device), torch.tensor(base, dtype=torch.float32)
    call = args(device)
    extra = {"reduce": call[-1]} if isinstance(call[-1], str) else {}
    call = call[:-1] if extra else call
    version = ours._version[0]
    assert getattr(ours, method)(*call, **extra) is ours
    getattr(theirs, method)(*[torch.tensor(host(a)) if isinstance(a, dg.Tensor) else a for a in call], **extra)
    np.testing.assert_allclose(host(ours), theirs.numpy())
    assert ours._version[0] == version + 1


def test_in_place_forms_are_recorded_on_non_leaves(device):
    x = random_leaf((2, 3), device)
    s = random_leaf((2, 3), device, 1)
    y = x * 2
    y.index_add_(1, dg.tensor([0, 0, 2], device=device), s)
    y.sum().backward()
    np.testing.assert_allclose(host(x.grad), np.full((2, 3), 2.0))
    np.testing.assert_allclose(host(s.grad), np.ones((2, 3)))


@pytest.mark.parametrize("call,message", [
    (lambda m: m.zeros(3, 4).scatter(0, m.tensor([[0.0]]), m.ones(3, 4)), "scatter\\(\\): Expected dtype int"),
    (lambda m: m.zeros(3, 4).scatter(0, m.tensor([[0]]), m.ones(3, 4, dtype=m.float64)),
     "scatter\\(\\): Expected self.dtype to be equal to src.dtype"),
    (lambda m: m.zeros(3, 4).scatter(0, m.tensor([0]), m.ones(3, 4)), "Index tensor must have the same number of"),
    (lambda m: m.zeros(3, 4).scatter_(0, m.tensor([[0]]), m.ones(3, 4), reduce="max"),
     "reduce argument must be either add or multiply"),
    (lambda m: m.zeros(3, 4).index_add(0, m.tensor([0, 0]), m.ones(3, 4)),
     "Number of indices \\(2\\) should be equal to source.size\\(dim\\)"),
    (lambda m: m.zeros(3, 4).index_add(1, m.tensor([0, 1]), m.ones(3, 3)),
     "Number of indices \\(2\\) should be equal to source.size\\(dim\\)"),
    (lambda m: m.zeros(3, 4).index_add(0, m.tensor([0.0, 1.0]), m.ones(2, 4)),
     "index_add_?\\(\\): Expected dtype int32/int64 for index"),
    (lambda m: m.zeros(3, 4).index_add(0, m.tensor([0, 1]), m.ones(2, 4, dtype=m.float64)),
     "index_add_?\\(\\): self \\(\\w+\\) and source \\(\\w+\\) must have the same scalar type"),
    (lambda m: m.zeros(3, 4).index_copy(0, m.tensor([0, 1]), m.ones(2, 4, dtype=m.float64)), "index_copy"),
])
def test_errors_read_like_torch(call, message):
    assert_raises_like_torch(call, message, (RuntimeError, IndexError))


def test_out_of_range_indices_raise(device):
    x = dg.zeros(3, 2, device=device)
    with pytest.raises((RuntimeError, IndexError), match="index 5 is out of bounds for dimension 0 with size 3"):
        x.index_add(0, dg.tensor([0, 5], device=device), dg.ones(2, 2, device=device))
    with pytest.raises((RuntimeError, IndexError), match="out of bounds"):
        x.index_copy(0, dg.tensor([-1], device=device), dg.ones(1, 2, device=device))
    with pytest.raises((RuntimeError, IndexError), match="out of bounds"):
        x.scatter(0, dg.tensor([[3]], device=device), 1.0)
