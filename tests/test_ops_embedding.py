"""embedding: lookup, scatter-add gradient with repeated indices, padding_idx, double backward, errors."""
import numpy as np
import pytest

import distgrad as dg
from distgrad.autograd import gradcheck, gradgradcheck
from distgrad.ops.embedding import embedding
from helpers import host


def table(device, rows=5, dim=3):
    data = np.random.default_rng(0).standard_normal((rows, dim))
    return dg.tensor(data, dtype=dg.float64, device=device, requires_grad=True)


def test_lookup_picks_rows_in_the_indices_shape(device):
    weight = table(device)
    idx = dg.tensor([[0, 4], [2, 2]], device=device)
    out = embedding(idx, weight)
    assert out.shape == (2, 2, 3)
    np.testing.assert_array_equal(host(out), host(weight)[[[0, 4], [2, 2]]])


def test_repeated_indices_sum_their_gradients(device):
    weight = table(device)
    embedding(dg.tensor([1, 3, 1, 1], device=device), weight).sum().backward()
    np.testing.assert_array_equal(host(weight.grad)[:, 0], [0, 3, 0, 1, 0])


def test_padding_row_gets_no_gradient(device):
    weight = table(device)
    embedding(dg.tensor([0, 2, 2, 4], device=device), weight, padding_idx=2).sum().backward()
    np.testing.assert_array_equal(host(weight.grad)[:, 0], [1, 0, 0, 0, 1])


def test_negative_padding_idx_counts_from_the_end(device):
    weight = table(device)
    embedding(dg.tensor([4, 1], device=device), weight, padding_idx=-1).sum().backward()
    np.testing.assert_array_equal(host(weight.grad)[:, 0], [0, 1, 0, 0, 0])


def test_gradcheck(device):
    weight = table(device, rows=4, dim=2)
    assert gradcheck(lambda w: embedding(dg.tensor([[1, 0], [3, 1]], device=device), w), [weight])


@pytest.mark.parametrize("padding_idx", [None, 1])
def test_gradgradcheck(device, padding_idx):
    # (gradcheck itself cannot see padding_idx: dropping the row's gradient is a choice, not a derivative)
    weight = table(device, rows=4, dim=2)
    idx = dg.tensor([[1, 0], [3, 1]], device=device)
    assert gradgradcheck(lambda w: embedding(idx, w, padding_idx=padding_idx) ** 2, [weight])


def test_matches_torch():
    torch = pytest.importorskip("torch")
    weight = table("cpu", rows=6, dim=4)
    idx = np.array([[5, 0, 0], [3, 5, 1]])
    grad = np.random.default_rng(1).standard_normal((2, 3, 4))
    out = embedding(dg.tensor(idx), weight, padding_idx=0)
    out.backward(dg.tensor(grad))
    wt = torch.tensor(host(weight), requires_grad=True)
    expected = torch.nn.functional.embedding(torch.tensor(idx), wt, padding_idx=0)
    expected.backward(torch.tensor(grad))
    np.testing.assert_array_equal(host(out), expected.detach().numpy())
    np.testing.assert_allclose(host(weight.grad), wt.grad.numpy(), rtol=1e-12)


def test_errors():
    weight = table("cpu")
    with pytest.raises(IndexError, match=r"index out of range in self \(indices must be in \[0, 5\), got values "
                                         r"in \[1, 5\]\)"):
        embedding(dg.tensor([1, 5]), weight)
    with pytest.raises(RuntimeError, match="'indices' to have one of the following scalar types: Long, Int; but got "
                                           "float32"):
        embedding(dg.tensor([1.0]), weight)
    with pytest.raises(AssertionError, match="Padding_idx must be within num_embeddings"):
        embedding(dg.tensor([1]), weight, padding_idx=5)
