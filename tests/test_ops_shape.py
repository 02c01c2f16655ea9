"""Shape ops: views and their version counters, copies, joins, splits and padding; forward against
NumPy and PyTorch, gradients by finite differences, and PyTorch's error messages."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import distgrad as dg
from distgrad.autograd import gradcheck, gradgradcheck
from helpers import host, leaf_keeping_layout

FAST = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SHAPES = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=3)


def numbered(shape) -> np.ndarray:
    return np.arange(float(np.prod(shape))).reshape(shape) / 3.0


def transposed_leaf(device, shape) -> dg.Tensor:
    """A leaf of ``shape`` whose memory is laid out in reverse dim order (not contiguous)."""
    x = leaf_keeping_layout(device, numbered(shape[::-1]).T)
    assert x.ndim < 2 or not x.is_contiguous()
    return x


def check(device, fn, array, reference=None):
    """``fn`` against ``reference`` (the same function on NumPy arrays) and finite differences."""
    if reference is not None:
        np.testing.assert_allclose(host(fn(leaf_keeping_layout(device, array))), reference(array))
    assert gradcheck(fn, leaf_keeping_layout(device, array))


# --- reshaping -------------------------------------------------------------------------------------------
def test_reshape_infers_minus_one_and_takes_sizes_either_way(device):
    x = dg.tensor(numbered((2, 3)), device=device)
    assert x.reshape(3, -1).shape == (3, 2) and x.reshape((6,)).shape == (6,)
    assert dg.reshape(x, (-1, 1, 2)).shape == (3, 1, 2) and x.view([1, 6]).shape == (1, 6)
    assert x.flatten().shape == (6,) and dg.tensor(2.0).flatten().shape == (1,)


def test_view_shares_memory_and_version_with_its_input(device):
    x = dg.tensor(numbered((2, 3)), device=device)
    for v in (x.view(6), x.reshape(3, 2), x.t(), x.T, x.unsqueeze(0), x.narrow(1, 1, 2), x.select(0, 1),
              x.split(1)[1], x.unbind(1)[2], x.permute(1, 0), x.movedim(0, 1), x.squeeze(), x.mT):
        assert v._version is x._version
    y = x.view(3, 2)
    y.array[0, 0] = 42.0
    assert host(x)[0, 0] == 42.0


def test_copies_share_nothing_with_their_input(device):
    x = dg.tensor(numbered((2, 3)), device=device)
    for c in (x.t().reshape(6), x.flip(0), x.clone(), x.roll(1), x.repeat(1, 2), dg.cat([x, x]), dg.stack([x]),
              dg.pad(x, (1, 1)), x.t().contiguous()):
        assert c._version is not x._version
        c.array[...] = -1.0
    assert host(x).min() >= 0


def test_view_of_a_non_contiguous_tensor_raises_but_reshape_copies(device):
    x = dg.tensor(numbered((2, 3)), device=device).t()
    with pytest.raises(RuntimeError, match=r"view size is not compatible with input tensor's size and stride.*"
                                           r"Use \.reshape\(\.\.\.\) instead"):
        x.view(6)
    np.testing.assert_array_equal(host(x.reshape(6)), numbered((2, 3)).T.reshape(6))
    assert x.view(3, 1, 2).shape == (3, 1, 2)  # adding a size-1 dim needs no copy


@FAST
@given(shape=SHAPES, data=st.data())
def test_reshape_flatten_unflatten_have_the_right_gradient(device, shape, data):
    n = int(np.prod(shape))
    target = data.draw(st.sampled_from([(n,), (1, n), (n, 1), (-1,), (1, -1, 1)]))
    start = data.draw(st.integers(-len(shape), len(shape) - 1))
    array = numbered(shape[::-1]).T  # non-contiguous: reshape must copy where it cannot view
    check(device, lambda x: x.reshape(target), array, lambda a: a.reshape(target))
    check(device, lambda x: x.flatten(start), array, lambda a: a.reshape(a.shape[:start % a.ndim] + (-1,)))
    check(device, lambda x: x.unflatten(-1, (1, -1)), array, lambda a: a.reshape(a.shape[:-1] + (1, a.shape[-1])))


def test_squeeze_and_unsqueeze(device):
    x = leaf_keeping_layout(device, numbered((1, 3, 1)))
    assert x.squeeze().shape == (3,) and x.squeeze(0).shape == (3, 1) and x.squeeze((0, -1)).shape == (3,)
    assert x.squeeze(1).shape == (1, 3, 1) and x.unsqueeze(-1).shape == (1, 3, 1, 1)
    assert x.unsqueeze(3).shape == (1, 3, 1, 1) and dg.unsqueeze(x, -4).shape == (1, 1, 3, 1)
    assert gradcheck(lambda t: t.squeeze(-1).unsqueeze(1), x)


# --- reordering dims -------------------------------------------------------------------------------------
@FAST
@given(shape=SHAPES, data=st.data())
def test_permute_transpose_movedim_match_numpy(device, shape, data):
    nd = len(shape)
    dims = tuple(data.draw(st.permutations(range(nd))))
    d0, d1 = data.draw(st.integers(-nd, nd - 1)), data.draw(st.integers(-nd, nd - 1))
    array = numbered(shape)
    check(device, lambda x: x.permute(*dims), array, lambda a: a.transpose(dims))
    check(device, lambda x: dg.permute(x, dims), array, lambda a: a.transpose(dims))
    check(device, lambda x: x.transpose(d0, d1), array, lambda a: np.swapaxes(a, d0, d1))
    check(device, lambda x: x.movedim(d0, d1), array, lambda a: np.moveaxis(a, d0, d1))


def test_t_T_and_mT(device):
    x = dg.tensor(numbered((2, 3, 4)), device=device)
    assert x.T.shape == (4, 3, 2) and x.mT.shape == (2, 4, 3) and x[0].t().shape == (4, 3)
    assert dg.tensor([1.0, 2.0]).t().shape == (2,)
    assert dg.movedim(x, (0, 1), (2, 0)).shape == (3, 4, 2)


def test_reordering_is_twice_differentiable(device):
    x = leaf_keeping_layout(device, numbered((2, 3, 2)))
    assert gradgradcheck(lambda t: (t.permute(2, 0, 1).reshape(2, 6) ** 2), x)
    assert gradgradcheck(lambda t: (t.transpose(0, -1).flatten(1) ** 2), x)


# --- parts -------------------------------------------------------------------------------------------------
@FAST
@given(shape=SHAPES, data=st.data())
def test_narrow_select_split_chunk_unbind_have_the_right_gradients(device, shape, data):
    nd = len(shape)
    dim = data.draw(st.integers(-nd, nd - 1))
    size = shape[dim]
    start = data.draw(st.integers(0, size - 1))
    length = data.draw(st.integers(0, size - start))
    array = numbered(shape[::-1]).T
    index = [slice(None)] * nd
    index[dim] = slice(start, start + length)
    check(device, lambda x: x.narrow(dim, start, length), array, lambda a: a[tuple(index)])
    check(device, lambda x: x.select(dim, start), array, lambda a: np.take(a, start, axis=dim))
    step = data.draw(st.integers(1, size))
    assert gradcheck(lambda x: x.split(step, dim), leaf_keeping_layout(device, array))
    assert gradcheck(lambda x: dg.chunk(x, step, dim), leaf_keeping_layout(device, array))
    assert gradcheck(lambda x: x.unbind(dim), leaf_keeping_layout(device, array))
    pieces = dg.split(dg.tensor(array, device=device), [start, size - start], dim)
    assert [p.shape[dim] for p in pieces] == [start, size - start]


def test_split_and_chunk_sizes_follow_torch(device):
    x = dg.tensor(numbered((7, 2)), device=device)
    assert [p.shape[0] for p in x.split(3)] == [3, 3, 1]
    assert [p.shape[0] for p in x.chunk(3)] == [3, 3, 1]
    assert [p.shape[0] for p in dg.chunk(dg.tensor(numbered((6, 1)), device=device), 4)] == [2, 2, 2]
    assert [p.shape[1] for p in x.split([1, 1], dim=1)] == [1, 1]
    assert len(x.unbind(1)) == 2 and x.unbind(1)[0].shape == (7,)


def test_backward_through_one_piece_leaves_zeros_elsewhere(device):
    x = leaf_keeping_layout(device, numbered((4, 2)))
    first, rest = x.split([1, 3])
    (first * 2).sum().backward()
    np.testing.assert_array_equal(host(x.grad), [[2, 2], [0, 0], [0, 0], [0, 0]])


# --- copies --------------------------------------------------------------------------------------------
@FAST
@given(shape=SHAPES, data=st.data())
def test_flip_roll_repeat_tile_match_numpy(device, shape, data):
    nd = len(shape)
    dims = tuple(data.draw(st.lists(st.integers(0, nd - 1), unique=True, min_size=1)))
    shifts = tuple(data.draw(st.lists(st.integers(-4, 4), min_size=len(dims), max_size=len(dims))))
    repeats = tuple(data.draw(st.lists(st.integers(1, 3), min_size=nd, max_size=nd + 1)))
    array = numbered(shape[::-1]).T
    check(device, lambda x: x.flip(dims), array, lambda a: np.flip(a, dims))
    check(device, lambda x: x.roll(shifts, dims), array, lambda a: np.roll(a, shifts, dims))
    check(device, lambda x: dg.roll(x, shifts[0]), array, lambda a: np.roll(a, shifts[0]))
    check(device, lambda x: x.repeat(*repeats), array, lambda a: np.tile(a, repeats))
    check(device, lambda x: dg.tile(x, repeats[1:]), array, lambda a: np.tile(a, repeats[1:]))


def test_clone_and_contiguous(device):
    x = leaf_keeping_layout(device, numbered((2, 3)))
    assert x.contiguous() is x
    y = x.t().contiguous()
    assert y.is_contiguous() and y.grad_fn is not None
    assert gradcheck(lambda t: t.t().contiguous(), x) and gradcheck(dg.clone, x)
    assert gradgradcheck(lambda t: t.repeat(2, 1) ** 2, x)


# --- joining -------------------------------------------------------------------------------------------------
@FAST
@given(shape=SHAPES, data=st.data())
def test_cat_and_stack_match_numpy(device, shape, data):
    nd = len(shape)
    dim = data.draw(st.integers(-nd, nd - 1))
    other = list(shape)
    other[dim] = data.draw(st.integers(1, 3))
    a, b = numbered(shape), numbered(other)[..., ::-1] + 1
    expected = np.concatenate([a, b], dim)
    np.testing.assert_allclose(host(dg.cat([leaf_keeping_layout(device, a), leaf_keeping_layout(device, b)], dim)), expected)
    assert gradcheck(lambda x, y: dg.cat((x, y.t() if nd == 2 else y), dim),
                     (leaf_keeping_layout(device, a), leaf_keeping_layout(device, b.T if nd == 2 else b)))
    new = data.draw(st.integers(-nd - 1, nd))
    np.testing.assert_allclose(host(dg.stack([leaf_keeping_layout(device, a), leaf_keeping_layout(device, a + 1)], new)),
                               np.stack([a, a + 1], new))
    assert gradcheck(lambda x, y: dg.stack([x, y], new), (leaf_keeping_layout(device, a), leaf_keeping_layout(device, a * 2)))


def test_cat_aliases_and_double_backward(device):
    x, y = leaf_keeping_layout(device, numbered((2, 2))), leaf_keeping_layout(device, numbered((1, 2)))
    assert dg.concat([x, y]).shape == dg.concatenate([x, y]).shape == (3, 2)
    assert gradgradcheck(lambda a, b: dg.cat([a, b]) ** 2, (x, y))
    assert gradgradcheck(lambda a: dg.stack([a, a * 2], 1) ** 2, x)


# --- padding --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
def test_pad_matches_torch(device, mode):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    for widths in [(1, 2), (3, 1), (2, 0, 1, 1), (0, 1, 2, 2, 1, 1)]:  # torch's non-constant modes pad
        array = rng.standard_normal((2, 3, 4, 5)[-len(widths) // 2 - 1:])  # batched inputs only
        ours = dg.pad(leaf_keeping_layout(device, array), widths, mode=mode)
        theirs = torch.nn.functional.pad(torch.tensor(array), widths, mode=mode)
        np.testing.assert_allclose(host(ours), theirs.numpy(), err_msg=f"{mode} {widths}")
        x, t = leaf_keeping_layout(device, array), torch.tensor(array, requires_grad=True)
        weights = np.random.default_rng(4).standard_normal(theirs.shape)
        (dg.pad(x, widths, mode=mode) * dg.tensor(weights, device=device)).sum().backward()
        (torch.nn.functional.pad(t, widths, mode=mode) * torch.tensor(weights)).sum().backward()
        np.testing.assert_allclose(host(x.grad), t.grad.numpy(), err_msg=f"{mode} {widths}")


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
def test_pad_is_twice_differentiable(device, mode):
    x = transposed_leaf(device, (3, 4))
    assert gradcheck(lambda t: dg.pad(t, (2, 1, 1, 2), mode=mode), x)
    assert gradgradcheck(lambda t: dg.pad(t, (1, 2), mode=mode) ** 2, x)


def test_constant_pad_fills_value_and_crops_negative_widths(device):
    x = leaf_keeping_layout(device, numbered((2, 3)))
    out = dg.pad(x, (-1, 1, 1, 0), value=7.0)
    np.testing.assert_allclose(host(out), [[7, 7, 7], [1 / 3, 2 / 3, 7], [4 / 3, 5 / 3, 7]])
    assert gradcheck(lambda t: dg.pad(t, (-1, 2, 0, -1)), x)


# --- against PyTorch -----------------------------------------------------------------------------------
def test_values_match_torch(device):
    torch = pytest.importorskip("torch")
    array = numbered((2, 3, 4))
    cases = [
        lambda m: m.movedim((0, 2), (1, 0)), lambda m: m.unflatten(2, (2, -1)), lambda m: m.flatten(0, 1),
        lambda m: m.repeat(2, 1, 1, 2), lambda m: m.roll((1, -2), (0, 2)), lambda m: m.roll(5),
        lambda m: m.flip(-1, 0), lambda m: m.chunk(2, 1)[-1], lambda m: m.narrow(-1, -3, 2),
        lambda m: m.mT, lambda m: m.swapaxes(0, 1), lambda m: m.squeeze(), lambda m: m.tile((2,)),
        lambda m: m.select(-1, -1),
    ]
    for i, case in enumerate(cases):
        np.testing.assert_array_equal(host(case(dg.tensor(array, device=device))),
                                      case(torch.tensor(array)).numpy(), err_msg=f"case {i}")


# --- errors ------------------------------------------------------------------------------------------------
def test_errors_read_like_torch(device):
    x = dg.tensor(numbered((2, 3)), dtype=dg.float32, device=device)
    cases = [
        (RuntimeError, r"shape '\[2, 5\]' is invalid for input of size 6", lambda: x.reshape(2, 5)),
        (RuntimeError, r"shape '\[-1, 4\]' is invalid for input of size 6", lambda: x.view(-1, 4)),
        (RuntimeError, "only one dimension can be inferred", lambda: x.reshape(-1, -1)),
        (RuntimeError, r"invalid shape dimension -2 at index 0 of shape \[-2, 3\]", lambda: x.view(-2, 3)),
        (IndexError, r"Dimension out of range \(expected to be in range of \[-3, 2\], but got 3\)",
         lambda: x.unsqueeze(3)),
        (RuntimeError, "t\\(\\) expects a tensor with <= 2 dimensions, but self is 3D", lambda: x.unsqueeze(0).t()),
        (RuntimeError, "tensor.mT is only supported on matrices or batches of matrices. Got 1-D tensor",
         lambda: x.flatten().mT),
        (RuntimeError, r"input.dim\(\) = 2 is not equal to len\(dims\) = 3", lambda: x.permute(0, 1, 2)),
        (RuntimeError, "permute\\(\\): duplicate dims are not allowed", lambda: x.permute(0, 0)),
        (RuntimeError, "Sizes of tensors must match except in dimension 1. Expected size 2 but got size 3 for "
                       "tensor number 1 in the list", lambda: dg.cat([x, dg.ones(3, 3, device=device)], 1)),
        (ValueError, "expected a non-empty list of Tensors", lambda: dg.cat([])),
        (RuntimeError, r"zero-dimensional tensor \(at position 0\) cannot be concatenated",
         lambda: dg.cat([dg.tensor(1.0)])),
        (RuntimeError, r"stack expects each tensor to be equal size, but got \[2, 3\] at entry 0 and \[3\] at "
                       "entry 1", lambda: dg.stack([x, x[0]])),
        (RuntimeError, r"split_with_sizes expects split_sizes to sum exactly to 2", lambda: x.split([1, 2])),
        (RuntimeError, "chunk expects `chunks` to be greater than 0, got: 0", lambda: x.chunk(0)),
        (IndexError, r"start out of range \(expected to be in range of \[-3, 3\], but got 4\)",
         lambda: x.narrow(1, 4, 1)),
        (RuntimeError, r"start \(1\) \+ length \(3\) exceeds dimension size \(3\)", lambda: x.narrow(1, 1, 3)),
        (IndexError, r"select\(\): index 3 out of range for tensor of size \[2, 3\] at dimension 1",
         lambda: x.select(1, 3)),
        (RuntimeError, "Number of dimensions of repeat dims can not be smaller", lambda: x.repeat(2)),
        (RuntimeError, r"unflatten: Provided sizes \[2, 2\] don't multiply up to the size of dim 1 \(3\)",
         lambda: x.unflatten(1, (2, 2))),
        (RuntimeError, "start_dim cannot come after end_dim", lambda: x.flatten(1, 0)),
        (RuntimeError, "shifts and dimensions must align. shifts: 2, dims:1", lambda: x.roll((1, 1), 0)),
        (RuntimeError, r"Padding size should be less than the corresponding input dimension, but got: padding "
                       r"\(3, 3\) at dimension 1 of input \[2, 3\]", lambda: dg.pad(x, (3, 3), mode="reflect")),
        (RuntimeError, "Padding length must be divisible by 2", lambda: dg.pad(x, (1,))),
        (RuntimeError, "Padding length should be less than or equal to two times the input dimension",
         lambda: dg.pad(x, (1,) * 6)),
        (NotImplementedError, "Unrecognised padding mode foo", lambda: dg.pad(x, (1, 1), mode="foo")),
        (RuntimeError, "The input size 3, plus negative padding -2 and -2 resulted in a negative output size",
         lambda: dg.pad(x, (-2, -2))),
    ]
    for error, message, call in cases:
        with pytest.raises(error, match=message):
            call()
