"""Indexing: ``x[key]``, ``x[key] = v``, index_select, gather, scatter_add, masked_fill, take, nonzero, one_hot."""
import numpy as np
import pytest

import distgrad as dg
from distgrad.autograd import gradcheck, gradgradcheck
from helpers import host

RNG = np.random.default_rng(0)
BASE = RNG.standard_normal((3, 4))
MASK = BASE > 0


def leaf(arr, device, requires_grad=True):
    return dg.tensor(np.asarray(arr, dtype=np.float64), device=device, requires_grad=requires_grad)


def index_on(device, arr):
    return dg.tensor(np.asarray(arr), device=device)


BASIC_KEYS = [1, -1, (1, 2), (slice(None, None, -1),), (slice(None), slice(3, 0, -2)), (Ellipsis, 1),
              (None, 1, slice(1, 3)), (slice(0, 3, 2), None), ()]
ADVANCED_KEYS = [[0, 0, 2], ([2, 0], slice(1, 3)), (slice(None), [1, 1, 0]), ([[0, 1], [2, 2]],),
                 (MASK,), (MASK[:, 0],), (slice(None), MASK[0]), ([0, 2], [3, 3]),
                 (1, [0, 0, 3]), (Ellipsis, [2, 2]), (np.zeros(0, np.int64), slice(None))]


def key_on(device, key):
    """``key`` with its arrays and lists turned into Tensors on ``device``."""
    items = key if isinstance(key, tuple) else (key,)
    return tuple(index_on(device, k) if isinstance(k, (list, np.ndarray)) else k for k in items)


# --- reading --------------------------------------------------------------------------------------
@pytest.mark.parametrize("key", BASIC_KEYS, ids=str)
def test_basic_indexing_is_a_view_sharing_the_version_counter(device, key):
    x = leaf(BASE, device)
    y = x[key]
    np.testing.assert_array_equal(host(y), BASE[key])
    assert type(y.grad_fn).is_view and y._version is x._version
    assert y.array.base is not None


@pytest.mark.parametrize("key", ADVANCED_KEYS, ids=str)
def test_advanced_indexing_is_a_copy(device, key):
    x = leaf(BASE, device)
    y = x[key_on(device, key)]
    np.testing.assert_array_equal(host(y), BASE[tuple(np.asarray(k) if isinstance(k, list) else k
                                                      for k in (key if isinstance(key, tuple) else (key,)))])
    assert not type(y.grad_fn).is_view and y._version is not x._version


@pytest.mark.parametrize("key", BASIC_KEYS + ADVANCED_KEYS, ids=str)
def test_indexing_gradcheck(device, key):
    assert gradcheck(lambda x: x[key_on(device, key)], [leaf(BASE, device)])


@pytest.mark.parametrize("key", [[0, 0, 2], (MASK,), (slice(None, None, -1), [3, 3]), (1, slice(None, None, -2))],
                         ids=str)
def test_indexing_gradgradcheck(device, key):
    assert gradgradcheck(lambda x: x[key_on(device, key)], [leaf(BASE, device)])


def test_repeated_indices_sum_their_gradients(device):
    x = leaf(np.zeros(4), device)
    x[[0, 0, 0, 3]].backward(leaf(np.ones(4), device, requires_grad=False))
    np.testing.assert_array_equal(host(x.grad), [3, 0, 0, 1])


def test_indexing_with_lists_of_bools_and_numpy_index_arrays():
    x = dg.tensor(BASE)
    np.testing.assert_array_equal(x[[True, False, True]].array, BASE[[True, False, True]])
    np.testing.assert_array_equal(x[np.array([2, 1])].array, BASE[[2, 1]])
    np.testing.assert_array_equal(x[dg.tensor(1), dg.tensor([0, 1])].array, BASE[1, [0, 1]])
    assert x[[]].shape == (0, 4)


def test_indexing_matches_torch_for_a_mixed_key_with_repeats():
    torch = pytest.importorskip("torch")
    x, tx = leaf(BASE, "cpu"), torch.tensor(BASE, requires_grad=True)
    key, tkey = (slice(None, None, -1), [3, 0, 3]), (slice(None), torch.tensor([3, 0, 3]))
    y, ty = x[key], tx.flip(0)[tkey]
    np.testing.assert_allclose(y.array, ty.detach().numpy())
    weights = RNG.standard_normal(ty.shape)
    y.backward(dg.tensor(weights))
    ty.backward(torch.tensor(weights))
    np.testing.assert_allclose(x.grad.array, tx.grad.numpy())


@pytest.mark.parametrize("key, error, message", [
    (5, IndexError, "index 5 is out of bounds for dimension 0 with size 3"),
    ((0, 0, 0), IndexError, "too many indices for tensor"),
    ([0, 7], IndexError, "index 7 is out of bounds for dimension 0 with size 3"),
    (np.array([1.0]), IndexError, "tensors used as indices must be long, int, byte or bool tensors, got float64"),
    (np.array([True, False]), IndexError, "boolean index did not match"),
], ids=["int", "too-many", "array", "float", "mask-shape"])
def test_indexing_errors(device, key, error, message):
    x = leaf(BASE, device)
    with pytest.raises(error, match=message):
        x[key_on(device, key) if isinstance(key, (list, np.ndarray)) else key]


@pytest.mark.cuda
def test_cuda_indexing_refuses_negative_out_of_range_and_host_tensor_indices_on_cpu(device):
    if device == "cpu":
        pytest.skip("checks the GPU bounds check")
    x = leaf(BASE, device)
    with pytest.raises(IndexError, match="index -4 is out of bounds for dimension 0 with size 3"):
        x[index_on(device, [-4])]
    with pytest.raises(IndexError, match="indices should be either on cpu or on the same device"):
        leaf(BASE, "cpu")[index_on(device, [0])]


# --- writing --------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [7.0, np.full(4, 7.0), "tensor"], ids=["number", "array", "tensor"])
def test_setitem_writes_in_place_and_bumps_the_version(device, value):
    x = leaf(BASE, device, requires_grad=False)
    data = x.array
    x[1] = leaf(np.full(4, 7.0), device, requires_grad=False) if isinstance(value, str) else value
    assert x.array is data and x._version[0] == 1
    np.testing.assert_array_equal(host(x)[1], np.full(4, 7.0))
    np.testing.assert_array_equal(host(x)[[0, 2]], BASE[[0, 2]])


def test_setitem_with_a_mask_and_with_repeated_indices(device):
    x = leaf(BASE, device, requires_grad=False)
    x[index_on(device, MASK)] = 0.0
    x[index_on(device, [2, 2]), 0] = index_on(device, [5.0, 5.0])
    expected = np.where(MASK, 0.0, BASE)
    expected[2, 0] = 5.0
    np.testing.assert_array_equal(host(x), expected)


def test_setitem_on_a_leaf_that_requires_grad_raises_unless_grad_is_off(device):
    w = leaf(BASE, device)
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used in an in-place"):
        w[0] = 1.0
    with dg.no_grad():
        w[0] = 1.0
    np.testing.assert_array_equal(host(w)[0], np.ones(4))


def test_setitem_of_a_tensor_that_requires_grad_records_the_write(device):
    w = leaf(np.arange(4.0), device)
    out = dg.zeros(3, 4, dtype=dg.float64, device=device)
    out[1] = w
    assert out.grad_fn is not None and out.requires_grad
    out.backward(leaf(np.arange(12.0).reshape(3, 4), device, requires_grad=False))
    np.testing.assert_array_equal(host(w.grad), [4, 5, 6, 7])


def _written(x, key, value):
    y = x * 1.0
    y[key] = value
    return y


@pytest.mark.parametrize("key", [1, (slice(None), [0, 2]), (MASK,), (slice(None, None, -1), 2)], ids=str)
def test_recorded_setitem_gradcheck(device, key):
    x = leaf(BASE, device)
    value = leaf(RNG.standard_normal(BASE[key].shape[-1:]), device)
    assert gradcheck(lambda x, v: _written(x, key_on(device, key), v), [x, value])
    assert gradgradcheck(lambda x, v: _written(x, key_on(device, key), v), [x, value])


def test_setitem_into_a_view_of_a_graph_tensor_raises(device):
    y = leaf(BASE, device) * 2.0
    with pytest.raises(RuntimeError, match=r"in-place operation on a view \(shape \[4\], made by BasicIndexBackward\)"):
        y[0][1] = 5.0


def test_setitem_into_a_broadcast_view_raises(device):
    e = leaf(np.ones(4), device, requires_grad=False).expand(3, 4)
    with pytest.raises(RuntimeError, match="more than one element of the written-to tensor"):
        e[0] = 2.0


# --- index_select, gather, scatter_add, take --------------------------------------------------------
def test_index_select_matches_numpy_and_gradchecks_with_repeats(device):
    x = leaf(BASE, device)
    idx = index_on(device, [3, 0, 3])
    np.testing.assert_array_equal(host(dg.index_select(x, 1, idx)), BASE[:, [3, 0, 3]])
    np.testing.assert_array_equal(host(x.index_select(-2, index_on(device, 2))), BASE[[2]])
    assert gradcheck(lambda x: x.index_select(1, idx), [x])
    assert gradgradcheck(lambda x: x.index_select(0, index_on(device, [2, 2, 0])), [x])


@pytest.mark.parametrize("args, error, message", [
    ((1, [[0]]), IndexError, r"Index is supposed to be a vector, got shape \[1, 1\]"),
    ((1, np.array([0.5])), IndexError, "tensors used as indices must be long, int, byte or bool tensors"),
    ((1, np.array([True])), IndexError, "Expected dtype int32/int64 for index, got bool"),
    ((1, [4]), IndexError, "index 4 is out of bounds for dimension 1 with size 4"),
    ((1, [-1]), IndexError, "index -1 is out of bounds for dimension 1"),
    ((2, [0]), IndexError, r"Dimension out of range \(expected to be in range of \[-2, 1\], but got 2\)"),
], ids=["matrix", "float", "bool", "too-big", "negative", "dim"])
def test_index_select_errors(device, args, error, message):
    with pytest.raises(error, match=message):
        leaf(BASE, device).index_select(args[0], index_on(device, args[1]))


def test_gather_matches_torch_with_an_index_smaller_than_the_input():
    torch = pytest.importorskip("torch")
    index = np.array([[0, 0], [2, 1]])
    for dim in (0, 1):
        expected = torch.gather(torch.tensor(BASE), dim, torch.tensor(index)).numpy()
        np.testing.assert_array_equal(dg.gather(dg.tensor(BASE), dim, dg.tensor(index)).array, expected)


def test_gather_gradcheck_and_gradgradcheck(device):
    x = leaf(BASE, device)
    index = index_on(device, [[3, 3, 0], [1, 2, 1]])
    assert gradcheck(lambda x: x.gather(1, index), [x])
    assert gradgradcheck(lambda x: x.gather(-1, index), [x])
    assert gradcheck(lambda x: x.gather(0, index_on(device, [[2, 2], [1, 0]])), [x])


@pytest.mark.parametrize("index, message", [
    ([0, 1], r"gather\(\): Index tensor must have the same number of dimensions as input tensor"),
    ([[0] * 5], r"gather\(\): Size does not match at dimension 0: expected index \[1, 5\] to be smaller than self "
                r"\[3, 4\] apart from dimension 0"),
    ([[3]], "index 3 is out of bounds for dimension 0 with size 3"),
], ids=["ndim", "size", "range"])
def test_gather_errors(device, index, message):
    with pytest.raises((RuntimeError, IndexError), match=message):
        leaf(BASE, device).gather(0, index_on(device, index))


def test_scatter_add_sums_repeats_like_torch():
    torch = pytest.importorskip("torch")
    src = RNG.standard_normal((2, 5))
    index = np.array([[0, 0, 2], [1, 0, 0]])
    expected = torch.tensor(BASE).scatter_add(1, torch.tensor(index), torch.tensor(src)).numpy()
    np.testing.assert_allclose(dg.scatter_add(dg.tensor(BASE), 1, dg.tensor(index), dg.tensor(src)).array, expected)


def test_scatter_add_gradcheck_for_input_and_a_larger_src(device):
    x, src = leaf(BASE, device), leaf(RNG.standard_normal((3, 5)), device)
    index = index_on(device, [[0, 0], [2, 0]])
    assert gradcheck(lambda x, s: dg.scatter_add(x, 0, index, s), [x, src])
    assert gradgradcheck(lambda x, s: x.scatter_add(1, index, s), [x, src])


def test_scatter_add_in_place_bumps_the_version_and_dtype_mismatch_raises(device):
    x = leaf(np.zeros((2, 3)), device, requires_grad=False)
    x.scatter_add_(1, index_on(device, [[2, 2]]), leaf(np.ones((1, 2)), device, requires_grad=False))
    np.testing.assert_array_equal(host(x), [[0, 0, 2], [0, 0, 0]])
    assert x._version[0] == 1
    with pytest.raises(RuntimeError, match="Expected self.dtype to be equal to src.dtype, got float64 and float32"):
        x.scatter_add(0, index_on(device, [[0]]), dg.ones(1, 1, device=device))


def test_take_reads_the_flattened_tensor_with_negative_indices(device):
    x = leaf(BASE, device)
    index = index_on(device, [[0, -1], [5, 5]])
    np.testing.assert_array_equal(host(dg.take(x, index)), np.take(BASE, [[0, -1], [5, 5]]))
    assert gradcheck(lambda x: x.take(index), [x])
    with pytest.raises(IndexError, match="out of range: tried to access index 12 on a tensor of 12 elements."):
        x.take(index_on(device, [12]))


# --- masks ------------------------------------------------------------------------------------------
def test_masked_fill_with_a_broadcast_mask(device):
    x = leaf(BASE, device)
    mask = index_on(device, MASK[0])
    np.testing.assert_array_equal(host(x.masked_fill(mask, -1.0)), np.where(MASK[0], -1.0, BASE))
    value = leaf(2.0, device)
    assert gradcheck(lambda x, v: dg.masked_fill(x, mask, v), [x, value])
    assert gradgradcheck(lambda x, v: dg.masked_fill(x, mask, v), [x, value])


def test_masked_fill_in_place(device):
    x = leaf(BASE, device, requires_grad=False)
    assert x.masked_fill_(index_on(device, MASK), 0.0) is x and x._version[0] == 1
    np.testing.assert_array_equal(host(x), np.where(MASK, 0.0, BASE))
    y = leaf(BASE, device)
    assert gradcheck(lambda y: (y * 1.0).masked_fill_(index_on(device, MASK), 3.0), [y])


@pytest.mark.parametrize("mask, value, message", [
    (MASK.astype(np.int64), 0.0, "masked_fill only supports boolean masks, but got mask with dtype int64"),
    (np.ones((2, 3, 4), bool), 0.0, r"mask of shape \[2, 3, 4\] cannot be broadcast to the tensor's shape \[3, 4\]"),
    (MASK, "vector", "only supports a 0-dimensional value tensor, but got tensor with 1 dimension"),
], ids=["dtype", "shape", "value"])
def test_masked_fill_errors(device, mask, value, message):
    value = leaf([1.0, 2.0], device) if value == "vector" else value
    with pytest.raises(RuntimeError, match=message):
        leaf(BASE, device).masked_fill(index_on(device, mask), value)


def test_nonzero_in_both_forms(device):
    x = index_on(device, [[0, 1, 0], [2, 0, 3]])
    out = dg.nonzero(x)
    assert out.dtype == np.int64 and not out.requires_grad
    np.testing.assert_array_equal(host(out), [[0, 1], [1, 0], [1, 2]])
    rows, cols = x.nonzero(as_tuple=True)
    np.testing.assert_array_equal(host(rows), [0, 1, 1])
    np.testing.assert_array_equal(host(cols), [1, 0, 2])
    assert dg.nonzero(index_on(device, 5)).shape == (1, 0)


def test_one_hot(device):
    labels = index_on(device, [[0, 2], [1, 2]])
    out = dg.one_hot(labels)
    assert out.dtype == np.int64 and out.shape == (2, 2, 3)
    np.testing.assert_array_equal(host(out), np.eye(3, dtype=np.int64)[[[0, 2], [1, 2]]])
    assert dg.one_hot(labels, num_classes=5).shape == (2, 2, 5)


@pytest.mark.parametrize("labels, num_classes, message", [
    ([0, 3], 3, r"Class values must be smaller than num_classes \(3\), got 3."),
    ([-1, 0], -1, "Class values must be non-negative."),
    (np.zeros(0, np.int64), -1, "Can not infer total number of classes from empty tensor."),
    ([0.0], 2, "one_hot is only applicable to index tensor of integer dtype, got float32"),
], ids=["too-big", "negative", "empty", "float"])
def test_one_hot_errors(device, labels, num_classes, message):
    with pytest.raises(RuntimeError, match=message):
        dg.one_hot(dg.tensor(labels, device=device), num_classes)
