"""The tape engine: ordering, dependency counting, hooks, callbacks, graph freeing, grad modes."""
import math

import numpy as np
import pytest

import distgrad as dg
from distgrad.autograd import Function
from helpers import load_example


def leaf(*values):
    return dg.tensor(list(values), dtype=dg.float64, requires_grad=True)


class Sum2(Function):
    """``a + b``: the forward of the custom Functions below, which differ in the gradients they return."""

    @staticmethod
    def forward(ctx, a, b):
        return a.array + b.array


def test_backward_accumulates_product_rule():
    x, w = leaf(1.0, 2.0), leaf(3.0, 4.0)
    ((x * w + x / 2 - 3) ** 2).backward(dg.ones(2, dtype=dg.float64))
    inner = np.array([1 * 3 + 0.5 - 3, 2 * 4 + 1 - 3])
    np.testing.assert_allclose(x.grad.numpy(), 2 * inner * (np.array([3, 4]) + 0.5))
    np.testing.assert_allclose(w.grad.numpy(), 2 * inner * np.array([1, 2]))


def test_non_scalar_backward_needs_gradient():
    x = leaf(1.0, 2.0)
    with pytest.raises(RuntimeError, match="grad can be implicitly created only for scalar outputs"):
        (x * 2).backward()


def test_gradients_accumulate_until_reset_to_none():
    x = leaf(2.0)
    (x * 3).backward()
    (x * 3).backward()
    assert x.grad.item() == 6.0
    x.grad = None
    (x * 3).backward()
    assert x.grad.item() == 3.0


def test_backward_twice_through_freed_graph_raises():
    x = leaf(2.0)
    y = x * x
    y.backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.backward()


def test_retain_graph_allows_a_second_backward():
    x = leaf(2.0)
    y = x * x
    y.backward(retain_graph=True)
    y.backward()
    assert x.grad.item() == 8.0


def test_nodes_run_in_reverse_recording_order():
    x = leaf(1.0)
    order = []
    a = x * 2
    b = a * 3
    c = a * 4  # recorded after b: its node runs before b's
    for name, t in (("a", a), ("b", b), ("c", c)):
        t.register_hook(lambda g, name=name: order.append(name))
    (b + c).backward()
    assert order == ["c", "b", "a"]


def test_leaf_gradient_is_final_when_its_post_accumulate_hook_fires():
    first, last = leaf(1.0), leaf(2.0)
    seen = []
    first.register_post_accumulate_grad_hook(lambda p: seen.append(("first", p.grad.item(), last.grad)))
    last.register_post_accumulate_grad_hook(lambda p: seen.append(("last", p.grad.item(), first.grad)))
    h = first * 3          # first is consumed early in forward ...
    out = (h * last) * 5   # ... last only near the loss, so its gradient is ready first
    out.backward()
    assert [s[0] for s in seen] == ["last", "first"]
    assert seen[0][1] == 15.0 and seen[0][2] is None  # last fired before first had any gradient
    assert seen[1][1] == 30.0


def test_post_accumulate_hook_fires_once_for_a_leaf_used_twice():
    x = leaf(1.0)
    calls = []
    x.register_post_accumulate_grad_hook(lambda p: calls.append(p.grad.item()))
    (x * 2 + x * 3).backward()
    assert calls == [5.0]


def test_hook_can_replace_gradient_and_be_removed():
    x = leaf(1.0)
    handle = x.register_hook(lambda g: g * 10)
    (x * 2).backward()
    assert x.grad.item() == 20.0
    handle.remove()
    x.grad = None
    (x * 2).backward()
    assert x.grad.item() == 2.0


def test_hook_on_intermediate_tensor_changes_upstream_gradient():
    x = leaf(1.0)
    y = x * 2
    y.register_hook(lambda g: g * 0)
    (y * 3).backward()
    assert x.grad.item() == 0.0


def test_retain_grad_keeps_intermediate_gradient():
    x = leaf(1.0)
    y = x * 2
    y.retain_grad()
    (y * 3).backward()
    assert y.grad.item() == 3.0 and x.grad.item() == 6.0


def test_queue_callback_runs_after_all_leaves_are_final():
    a, b = leaf(1.0), leaf(2.0)
    seen = []

    def queue(_):
        dg.autograd.queue_callback(lambda: seen.append((a.grad.item(), b.grad.item())))

    a.register_post_accumulate_grad_hook(queue)
    (a * b).backward()
    assert seen == [(2.0, 1.0)]


def test_queue_callback_outside_backward_raises():
    with pytest.raises(RuntimeError, match="only be called during the backward pass"):
        dg.autograd.queue_callback(lambda: None)


def test_no_grad_records_nothing_and_enable_grad_restores():
    x = leaf(1.0)
    with dg.no_grad():
        y = x * 2
        with dg.enable_grad():
            z = x * 2
    assert not y.requires_grad and y.grad_fn is None
    assert z.requires_grad


def test_set_grad_enabled_as_function_and_context():
    x = leaf(1.0)
    with dg.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    dg.set_grad_enabled(False)
    try:
        assert not dg.is_grad_enabled()
    finally:
        dg.set_grad_enabled(True)
    assert (x * 2).requires_grad


def test_no_grad_as_decorator_and_inference_mode():
    x = leaf(1.0)

    @dg.no_grad()
    def f(t):
        return t * 2

    assert not f(x).requires_grad
    with dg.inference_mode():
        assert not (x * 2).requires_grad
    assert (x * 2).requires_grad


def test_manual_update_under_no_grad():
    w = leaf(1.0, 2.0)
    (w * w).backward(dg.ones(2, dtype=dg.float64))
    data_before = w.array
    with dg.no_grad():
        w -= 0.1 * w.grad
    w.grad = None
    np.testing.assert_allclose(w.numpy() if not w.requires_grad else w.detach().numpy(), [0.8, 1.6])
    assert w.is_leaf and w.requires_grad and w.array is data_before


def test_autograd_grad_returns_gradients_without_touching_dot_grad():
    x = leaf(3.0)
    (g,) = dg.autograd.grad(x * x * x, x)
    assert g.item() == 27.0 and x.grad is None


def test_autograd_grad_create_graph_gives_second_derivative():
    x = leaf(3.0)
    (g,) = dg.autograd.grad(x * x * x, x, create_graph=True)
    (gg,) = dg.autograd.grad(g, x)
    assert gg.item() == 18.0


def test_autograd_grad_unused_input_raises_unless_allowed():
    x, y = leaf(1.0), leaf(2.0)
    with pytest.raises(RuntimeError, match="appears to not have been used in the graph"):
        dg.autograd.grad(x * 2, [x, y], retain_graph=True)
    gx, gy = dg.autograd.grad(x * 2, [x, y], allow_unused=True)
    assert gx.item() == 2.0 and gy is None


def test_backward_inputs_accumulates_only_into_inputs():
    x, w = leaf(1.0), leaf(2.0)
    (x * w).backward(inputs=[w])
    assert w.grad.item() == 1.0 and x.grad is None


def test_backward_of_tensor_that_does_not_require_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad and does not have a grad_fn"):
        dg.tensor(1.0).backward()


def test_integer_tensors_cannot_require_grad():
    with pytest.raises(RuntimeError, match="only Tensors of floating point dtype can require gradients"):
        dg.tensor([1, 2], requires_grad=True)


def test_gradient_shape_mismatch_is_named():
    x = leaf(1.0, 2.0)
    with pytest.raises(RuntimeError, match=r"grad_output\[0\] has a shape of \[3\]"):
        (x * 2).backward(dg.ones(3, dtype=dg.float64))


def test_repr_shows_grad_fn_and_requires_grad():
    a = dg.tensor([-11.0, 66.0], requires_grad=True)
    assert repr(a) == "tensor([-11.,  66.], requires_grad=True)"
    assert repr(a - dg.tensor([1.0, 1.0])) == "tensor([-12.,  65.], grad_fn=<SubBackward>)"
    assert repr(dg.tensor([1, 2])) == "tensor([1, 2])"
    assert repr(dg.tensor([1.0], dtype=dg.float64)) == "tensor([1.], dtype=distgrad.float64)"


LegendrePolynomial3 = load_example("custom_function").LegendrePolynomial3  # PyTorch's custom-Function tutorial


def test_custom_function_legendre_p3():
    x = dg.tensor([0.3, -0.7, 1.2], dtype=dg.float64, requires_grad=True)
    y = LegendrePolynomial3.apply(x)
    assert type(y.grad_fn).__name__ == "LegendrePolynomial3"
    assert y.grad_fn.name == "LegendrePolynomial3Backward"
    y.backward(dg.ones(3, dtype=dg.float64))
    np.testing.assert_allclose(x.grad.numpy(), 1.5 * (5 * np.array([0.3, -0.7, 1.2]) ** 2 - 1))
    assert dg.autograd.gradcheck(LegendrePolynomial3.apply, (x,))


def test_custom_function_sees_needs_input_grad():
    class Scale(Function):
        @staticmethod
        def forward(ctx, a, b):
            ctx.flags = ctx.needs_input_grad
            return a.array * b.array

        @staticmethod
        def backward(ctx, g):
            return g * 2, None

    x, c = leaf(1.0), dg.tensor([2.0], dtype=dg.float64)
    y = Scale.apply(x, c)
    assert y.grad_fn.flags == (True, False)


def test_custom_function_with_wrong_number_of_gradients_raises():
    class Bad(Sum2):
        @staticmethod
        def backward(ctx, g):
            return (g,)

    with pytest.raises(RuntimeError, match=r"returned an incorrect number of gradients \(expected 2, got 1\)"):
        Bad.apply(leaf(1.0), leaf(2.0)).backward()


def test_anomaly_mode_names_the_op_and_the_forward_line():
    class NanInBackward(Function):
        @staticmethod
        def forward(ctx, a):
            return a.array * 1

        @staticmethod
        def backward(ctx, g):
            return g * math.nan

    x = leaf(1.0)
    with dg.autograd.detect_anomaly():
        y = NanInBackward.apply(x)  # the line anomaly mode must point at
        with pytest.raises(RuntimeError) as info:
            (y * 2).backward()
    message = str(info.value)
    assert "Function 'NanInBackwardBackward' returned nan values in its 0th output" in message
    assert "y = NanInBackward.apply(x)" in message


def test_saved_tensor_modified_in_place_raises_at_backward():
    x = leaf(1.0, 2.0)
    y = x * 2
    z = y * y
    with dg.no_grad():
        y.array[...] = 0
        y._version[0] += 1  # what every in-place op does
    with pytest.raises(RuntimeError, match="modified by an inplace operation.*is at version 1; expected version 0"):
        z.backward(dg.ones(2, dtype=dg.float64))


def test_double_backward_of_polynomial_matches_closed_form():
    x = leaf(0.5, -1.5)
    assert dg.autograd.gradgradcheck(lambda t: t ** 3 - 2 * t * t + 1 / t, (x,))


def test_leaf_that_receives_no_gradient_keeps_grad_none():
    class FirstOnly(Sum2):
        @staticmethod
        def backward(ctx, g):
            return g, None

    a, b = leaf(1.0), leaf(2.0)
    FirstOnly.apply(a, b).backward()
    assert a.grad.item() == 1.0 and b.grad is None


class _HalvesInFloat64(Function):
    """A user's Function whose backward answers in float64 for a float32 input."""

    @staticmethod
    def forward(ctx, x):
        return x.array / 2

    @staticmethod
    def backward(ctx, grad):
        return dg.tensor(np.full(grad.shape, 0.5), dtype=dg.float64)


def test_a_user_function_gradient_is_cast_to_its_input_dtype_as_in_pytorch():
    x = dg.ones(3, requires_grad=True)
    _HalvesInFloat64.apply(x).sum().backward()
    assert x.grad.dtype == dg.float32
    np.testing.assert_array_equal(x.grad.numpy(), np.full(3, 0.5, np.float32))


def test_promoted_operands_get_gradients_in_their_own_dtypes():
    a = dg.ones(2, dtype=dg.float16, requires_grad=True)
    b = dg.ones(2, dtype=dg.float32, requires_grad=True)
    (a * b).sum().backward()
    assert (a.grad.dtype, b.grad.dtype) == (dg.float16, dg.float32)
