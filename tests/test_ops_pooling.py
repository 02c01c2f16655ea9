"""Pooling: torch's results, indices and gradients, gradcheck of every variant, double backward, errors."""
import numpy as np
import pytest

import distgrad as dg
from distgrad.autograd.gradcheck import gradcheck, gradgradcheck
from distgrad.ops.pooling import adaptive_avg_pool2d, avg_pool1d, avg_pool2d, max_pool1d, max_pool2d
from helpers import host, random_leaf


MAX_CASES = [
    ((1, 2, 4, 4), {"kernel_size": 2}),
    ((2, 1, 5, 6), {"kernel_size": 3, "stride": 2, "padding": 1}),
    ((1, 2, 5, 5), {"kernel_size": 2, "stride": 2, "ceil_mode": True}),
    ((1, 1, 7, 6), {"kernel_size": (3, 2), "stride": (2, 1), "padding": (1, 1), "dilation": (2, 1)}),
    ((1, 1, 5, 5), {"kernel_size": 3, "stride": 1}),                       # overlapping windows
    ((2, 5, 5), {"kernel_size": 2, "stride": 2, "padding": 1, "ceil_mode": True}),  # unbatched
]

AVG_CASES = [
    ((1, 2, 4, 4), {"kernel_size": 2}),
    ((2, 1, 5, 6), {"kernel_size": 3, "stride": 2, "padding": 1}),
    ((2, 1, 5, 6), {"kernel_size": 3, "stride": 2, "padding": 1, "count_include_pad": False}),
    ((1, 2, 5, 5), {"kernel_size": 2, "ceil_mode": True}),
    ((1, 1, 6, 5), {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True, "count_include_pad": False}),
    ((1, 1, 6, 5), {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}),
    ((1, 1, 5, 5), {"kernel_size": (2, 3), "stride": 1, "divisor_override": 4}),
    ((2, 5, 5), {"kernel_size": 2, "padding": 1}),                                          # unbatched
]

ADAPTIVE_CASES = [((1, 2, 6, 4), (3, 2)), ((1, 2, 7, 5), (3, 4)), ((2, 5, 5), 1), ((1, 1, 5, 6), (None, 4))]


@pytest.mark.parametrize("shape, kwargs", MAX_CASES)
def test_max_pool2d_gradcheck(shape, kwargs, device):
    assert gradcheck(lambda x: max_pool2d(x, **kwargs), (random_leaf(shape, device),))


@pytest.mark.parametrize("shape, kwargs", AVG_CASES)
def test_avg_pool2d_gradcheck(shape, kwargs, device):
    assert gradcheck(lambda x: avg_pool2d(x, **kwargs), (random_leaf(shape, device),))


@pytest.mark.parametrize("shape, output_size", ADAPTIVE_CASES)
def test_adaptive_avg_pool2d_gradcheck(shape, output_size, device):
    assert gradcheck(lambda x: adaptive_avg_pool2d(x, output_size), (random_leaf(shape, device),))


def test_pool1d_gradcheck(device):
    x = random_leaf((2, 2, 7), device)
    assert gradcheck(lambda t: max_pool1d(t, 3, stride=2, padding=1), (x,))
    assert gradcheck(lambda t: avg_pool1d(t, 3, stride=2, padding=1, ceil_mode=True), (x,))


@pytest.mark.parametrize("pool", [
    lambda x: max_pool2d(x, 3, stride=2, padding=1),
    lambda x: avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False),
    lambda x: adaptive_avg_pool2d(x, (2, 3)),
], ids=["max", "avg", "adaptive"])
def test_pooling_double_backward(pool, device):
    x = random_leaf((1, 2, 5, 4), device)
    # a smooth function of the pooled values, so that the second derivative is not zero everywhere
    assert gradgradcheck(lambda t: pool(t) * pool(t), (x,))


# --- against torch --------------------------------------------------------------------------------
def compare_with_torch(name, shape, kwargs, device, transform=None):
    torch = pytest.importorskip("torch")
    values = np.random.default_rng(0).standard_normal(shape)
    ours = dg.tensor(values, device=device, requires_grad=True)
    theirs = torch.tensor(values, requires_grad=True)
    x_ours, x_theirs = (transform(ours), transform(theirs)) if transform else (ours, theirs)
    out_ours = getattr(dg.ops.pooling, name)(x_ours, **kwargs)
    out_theirs = getattr(torch.nn.functional, name)(x_theirs, **kwargs)
    if kwargs.get("return_indices"):
        (out_ours, idx_ours), (out_theirs, idx_theirs) = out_ours, out_theirs
        assert idx_ours.dtype == dg.int64
        np.testing.assert_array_equal(host(idx_ours), idx_theirs.numpy())
    grad = np.random.default_rng(1).standard_normal(tuple(out_theirs.shape))
    out_ours.backward(dg.tensor(grad, device=device))
    out_theirs.backward(torch.tensor(grad))
    assert out_ours.shape == tuple(out_theirs.shape)
    np.testing.assert_allclose(host(out_ours), out_theirs.detach().numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(host(ours.grad), theirs.grad.numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("shape, kwargs", MAX_CASES)
def test_max_pool2d_and_its_indices_match_torch(shape, kwargs, device):
    compare_with_torch("max_pool2d", shape, dict(kwargs, return_indices=True), device)


@pytest.mark.parametrize("shape, kwargs", AVG_CASES)
def test_avg_pool2d_matches_torch(shape, kwargs, device):
    compare_with_torch("avg_pool2d", shape, kwargs, device)


@pytest.mark.parametrize("shape, output_size", ADAPTIVE_CASES + [((1, 2, 8, 6), (4, 3))])
def test_adaptive_avg_pool2d_matches_torch(shape, output_size, device):
    compare_with_torch("adaptive_avg_pool2d", shape, {"output_size": output_size}, device)


def test_pool1d_matches_torch(device):
    compare_with_torch("max_pool1d", (2, 3, 9), {"kernel_size": 3, "stride": 2, "padding": 1,
                                                 "return_indices": True}, device)
    compare_with_torch("avg_pool1d", (3, 9), {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}, device)


def test_max_pool2d_of_a_non_contiguous_input_matches_torch(device):
    compare_with_torch("max_pool2d", (2, 3, 6, 5), {"kernel_size": 2, "return_indices": True}, device,
                       transform=lambda t: t.transpose(2, 3))


def test_max_pool2d_over_more_than_256_window_offsets_matches_torch(device):
    compare_with_torch("max_pool2d", (1, 2, 18, 17), {"kernel_size": 17, "stride": 1, "return_indices": True}, device)


@pytest.mark.parametrize("layout, leaf_shape, as_nchw", [
    ("channel-major", (2, 3, 6, 5), lambda t: t.transpose(0, 1)),     # (C, N, H, W) memory
    ("batch-last", (2, 6, 5, 3), lambda t: t.permute(3, 0, 1, 2)),   # (C, H, W, N) memory, as conv2d returns
])
@pytest.mark.parametrize("name, kwargs", [
    ("max_pool2d", {"kernel_size": 3, "stride": 2, "padding": 1, "return_indices": True}),
    ("avg_pool2d", {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}),
])
def test_pooling_of_non_batch_first_memory_matches_torch(name, kwargs, layout, leaf_shape, as_nchw, device):
    compare_with_torch(name, leaf_shape, kwargs, device, transform=as_nchw)


# --- behaviour ------------------------------------------------------------------------------------
def test_max_pool2d_ties_go_to_the_first_maximum(device):
    x = dg.tensor([[[[3.0, 3.0], [3.0, 3.0]]]], device=device, requires_grad=True)
    out, indices = max_pool2d(x, 2, return_indices=True)
    out.sum().backward()
    assert host(indices).item() == 0
    np.testing.assert_array_equal(host(x.grad), [[[[1.0, 0.0], [0.0, 0.0]]]])


def test_max_pool2d_propagates_nan_like_torch(device):
    nan = float("nan")
    out, indices = max_pool2d(dg.tensor([[[[1.0, nan], [nan, 2.0]]]], device=device), 2, return_indices=True)
    assert np.isnan(host(out).item()) and host(indices).item() == 2  # the last NaN, as torch's CPU kernel


def test_max_pool2d_keeps_integer_inputs():
    out = max_pool2d(dg.tensor([[[[1, 5], [7, -2]]]]), 2)
    assert out.dtype == dg.int64 and out.item() == 7


def test_pooling_keeps_float32(device):
    x = dg.randn(2, 3, 8, 8, device=device, requires_grad=True)
    for out in (max_pool2d(x, 2), avg_pool2d(x, 2), adaptive_avg_pool2d(x, 3)):
        assert out.dtype == dg.float32
        out.sum().backward()
        assert x.grad.dtype == dg.float32


def test_adaptive_avg_pool2d_with_equal_windows_is_an_average_pooling(device):
    x = random_leaf((1, 2, 8, 6), device)
    np.testing.assert_allclose(host(adaptive_avg_pool2d(x, (4, 3))), host(avg_pool2d(x, 2)), rtol=1e-12)


# --- errors ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("call, message", [
    (lambda: max_pool2d(dg.randn(3, 3), 2), "non-empty 3D or 4D \\(batch mode\\) tensor expected for input"),
    (lambda: max_pool2d(dg.randn(2, 3, 8, 8), 3, padding=2),
     "pad should be at most half of effective kernel size, but got pad=2, kernel_size=3 and dilation=1"),
    (lambda: max_pool2d(dg.randn(2, 3, 8, 8), 2, stride=0), "stride should not be zero"),
    (lambda: max_pool2d(dg.randn(2, 3, 8, 8), 0, stride=1),
     "kernel size should be greater than zero, but got kH: 0 kW: 0"),
    (lambda: max_pool2d(dg.randn(2, 3, 8, 8), 2, dilation=0),
     "dilation should be greater than zero, but got dilationH: 0 dilationW: 0"),
    (lambda: max_pool2d(dg.randn(1, 1, 2, 2), 3),
     r"Given input size: \(1x2x2\). Calculated output size: \(1x0x0\). Output size is too small"),
    (lambda: max_pool2d(dg.randn(2, 3, 8, 8), (2, 2, 2)),
     "max_pool2d: kernel_size must either be a single int, or a tuple of two ints"),
    (lambda: max_pool2d(dg.randn(2, 0, 4, 4), 2),
     r"Expected 3D or 4D \(batch mode\) tensor with optional 0 dim batch size for input, but got:\[2, 0, 4, 4\]"),
    (lambda: avg_pool2d(dg.randn(2, 3, 8, 8), 2, divisor_override=0), "divisor must be not zero"),
    (lambda: avg_pool2d(dg.randn(2, 3, 8, 8), 3, padding=2), "pad should be at most half of effective kernel size"),
    (lambda: adaptive_avg_pool2d(dg.randn(3, 3), 2), r"adaptive_avg_pool2d\(\): Expected 3D or 4D tensor, but got "
                                                     r"\[3, 3\]"),
    (lambda: adaptive_avg_pool2d(dg.randn(2, 3, 8, 8), (2, 2, 2)), "adaptive_avg_pool2d: output_size must be 2"),
    (lambda: adaptive_avg_pool2d(dg.randn(2, 3, 0, 4), 2), "Expected input to have non-zero size for non-batch "
                                                           "dimensions, but input has sizes \\[2, 3, 0, 4\\] with "
                                                           "dimension 2 being empty"),
])
def test_pooling_errors_read_like_torch(call, message):
    with pytest.raises(RuntimeError, match=message):
        call()
