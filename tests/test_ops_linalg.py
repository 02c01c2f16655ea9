"""Matrix products: torch.matmul's shape rules and messages, gradients and double backward, ``linear``."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

import distgrad as dg
from distgrad.autograd.gradcheck import gradcheck, gradgradcheck
from helpers import host, random_leaf


def transposed(shape, device, seed=0):
    """A float64 leaf of ``shape`` whose data is a non-contiguous view (the last two axes swapped)."""
    values = np.random.default_rng(seed).standard_normal(shape[:-2] + shape[-2:][::-1])
    return dg.Tensor(dg.tensor(values, device=device).array.swapaxes(-1, -2)).requires_grad_()


MATMUL_SHAPES = [
    ((3,), (3,)),                  # dot
    ((2, 3), (3, 4)),              # matrix @ matrix
    ((3,), (3, 4)),                # row vector @ matrix
    ((2, 3), (3,)),                # matrix @ column vector
    ((2, 2, 3), (3,)),             # batch @ vector
    ((3,), (2, 3, 4)),             # vector @ batch
    ((4, 2, 3), (3, 2)),           # batch @ matrix
    ((2, 3), (4, 3, 2)),           # matrix @ batch
    ((2, 1, 2, 3), (3, 3, 2)),     # batch dimensions broadcast
]


@pytest.mark.parametrize("sa, sb", MATMUL_SHAPES)
def test_matmul_matches_numpy_and_gradcheck(sa, sb, device):
    a, b = random_leaf(sa, device, 1), random_leaf(sb, device, 2)
    out = a @ b
    np.testing.assert_allclose(host(out), np.matmul(host(a), host(b)), rtol=1e-12)
    assert gradcheck(dg.matmul, (a, b))


@pytest.mark.parametrize("sa, sb", [((2, 3), (3, 4)), ((3,), (3, 2)), ((2, 3), (3,)), ((3,), (3,)),
                                    ((2, 1, 2, 3), (3, 3, 2)), ((2, 2, 3), (3, 2))])
def test_matmul_double_backward(sa, sb, device):
    assert gradgradcheck(dg.matmul, (random_leaf(sa, device, 1), random_leaf(sb, device, 2)))


def test_matmul_of_non_contiguous_operands(device):
    a, b = transposed((2, 4, 3), device, 1), transposed((3, 2), device, 2)
    assert not a.array.flags.c_contiguous and not b.array.flags.c_contiguous
    np.testing.assert_allclose(host(a @ b), np.matmul(host(a), host(b)), rtol=1e-12)
    assert gradcheck(dg.matmul, (a, b))


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=mutually_broadcastable_shapes(num_shapes=2, max_dims=2, max_side=3),
       m=st.integers(1, 3), k=st.integers(1, 3), n=st.integers(1, 3), seed=st.integers(0, 2 ** 16))
def test_matmul_broadcasts_batch_dimensions(device, batch, m, k, n, seed):
    sa, sb = batch.input_shapes
    a, b = random_leaf(sa + (m, k), device, seed), random_leaf(sb + (k, n), device, seed + 1)
    out = dg.matmul(a, b)
    assert out.shape == batch.result_shape + (m, n)
    np.testing.assert_allclose(host(out), np.matmul(host(a), host(b)), rtol=1e-12)
    assert gradcheck(dg.matmul, (a, b))


def test_mm_bmm_dot_outer(device):
    a, b = random_leaf((2, 3), device, 1), random_leaf((3, 4), device, 2)
    np.testing.assert_allclose(host(dg.mm(a, b)), host(a) @ host(b), rtol=1e-12)
    assert gradcheck(dg.mm, (a, b))
    p, q = random_leaf((2, 2, 3), device, 3), random_leaf((2, 3, 2), device, 4)
    np.testing.assert_allclose(host(p.bmm(q)), host(p) @ host(q), rtol=1e-12)
    assert gradcheck(dg.bmm, (p, q)) and gradgradcheck(dg.bmm, (p, q))
    u, v = random_leaf((3,), device, 5), random_leaf((3,), device, 6)
    assert dg.dot(u, v).shape == () and np.isclose(host(u.dot(v)), host(u) @ host(v))
    assert gradcheck(dg.dot, (u, v))
    w = random_leaf((2,), device, 7)
    np.testing.assert_allclose(host(u.outer(w)), np.outer(host(u), host(w)), rtol=1e-12)
    assert gradcheck(dg.outer, (u, w)) and gradgradcheck(dg.outer, (u, w))


def test_outer_promotes_mixed_dtypes_like_torch():
    out = dg.outer(dg.tensor([1.0, 2.0]), dg.tensor([1.0, 2.0, 3.0], dtype=dg.float64))
    assert out.dtype == dg.float64 and out.tolist() == [[1, 2, 3], [2, 4, 6]]


def test_matmul_with_an_array_on_the_left():
    out = np.ones((2, 3)) @ dg.tensor(np.ones((3, 2)))
    assert isinstance(out, dg.Tensor) and out.tolist() == [[3, 3], [3, 3]]


def test_matmul_rejects_non_tensors():
    with pytest.raises(TypeError, match=r"matmul\(\): argument 'other' \(position 2\) must be Tensor, not list"):
        dg.matmul(dg.ones(2, 2), [1, 2])
    with pytest.raises(TypeError, match="unsupported operand"):
        dg.ones(2, 2) @ [1, 2]


SHAPE_ERRORS = [
    (dg.matmul, (2, 3), (4, 5), r"mat1 and mat2 shapes cannot be multiplied \(2x3 and 4x5\)"),
    (dg.matmul, (3,), (4, 5), r"mat1 and mat2 shapes cannot be multiplied \(1x3 and 4x5\)"),
    (dg.matmul, (5, 2, 3), (4, 5), r"mat1 and mat2 shapes cannot be multiplied \(10x3 and 4x5\)"),
    (dg.matmul, (2, 3), (4,), r"size mismatch, got input \(2\), mat \(2x3\), vec \(4\)"),
    (dg.matmul, (2, 4, 5), (3,), r"size mismatch, got input \(8\), mat \(8x5\), vec \(3\)"),
    (dg.matmul, (3,), (4,), r"inconsistent tensor size, expected tensor \[3\] and src \[4\]"),
    (dg.matmul, (6, 1, 2, 3), (7, 4, 5), r"for first two dimensions of batch2 tensor to be: \[42, 3\] but got: \[42, 4\]"),
    (dg.matmul, (6, 2, 2, 3), (7, 3, 5), r"size of tensor a \(2\) must match the size of tensor b \(7\) at non-singleton "
                                         r"dimension 1"),
    (dg.matmul, (), (3,), "both arguments to matmul need to be at least 1D, but they are 0D and 1D"),
    (dg.mm, (3,), (3, 2), "self must be a matrix"),
    (dg.mm, (2, 3), (3,), "mat2 must be a matrix"),
    (dg.mm, (2, 3), (4, 2), r"mat1 and mat2 shapes cannot be multiplied \(2x3 and 4x2\)"),
    (dg.bmm, (2, 3), (3, 2), "batch1 must be a 3D tensor"),
    (dg.bmm, (2, 2, 3), (3, 2), "batch2 must be a 3D tensor"),
    (dg.bmm, (2, 2, 3), (3, 3, 2), r"batch2 tensor to be: \[2, 3\] but got: \[3, 3\]"),
    (dg.dot, (3, 1), (3,), "1D tensors expected, but got 2D and 1D tensors"),
    (dg.outer, (3, 1), (3,), "outer: Expected 1-D argument self, but got 2-D"),
    (dg.linear, (2, 3), (4, 5), r"mat1 and mat2 shapes cannot be multiplied \(2x3 and 5x4\)"),
    (dg.linear, (), (4, 3), "both arguments to linear need to be at least 1D, but they are 0D and 2D"),
    (dg.linear, (2, 3), (3,), r"linear: weight must be 2-D \(out_features, in_features\), got shape \[3\]"),
]


@pytest.mark.parametrize("op, sa, sb, message", SHAPE_ERRORS)
def test_shape_errors_read_like_torchs(op, sa, sb, message):
    with pytest.raises(RuntimeError, match=message):
        op(dg.ones(*sa), dg.ones(*sb))


def test_dtype_mismatches_are_errors():
    f32, f64 = dg.ones(2, 3), dg.ones(3, 2, dtype=dg.float64)
    with pytest.raises(RuntimeError, match="expected m1 and m2 to have the same dtype, but got: float32 != float64"):
        f32 @ f64
    with pytest.raises(RuntimeError, match="dot : expected both vectors to have same dtype, but found float32 and float64"):
        dg.dot(dg.ones(3), dg.ones(3, dtype=dg.float64))
    with pytest.raises(RuntimeError, match="linear: bias is float64 but input and weight are float32"):
        dg.linear(f32, dg.ones(4, 3), dg.ones(4, dtype=dg.float64))


# --- linear -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("input_shape", [(3,), (2, 3), (2, 4, 3)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_linear_matches_numpy_and_gradcheck(input_shape, with_bias, device):
    x, w = random_leaf(input_shape, device, 1), random_leaf((5, 3), device, 2)
    b = random_leaf((5,), device, 3) if with_bias else None
    expected = host(x) @ host(w).T + (host(b) if with_bias else 0)
    np.testing.assert_allclose(host(dg.linear(x, w, b)), expected, rtol=1e-12)
    assert gradcheck(dg.linear, (x, w, b))


@pytest.mark.parametrize("input_shape", [(3,), (2, 4, 3)])
def test_linear_double_backward(input_shape, device):
    assert gradgradcheck(dg.linear, (random_leaf(input_shape, device, 1), random_leaf((2, 3), device, 2), random_leaf((2,), device, 3)))


def test_linear_is_one_node_and_takes_a_transposed_weight(device):
    x, w, b = transposed((4, 3), device, 1), transposed((2, 3), device, 2), random_leaf((2,), device, 3)
    out = dg.linear(x, w, b)
    assert out.grad_fn.name == "LinearBackward"
    assert [edge[0].name for edge in out.grad_fn.next_functions] == ["AccumulateGrad"] * 3
    assert gradcheck(dg.linear, (x, w, b))


def test_linear_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in ((2, 5, 3), (4, 3), (4,)))
    ours = [dg.tensor(v, requires_grad=True) for v in (x, w, b)]
    theirs = [torch.tensor(v, requires_grad=True) for v in (x, w, b)]
    out, expected = dg.linear(*ours), torch.nn.functional.linear(*theirs)
    np.testing.assert_allclose(out.array, expected.detach().numpy(), rtol=1e-5, atol=1e-6)
    g = rng.standard_normal(out.shape).astype(np.float32)
    out.backward(dg.tensor(g))
    expected.backward(torch.tensor(g))
    for a, t in zip(ours, theirs):
        assert a.grad.dtype == dg.float32
        np.testing.assert_allclose(a.grad.array, t.grad.numpy(), rtol=1e-5, atol=1e-5)
