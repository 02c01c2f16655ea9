"""In-place ops: plain array updates, recorded updates, the version counter and its errors."""
import numpy as np
import pytest

import distgrad as dg
from distgrad.autograd import gradcheck, gradgradcheck
from helpers import host

RNG = np.random.default_rng(1)
A = RNG.uniform(0.5, 2.0, (2, 3))
B = RNG.uniform(0.5, 2.0, (2, 3))
ROW = RNG.uniform(0.5, 2.0, 3)


def tensor(arr, device, requires_grad=False):
    return dg.tensor(np.asarray(arr, dtype=np.float64), device=device, requires_grad=requires_grad)


BINARY = {  # op: (call, NumPy expectation for self=A, other=B)
    "add_": (lambda t, o: t.add_(o), A + B),
    "add_ alpha": (lambda t, o: t.add_(o, alpha=-2), A - 2 * B),
    "sub_": (lambda t, o: t.sub_(o), A - B),
    "sub_ alpha": (lambda t, o: t.sub_(o, alpha=0.5), A - 0.5 * B),
    "mul_": (lambda t, o: t.mul_(o), A * B),
    "div_": (lambda t, o: t.div_(o), A / B),
    "pow_": (lambda t, o: t.pow_(o), A ** B),
    "addcmul_": (lambda t, o: t.addcmul_(o, o, value=0.5), A + 0.5 * B * B),
    "addcdiv_": (lambda t, o: t.addcdiv_(o, o + 1.0, value=-1), A - B / (B + 1)),
    "lerp_": (lambda t, o: t.lerp_(o, 0.25), A + 0.25 * (B - A)),
    "copy_": (lambda t, o: t.copy_(o), B),
    "iadd": (lambda t, o: t.__iadd__(o), A + B),
    "isub": (lambda t, o: t.__isub__(o), A - B),
    "imul": (lambda t, o: t.__imul__(o), A * B),
    "itruediv": (lambda t, o: t.__itruediv__(o), A / B),
}


@pytest.mark.parametrize("op", BINARY)
def test_binary_ops_write_into_the_same_array_and_bump_the_version(device, op):
    call, expected = BINARY[op]
    t, other = tensor(A, device), tensor(B, device)
    data = t.array
    assert call(t, other) is t
    assert t.array is data and t._version[0] == 1
    np.testing.assert_allclose(host(t), expected)


@pytest.mark.parametrize("op", BINARY)
def test_recorded_binary_ops_gradcheck(device, op):
    call, _ = BINARY[op]
    a, b = tensor(A, device, True), tensor(B, device, True)
    assert gradcheck(lambda a, b: call(a * 1.0, b), [a, b])


@pytest.mark.parametrize("op", ["mul_", "div_", "addcmul_"])
def test_recorded_binary_ops_gradgradcheck(device, op):
    call, _ = BINARY[op]
    a, b = tensor(A, device, True), tensor(B, device, True)
    assert gradgradcheck(lambda a, b: call(a * 1.0, b), [a, b])


def test_scalar_and_broadcast_operands(device):
    t = tensor(A, device)
    t += 1
    t *= tensor(ROW, device)
    t.sub_(0.5, alpha=2)
    np.testing.assert_allclose(host(t), (A + 1) * ROW - 1)


UNARY = {
    "exp_": np.exp, "log_": np.log, "sqrt_": np.sqrt, "tanh_": np.tanh, "abs_": np.abs, "neg_": np.negative,
    "reciprocal_": np.reciprocal, "sigmoid_": lambda x: 1 / (1 + np.exp(-x)), "relu_": lambda x: np.maximum(x, 0),
}


@pytest.mark.parametrize("op", UNARY)
def test_unary_ops_in_place(device, op):
    values = A - 1.0  # both signs, where the op is defined
    if op in ("log_", "sqrt_"):
        values = A
    t = tensor(values, device)
    data = t.array
    assert getattr(t, op)() is t and t.array is data and t._version[0] == 1
    np.testing.assert_allclose(host(t), UNARY[op](values), rtol=1e-12)


@pytest.mark.parametrize("op", UNARY)
def test_recorded_unary_ops_match_the_out_of_place_op(device, op):
    method = op[:-1]
    if not hasattr(dg.Tensor, method):
        pytest.skip(f"the out-of-place op Tensor.{method} is not defined yet")
    a = tensor(A, device, True)
    np.testing.assert_allclose(host(getattr(a * 1.0, op)()), host(getattr(a, method)()), rtol=1e-12)
    assert gradcheck(lambda a: getattr(a * 1.0, op)(), [a])


def test_sigmoid_in_place_does_not_overflow(device):
    t = tensor([-1000.0, 0.0, 1000.0], device)
    np.testing.assert_array_equal(host(t.sigmoid_()), [0.0, 0.5, 1.0])


def test_clamp_in_place(device):
    t = tensor(A, device)
    np.testing.assert_array_equal(host(t.clamp_(max=1.0)), np.minimum(A, 1.0))
    np.testing.assert_array_equal(host(t.clamp_(0.8, 0.9)), np.clip(A, 0.8, 0.9))
    with pytest.raises(RuntimeError, match="clamp_: At least one of 'min' or 'max' must not be None"):
        t.clamp_()


def test_recorded_clamp(device):
    if not hasattr(dg.Tensor, "clamp"):
        pytest.skip("the out-of-place op Tensor.clamp is not defined yet")
    a = tensor(A, device, True)
    assert gradcheck(lambda a: (a * 1.0).clamp_(0.8, 1.5), [a])


def test_writes_through_a_view_are_seen_by_the_base_and_share_its_version(device):
    base = tensor(A, device)
    view = base[1]
    view.mul_(2.0)
    base.add_(1.0)
    expected = A + 1.0
    expected[1] = 2 * A[1] + 1.0
    np.testing.assert_allclose(host(base), expected)
    np.testing.assert_allclose(host(view), expected[1])
    assert view._version is base._version and base._version[0] == 2


# --- autograd rules ---------------------------------------------------------------------------------
def test_in_place_on_a_leaf_that_requires_grad_raises(device):
    w = tensor(A, device, True)
    for op in (lambda: w.add_(1.0), lambda: w.zero_(), lambda: w.exp_(), lambda: w.__isub__(1.0)):
        with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used in an in-place "
                                               "operation."):
            op()
    with pytest.raises(RuntimeError, match="a view of a leaf Variable that requires grad is being used"):
        w[0].mul_(2.0)


def test_manual_sgd_step_under_no_grad(device):
    w = tensor(A, device, True)
    (w * tensor(B, device)).backward(tensor(np.ones_like(A), device))
    param, data = w, w.array
    with dg.no_grad():
        w -= 0.1 * w.grad
        w.grad = None
    assert w is param and w.array is data and w.is_leaf and w.requires_grad
    np.testing.assert_allclose(host(w), A - 0.1 * B)


def test_a_recorded_op_rebinds_the_history_of_a_non_leaf(device):
    x = tensor(A, device, True)
    y = x * 2.0
    y.mul_(3.0)
    assert not y.is_leaf and y.requires_grad and y.grad_fn.name == "MulScalarBackward"
    y.backward(tensor(np.ones_like(A), device))
    np.testing.assert_array_equal(host(x.grad), np.full_like(A, 6.0))


def test_writing_a_tensor_that_requires_grad_into_a_plain_buffer_records_it(device):
    w = tensor(ROW, device, True)
    buf = dg.zeros(2, 3, dtype=dg.float64, device=device)
    buf.add_(w, alpha=2)
    assert buf.requires_grad and buf.grad_fn is not None
    buf.backward(tensor(np.ones((2, 3)), device))
    np.testing.assert_array_equal(host(w.grad), [4.0, 4.0, 4.0])


def test_backward_raises_when_a_saved_input_was_modified_in_place(device):
    a, b = tensor(A, device, True), tensor(B, device, True)
    y = a * b
    with dg.no_grad():
        b.mul_(2.0)
    with pytest.raises(RuntimeError, match=r"modified by an inplace operation: \[float64 \[2, 3\]\] is at version 1; "
                                           r"expected version 0 instead \(saved by MulBackward\)"):
        y.backward(tensor(np.ones_like(A), device))


def test_backward_raises_when_a_saved_non_leaf_was_modified_by_a_recorded_op(device):
    x = tensor(A, device, True)
    y = x * 2.0
    z = y * y
    y.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        z.backward(tensor(np.ones_like(A), device))


def test_a_recorded_op_keeps_earlier_saved_tensors_valid(device):
    x, b = tensor(A, device, True), tensor(B, device, True)
    y = x * 1.0
    y.mul_(b)  # MulBackward saves y's old values for b's gradient: the alias holds a copy
    y.mul_(b)
    y.backward(tensor(np.ones_like(A), device))
    np.testing.assert_allclose(host(x.grad), B * B)
    np.testing.assert_allclose(host(b.grad), 2 * A * B)


def test_in_place_on_a_view_of_a_graph_tensor_raises(device):
    y = tensor(A, device, True) * 1.0
    with pytest.raises(RuntimeError, match=r"mul_: in-place operation on a view \(shape \[3\], made by "
                                           r"BasicIndexBackward\) of a tensor that is part of the autograd graph"):
        y[0].mul_(2.0)


# --- errors ---------------------------------------------------------------------------------------
def test_writing_into_a_broadcast_view_raises(device):
    e = tensor(ROW, device).expand(2, 3)
    for op in (lambda: e.add_(1.0), lambda: e.zero_(), lambda: e.uniform_()):
        with pytest.raises(RuntimeError, match=r"more than one element of the written-to tensor \(shape \[2, 3\], "
                                               r"a broadcast view\).*Please clone\(\) the tensor"):
            op()


def test_writing_into_read_only_memory_raises():
    arr = np.ones(3)
    arr.flags.writeable = False
    with pytest.raises(RuntimeError, match=r"mul_: the tensor of shape \[3\] is read-only"):
        dg.from_numpy(arr).mul_(2.0)


def test_a_float_result_cannot_be_written_into_an_integer_tensor(device):
    t = dg.tensor([1, 2], device=device)
    # PyTorch's words: a Python float counts as the default dtype (Float), the float64 tensor as Double
    with pytest.raises(RuntimeError, match="mul_: result type Float can't be cast to the desired output type Long"):
        t.mul_(2.5)
    with pytest.raises(RuntimeError, match="exp_: result type Float can't be cast to the desired output type Long"):
        t.exp_()
    with pytest.raises(RuntimeError, match="add_: result type Double can't be cast to the desired output type Long"):
        t.add_(tensor([0.5, 0.5], device, requires_grad=True))
    np.testing.assert_array_equal(host(t.mul_(3)), [3, 6])


def test_an_operand_that_does_not_broadcast_to_self_raises(device):
    with pytest.raises(RuntimeError, match=r"add_: output with shape \[3\] doesn't match the broadcast shape "
                                           r"\[2, 3\]"):
        tensor(ROW, device).add_(tensor(A, device))
    with pytest.raises(RuntimeError, match=r"addcmul_: the shapes \[3\], \[3\], \[2\] do not broadcast together"):
        tensor(ROW, device).addcmul_(tensor(ROW, device), tensor([1.0, 2.0], device))
    with pytest.raises(RuntimeError, match=r"add_: output with shape \[3\] doesn't match the broadcast shape "
                                           r"\[2, 3\]"):
        (tensor(ROW, device, True) * 1.0).add_(tensor(A, device))


@pytest.mark.cuda
def test_operands_on_two_devices_raise(device):
    if device == "cpu":
        pytest.skip("needs a GPU operand")
    with pytest.raises(RuntimeError, match="Expected all tensors to be on the same device"):
        tensor(A, "cpu").add_(tensor(B, device))


# --- filling --------------------------------------------------------------------------------------
def test_zero_and_fill(device):
    t = tensor(A, device)
    data = t.array
    assert t.zero_() is t and t.array is data
    np.testing.assert_array_equal(host(t), np.zeros_like(A))
    np.testing.assert_array_equal(host(t.fill_(2.5)), np.full_like(A, 2.5))
    np.testing.assert_array_equal(host(t.fill_(tensor(-1.0, device))), np.full_like(A, -1.0))
    assert t._version[0] == 3
    with pytest.raises(RuntimeError, match="fill_ only supports 0-dimension value tensor but got tensor with 1 "
                                           "dimensions."):
        t.fill_(tensor(ROW, device))


def test_recorded_fill_and_copy_send_the_gradient_to_the_source(device):
    x, v = tensor(A, device, True), tensor(1.5, device, True)
    assert gradcheck(lambda x, v: (x * 1.0).fill_(v), [x, v])
    row = tensor(ROW, device, True)
    assert gradcheck(lambda x, r: (x * 1.0).copy_(r), [x, row])
    y = x * 1.0
    y.zero_()
    y.backward(tensor(np.ones_like(A), device))
    np.testing.assert_array_equal(host(x.grad), np.zeros_like(A))


def test_copy_broadcasts_casts_and_moves(device):
    t = dg.zeros(2, 3, dtype=dg.float32, device=device)
    t.copy_(dg.tensor(ROW, device="cpu"))
    assert t.dtype == np.float32
    np.testing.assert_allclose(host(t), np.broadcast_to(ROW, (2, 3)), rtol=1e-6)
    with pytest.raises(RuntimeError, match=r"copy_: the source of shape \[2\] cannot be broadcast to the destination "
                                           r"of shape \[2, 3\]"):
        t.copy_(dg.zeros(2, device=device))
    with pytest.raises(RuntimeError, match=r"copy_: the source of shape \[4, 3\] cannot be broadcast"):
        t.copy_(dg.zeros(4, 3, device=device))
    with pytest.raises(TypeError, match="copy_\\(\\): argument 'src' must be Tensor, not float"):
        t.copy_(1.0)


def test_uniform_and_normal_fill_in_place_reproducibly(device):
    t = dg.zeros(2000, dtype=dg.float32, device=device)
    data = t.array
    t.uniform_(-2, 3, generator=dg.Generator().manual_seed(7))
    first = host(t).copy()
    assert t.array is data and first.min() >= -2 and first.max() < 3 and abs(first.mean() - 0.5) < 0.15
    t.uniform_(-2, 3, generator=dg.Generator().manual_seed(7))
    np.testing.assert_array_equal(host(t), first)
    t.normal_(4.0, 0.5)
    drawn = host(t)
    assert abs(drawn.mean() - 4.0) < 0.05 and abs(drawn.std() - 0.5) < 0.05
    half = dg.zeros(10, dtype=dg.float16, device=device).normal_()
    assert half.dtype == np.float16
    with pytest.raises(RuntimeError, match="uniform_ expects a floating point tensor, got int64"):
        dg.zeros(3, dtype=dg.int64, device=device).uniform_()
