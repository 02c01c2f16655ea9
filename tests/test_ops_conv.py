"""conv2d and conv_transpose2d: torch's results, gradients, double backward, argument handling and errors."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import distgrad as dg
from distgrad.autograd.gradcheck import gradcheck, gradgradcheck
from distgrad.ops.conv import conv2d, conv_transpose2d
from helpers import host, random_leaf


# (input shape, weight shape, keyword arguments): small cases covering every argument
CONV_CASES = [
    ((2, 3, 5, 5), (4, 3, 3, 3), {}),
    ((2, 2, 6, 5), (3, 2, 2, 3), {"stride": 2}),
    ((1, 2, 5, 6), (2, 2, 3, 2), {"padding": (1, 2)}),
    ((1, 2, 7, 7), (2, 2, 3, 3), {"dilation": 2, "padding": 1}),
    ((2, 4, 5, 5), (6, 2, 3, 3), {"groups": 2, "stride": (1, 2)}),
    ((1, 4, 5, 5), (4, 1, 3, 3), {"groups": 4, "padding": "same"}),   # depthwise
    ((1, 2, 6, 6), (3, 2, 2, 2), {"padding": "same", "dilation": (1, 2)}),  # asymmetric 'same'
    ((1, 2, 5, 4), (3, 2, 3, 3), {"padding": "valid"}),
    ((2, 5, 5), (3, 2, 3, 3), {"padding": 1}),                        # unbatched (C, H, W)
]


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("x_shape, w_shape, kwargs", CONV_CASES)
def test_conv2d_gradcheck(x_shape, w_shape, kwargs, bias, device):
    inputs = [random_leaf(x_shape, device, 1), random_leaf(w_shape, device, 2)]
    if bias:
        inputs.append(random_leaf(w_shape[:1], device, 3))
    assert gradcheck(lambda x, w, b=None: conv2d(x, w, b, **kwargs), inputs)


@pytest.mark.parametrize("x_shape, w_shape, kwargs", CONV_CASES[:5])
def test_conv2d_input_gradient_built_in_many_slabs_is_the_same(x_shape, w_shape, kwargs, device, monkeypatch):
    import distgrad.ops.conv as conv_module
    monkeypatch.setattr(conv_module, "SLAB_BYTES", 1)  # one output row per slab
    assert gradcheck(lambda x, w: conv2d(x, w, **kwargs), [random_leaf(x_shape, device, 1), random_leaf(w_shape, device, 2)])


@pytest.mark.parametrize("x_shape, w_shape, kwargs", [
    ((1, 2, 4, 4), (2, 2, 2, 2), {"stride": 2, "padding": 1}),
    ((1, 4, 4, 5), (2, 2, 3, 2), {"groups": 2, "dilation": (1, 2)}),
])
def test_conv2d_double_backward(x_shape, w_shape, kwargs, device):
    inputs = (random_leaf(x_shape, device, 1), random_leaf(w_shape, device, 2), random_leaf(w_shape[:1], device, 3))
    assert gradgradcheck(lambda x, w, b: conv2d(x, w, b, **kwargs), inputs)


# (input shape, weight shape (in, out / groups, kH, kW), keyword arguments)
TRANSPOSE_CASES = [
    ((2, 3, 3, 3), (3, 2, 3, 3), {}),
    ((1, 2, 3, 4), (2, 3, 3, 2), {"stride": 2, "padding": 1, "output_padding": 1}),
    ((1, 4, 3, 3), (4, 1, 2, 3), {"groups": 2, "stride": (2, 1)}),
    ((1, 2, 3, 3), (2, 2, 2, 2), {"dilation": 2, "output_padding": 1}),  # output padding below dilation
    ((2, 3, 3), (2, 2, 3, 3), {"padding": 1}),                          # unbatched
]


@pytest.mark.parametrize("x_shape, w_shape, kwargs", TRANSPOSE_CASES)
def test_conv_transpose2d_gradcheck(x_shape, w_shape, kwargs, device):
    out_channels = w_shape[1] * kwargs.get("groups", 1)
    inputs = (random_leaf(x_shape, device, 1), random_leaf(w_shape, device, 2), random_leaf((out_channels,), device, 3))
    assert gradcheck(lambda x, w, b: conv_transpose2d(x, w, b, **kwargs), inputs)


def test_conv_transpose2d_double_backward(device):
    inputs = (random_leaf((1, 2, 3, 3), device, 1), random_leaf((2, 2, 2, 2), device, 2))
    assert gradgradcheck(lambda x, w: conv_transpose2d(x, w, stride=2, padding=1, output_padding=1), inputs)


# --- against torch --------------------------------------------------------------------------------
def torch_and_ours(fn_name, x_shape, w_shape, b_shape, kwargs, device, x_transform=None):
    """Forward and every gradient of ``fn_name`` in distgrad and torch on the same float64 values."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s) for s in (x_shape, w_shape, b_shape)]
    ours = [dg.tensor(a, device=device, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    x_ours, x_theirs = (x_transform(ours[0]), x_transform(theirs[0])) if x_transform else (ours[0], theirs[0])
    y_ours = getattr(dg.ops.conv, fn_name)(x_ours, ours[1], ours[2], **kwargs)
    y_theirs = getattr(torch.nn.functional, fn_name)(x_theirs, theirs[1], theirs[2], **kwargs)
    grad = rng.standard_normal(tuple(y_theirs.shape))
    y_ours.backward(dg.tensor(grad, device=device))
    y_theirs.backward(torch.tensor(grad))
    return ([host(y_ours)] + [host(t.grad) for t in ours],
            [y_theirs.detach().numpy()] + [t.grad.numpy() for t in theirs])


@pytest.mark.filterwarnings("ignore::UserWarning")  # torch warns that it pads even 'same' kernels by a copy
@pytest.mark.parametrize("x_shape, w_shape, kwargs", CONV_CASES)
def test_conv2d_matches_torch(x_shape, w_shape, kwargs, device):
    ours, theirs = torch_and_ours("conv2d", x_shape, w_shape, w_shape[:1], kwargs, device)
    for a, b in zip(ours, theirs):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("x_shape, w_shape, kwargs", TRANSPOSE_CASES)
def test_conv_transpose2d_matches_torch(x_shape, w_shape, kwargs, device):
    b_shape = (w_shape[1] * kwargs.get("groups", 1),)
    ours, theirs = torch_and_ours("conv_transpose2d", x_shape, w_shape, b_shape, kwargs, device)
    for a, b in zip(ours, theirs):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)


def test_conv2d_of_a_non_contiguous_input_matches_torch(device):
    swap = lambda t: t.transpose(2, 3)  # noqa: E731  a (N, C, W, H) leaf seen as (N, C, H, W)
    ours, theirs = torch_and_ours("conv2d", (2, 3, 6, 5), (4, 3, 3, 2), (4,), {"stride": 2, "padding": 1}, device,
                                  x_transform=swap)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_conv2d_matches_torch_on_generated_geometries(data):
    groups = data.draw(st.sampled_from([1, 2]), "groups")
    k = data.draw(st.tuples(st.integers(1, 3), st.integers(1, 3)), "kernel")
    dilation = data.draw(st.tuples(st.integers(1, 2), st.integers(1, 2)), "dilation")
    stride = data.draw(st.tuples(st.integers(1, 3), st.integers(1, 3)), "stride")
    padding = data.draw(st.tuples(st.integers(0, 2), st.integers(0, 2)), "padding")
    span = [d * (kk - 1) + 1 for d, kk in zip(dilation, k)]
    hw = [data.draw(st.integers(max(1, s - 2 * p), s + 4)) for s, p in zip(span, padding)]
    kwargs = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
    ours, theirs = torch_and_ours("conv2d", (2, 2 * groups, *hw), (2 * groups, 2, *k), (2 * groups,), kwargs, "cpu")
    for a, b in zip(ours, theirs):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)


# --- behaviour ------------------------------------------------------------------------------------
def test_conv2d_keeps_float32_and_gives_nchw_shapes(device):
    x = dg.randn(4, 1, 28, 28, device=device)
    w = dg.randn(32, 1, 3, 3, device=device, requires_grad=True)
    b = dg.randn(32, device=device, requires_grad=True)
    y = conv2d(x, w, b)
    assert y.shape == (4, 32, 26, 26) and y.dtype == dg.float32
    (y * y).sum().backward()
    assert w.grad.dtype == dg.float32 and w.grad.shape == w.shape and b.grad.shape == (32,)


def test_conv2d_output_reshapes_like_a_contiguous_tensor(device):
    x, w = random_leaf((2, 3, 4, 4), device, 1), random_leaf((5, 3, 3, 3), device, 2)
    y = conv2d(x, w)
    flat = host(y.reshape(2, -1))
    np.testing.assert_array_equal(flat, host(y).reshape(2, -1))


def test_conv2d_skips_gradients_nobody_needs(device):
    x = dg.randn(2, 3, 5, 5, device=device)
    w = dg.randn(4, 3, 3, 3, device=device, requires_grad=True)
    conv2d(x, w).sum().backward()
    assert x.grad is None and w.grad is not None


def test_conv2d_of_an_empty_batch(device):
    x, w = random_leaf((0, 3, 5, 5), device, 1), random_leaf((4, 3, 3, 3), device, 2)
    y = conv2d(x, w)
    assert y.shape == (0, 4, 3, 3)
    y.sum().backward()
    assert host(w.grad).shape == (4, 3, 3, 3) and not host(w.grad).any()


def test_conv2d_under_no_grad_records_nothing(device):
    w = dg.randn(4, 3, 3, 3, device=device, requires_grad=True)
    with dg.no_grad():
        y = conv2d(dg.randn(1, 3, 5, 5, device=device), w)
    assert y.grad_fn is None and not y.requires_grad


# --- errors ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("x_shape, w_shape, b_shape, kwargs, message", [
    ((64, 3, 28, 28), (32, 1, 3, 3), None, {},
     r"Given groups=1, weight of size \[32, 1, 3, 3\], expected input\[64, 3, 28, 28\] to have 1 channels, "
     r"but got 3 channels instead"),
    ((1, 4, 5, 5), (3, 2, 3, 3), None, {"groups": 2},
     r"Given groups=2, expected weight to be divisible by 2 at dimension 0, but got weight of size \[\[3, 2, 3, 3\]\]"),
    ((1, 3, 5, 5), (4, 3, 3, 3), (5,), {},
     r"expected bias to be 1-dimensional with 4 elements, but got bias of size \[5\] instead"),
    ((3, 3), (4, 3, 3, 3), None, {}, r"Expected 3D \(unbatched\) or 4D \(batched\) input to conv2d, but got input of "
     r"size: \[3, 3\]"),
    ((1, 3, 5, 5), (4, 3, 3), None, {}, r"conv2d: expected a 4-D weight, but got weight of size \[4, 3, 3\]"),
    ((1, 3, 2, 2), (4, 3, 3, 3), None, {}, r"Calculated padded input size per channel: \(2 x 2\). Kernel size: "
     r"\(3 x 3\). Kernel size can't be greater than actual input size"),
    ((1, 3, 5, 5), (4, 3, 3, 3), None, {"stride": 0}, "non-positive stride is not supported"),
    ((1, 3, 5, 5), (4, 3, 3, 3), None, {"padding": -1}, "negative padding is not supported"),
    ((1, 3, 5, 5), (4, 3, 3, 3), None, {"dilation": 0}, "non-positive dilation is not supported"),
    ((1, 3, 5, 5), (4, 3, 3, 3), None, {"groups": 0}, "non-positive groups is not supported"),
    ((1, 3, 5, 5), (4, 3, 3, 3), None, {"stride": 2, "padding": "same"},
     "padding='same' is not supported for strided convolutions"),
    ((1, 3, 5, 5), (4, 3, 3, 3), None, {"padding": "full"}, "Invalid padding string: 'full'"),
    ((1, 3, 5, 5), (4, 3, 3, 3), None, {"stride": (1, 1, 1)},
     r"expected stride to be a single integer value or a list of 2 values .* but got stride=\[1, 1, 1\]"),
])
def test_conv2d_errors_read_like_torch(x_shape, w_shape, b_shape, kwargs, message):
    bias = None if b_shape is None else dg.randn(*b_shape)
    with pytest.raises(RuntimeError, match=message):
        conv2d(dg.randn(*x_shape), dg.randn(*w_shape), bias, **kwargs)


def test_conv2d_rejects_mixed_dtypes():
    with pytest.raises(RuntimeError, match=r"Input type \(float32\) and weight type \(float64\) should be the same"):
        conv2d(dg.randn(1, 3, 5, 5), dg.randn(4, 3, 3, 3, dtype=dg.float64))
    with pytest.raises(RuntimeError, match=r"Input type \(float32\) and bias type \(float64\) should be the same"):
        conv2d(dg.randn(1, 3, 5, 5), dg.randn(4, 3, 3, 3), dg.randn(4, dtype=dg.float64))


def test_conv_transpose2d_errors_read_like_torch():
    x = dg.randn(2, 3, 5, 5)
    with pytest.raises(RuntimeError, match=r"Given transposed=1, weight of size \[4, 3, 3, 3\], expected "
                                           r"input\[2, 3, 5, 5\] to have 4 channels, but got 3 channels instead"):
        conv_transpose2d(x, dg.randn(4, 3, 3, 3))
    with pytest.raises(RuntimeError, match="output padding must be smaller than either stride or dilation, but got "
                                           "output_padding_height: 2 output_padding_width: 2 stride_height: 2"):
        conv_transpose2d(x, dg.randn(3, 3, 3, 3), stride=2, output_padding=2)
    with pytest.raises(RuntimeError, match=r"Given transposed=1, weight of size \[3, 3, 3, 3\], expected bias to be "
                                           r"1-dimensional with 3 elements, but got bias of size \[4\] instead"):
        conv_transpose2d(x, dg.randn(3, 3, 3, 3), dg.randn(4))
