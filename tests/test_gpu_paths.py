"""The GPU paths on a GPU (every test here needs CuPy and a GPU, and skips without): distgrad's kernels
through NVRTC against their NumPy references, the ops with kernels on against kernels off, CUDA graph
capture and replay (memory kept for the graph, GEMMs through ctypes cuBLAS, dropout drawing anew at
each replay), make_graphed_step against eager steps, and cuDNN convolutions against im2col + cuBLAS.
The CPU tests of the same code are tests/test_kernels.py, test_cuda_graphs.py and test_cudnn_conv.py."""
import numpy as np
import pytest

import distgrad as dg
import distgrad.nn.functional as F
from distgrad import backend
from distgrad.dtypes import bfloat16, float16, float32
from distgrad.kernels import flash_attention, pointwise, policy, rows
from helpers import training_step

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not backend.cuda_is_available(), reason="needs CuPy and a GPU")]
TOLERANCE = {np.dtype(float32): 2e-5, np.dtype(bfloat16): 2e-2, np.dtype(float16): 2e-3}
DTYPES = pytest.mark.parametrize("dtype", [float32, bfloat16, float16], ids=lambda d: np.dtype(d).name)


def _gpu(a):
    return backend.to_device(a, dg.device("cuda"))


def _host(a):
    return backend.to_device(a, backend.CPU)


def _random(shape, dtype, seed=0, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


def _close(got, expected, dtype):
    tol = TOLERANCE[np.dtype(dtype)]
    np.testing.assert_allclose(np.asarray(_host(got), np.float64), np.asarray(expected, np.float64), rtol=tol, atol=tol)


# --- the kernels, compiled by NVRTC, against their references -------------------------------------------
@DTYPES
def test_row_kernels_match_their_references_on_the_gpu(dtype):
    x = _random((33, 1000), dtype, scale=3)
    for log in (False, True):
        _close(rows.softmax(_gpu(x), log=log), rows.reference_softmax(x, log=log), dtype)
    scores = _random((2, 5, 7, 7), dtype)
    got = _host(rows.softmax(_gpu(scores), scale=0.5, causal_length=7))
    _close(got, rows.reference_softmax(scores, scale=0.5, causal_length=7), dtype)
    w, b = _random(1000, dtype, 1), _random(1000, dtype, 2)
    y, mean, rstd = rows.layer_norm(_gpu(x), _gpu(w), _gpu(b), 1000, 1e-5)
    _close(y, rows.reference_layer_norm(x, w, b, 1000, 1e-5)[0], dtype)
    g = _random(x.shape, dtype, 3)
    grads = rows.layer_norm_backward(_gpu(g), _gpu(x), _gpu(w), mean, rstd, 1000)
    expected = rows.reference_layer_norm_backward(g, x, w, _host(mean), _host(rstd), 1000)
    _close(grads[0], expected[0], dtype)
    target = np.arange(33) * 7 % 1000
    loss, lse = rows.cross_entropy(_gpu(x), _gpu(target), -100)
    np.testing.assert_allclose(_host(loss), rows.reference_cross_entropy(x, target, -100)[0], rtol=1e-4, atol=1e-4)


@DTYPES
def test_pointwise_kernels_match_their_references_on_the_gpu(dtype):
    x, bias = _random((64, 300), dtype, scale=2), _random(300, dtype, 1)
    for activation in pointwise.ACTIVATIONS:
        _close(pointwise.bias_act(_gpu(x), _gpu(bias), activation), pointwise.reference_bias_act(x, bias, activation),
               dtype)
    _close(pointwise.dropout(_gpu(x), _gpu(bias * 0 + x), 0.3, 11, 5), pointwise.reference_dropout(x, x, 0.3, 11, 5),
           dtype)


@DTYPES
@pytest.mark.parametrize("d, length, causal", [(32, 64, True), (64, 300, True), (64, 100, False), (128, 129, True)])
def test_flash_attention_matches_its_reference_on_the_gpu(dtype, d, length, causal):
    q, k, v = (_random((3, length, d), dtype, seed) for seed in range(3))
    out, lse = flash_attention.forward(_gpu(q), _gpu(k), _gpu(v), d ** -0.5, causal)
    _close(out, flash_attention.reference_forward(q, k, v, d ** -0.5, causal)[0], dtype)
    g = _random(q.shape, dtype, 4)
    got = flash_attention.backward(_gpu(g), _gpu(q), _gpu(k), _gpu(v), out, lse, d ** -0.5, causal)
    for a, b in zip(got, flash_attention.reference_backward(g, q, k, v, d ** -0.5, causal)):
        _close(a, b, dtype)


# --- the ops: kernels on against kernels off -------------------------------------------------------------
OPS = {
    "softmax": lambda x: F.softmax(x, -1), "log_softmax": lambda x: F.log_softmax(x, -1),
    "layer_norm": lambda x: F.layer_norm(x, (x.shape[-1],)), "gelu": F.gelu,
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "cross_entropy": lambda x: F.cross_entropy(x, dg.tensor(np.arange(x.shape[0]) % x.shape[1], device="cuda")),
    "sdpa_causal": lambda x: F.scaled_dot_product_attention(*(x.reshape(2, 4, 8, 32),) * 3, is_causal=True),
}


@pytest.mark.parametrize("op", sorted(OPS))
def test_ops_give_the_same_values_and_gradients_with_kernels_on_and_off(op):
    values = _random((32, 64), np.float32, scale=2)
    results = []
    for on in (True, False):
        policy.set_enabled(on)
        try:
            x = dg.tensor(values, device="cuda", requires_grad=True)
            out = OPS[op](x)
            (out * dg.tensor(_random(out.shape, np.float32, 9), device="cuda")).sum().backward()
            results.append((_host(out.detach().array), _host(x.grad.array)))
        finally:
            policy.set_enabled(True)
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


# --- CUDA graphs -----------------------------------------------------------------------------------------
def test_a_graph_replays_on_new_data_and_keeps_its_memory():
    cp = backend.cupy_module()
    x = dg.tensor(np.ones((256, 256), np.float32), device="cuda")
    w = dg.tensor(np.full((256, 256), 0.5, np.float32), device="cuda")
    g = dg.cuda.CUDAGraph()
    with dg.cuda.graph(g):
        y = ((x @ w) * 2 + 1).tanh()  # a GEMM (ctypes cuBLAS) and elementwise kernels; temporaries freed here
    garbage = [cp.full((256, 256), 7.0, np.float32) for _ in range(8)]  # memory that must not alias the graph's
    for value in (1.0, 2.0, 3.0):
        x.array[...] = value
        g.replay()
        dg.cuda.synchronize()
        np.testing.assert_allclose(_host(y.array), np.tanh(value * 256 * 0.5 * 2 + 1), rtol=1e-6)
    assert all(float(a[0, 0]) == 7.0 for a in garbage)


@pytest.mark.parametrize("shapes", [((64, 32), (32, 16)), ((32, 64), (16, 64)), ((4, 8, 32), (4, 32, 8))],
                         ids=["nn", "weight-transposed", "batched"])
@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64])
def test_ctypes_cublas_matches_cupy(shapes, dtype):
    from distgrad import cublas
    cp = backend.cupy_module()
    a, b = _gpu(_random(shapes[0], dtype)), _gpu(_random(shapes[1], dtype, 1))
    if shapes[1][0] == 16 and len(shapes[1]) == 2:
        b = b.T  # a .T view, as Linear's forward passes the weight
    np.testing.assert_allclose(_host(cublas.handle(cp).matmul(a, b)), _host(cp.matmul(a, b)), rtol=1e-2 if dtype ==
                               np.float16 else 1e-5, atol=1e-2 if dtype == np.float16 else 1e-5)


def _mlp(seed, dropout=0.0):
    dg.manual_seed(seed)
    model = dg.nn.Sequential(dg.nn.Linear(784, 512), dg.nn.ReLU(), dg.nn.Dropout(dropout), dg.nn.Linear(512, 10)).to("cuda")
    optimizer = dg.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    return model, optimizer, training_step(model, optimizer)


def test_graphed_w1_steps_train_as_eager_steps_do():
    model, optimizer, step = _mlp(0)
    reference, _, eager = _mlp(0)
    rng = np.random.default_rng(0)
    graphed = dg.cuda.make_graphed_step(step, (dg.zeros(64, 784, device="cuda"), dg.zeros(64, dtype=dg.int64,
                                                                                         device="cuda")),
                                        optimizer=optimizer)
    for i in range(8):
        x = dg.tensor(rng.standard_normal((64, 784)).astype(np.float32), device="cuda")
        y = dg.tensor(rng.integers(0, 10, 64), device="cuda")
        got, expected = graphed(x, y), eager(x, y)
        np.testing.assert_allclose(float(got.item()), float(expected.item()), rtol=1e-4)
    assert len(graphed.graphs) == 1
    for p, q in zip(model.parameters(), reference.parameters()):
        np.testing.assert_allclose(_host(p.array), _host(q.array), rtol=1e-4, atol=1e-5)


def test_dropout_in_a_graph_draws_a_new_mask_at_each_replay():
    x = dg.ones(64, 64, device="cuda")
    g = dg.cuda.CUDAGraph()
    with dg.cuda.graph(g):
        y = F.dropout(x, 0.5)
    masks = []
    for _ in range(3):
        g.replay()
        dg.cuda.synchronize()
        masks.append(_host(y.array) != 0)
    assert not np.array_equal(masks[0], masks[1]) and not np.array_equal(masks[1], masks[2])
    assert all(0.4 < 1 - m.mean() < 0.6 for m in masks)


def test_item_inside_a_capture_names_itself():
    g = dg.cuda.CUDAGraph()
    x = dg.ones(4, device="cuda")
    with pytest.raises(RuntimeError, match=r"Tensor.item\(\) synchronizes with the host"):
        with dg.cuda.graph(g):
            x.sum().item()
    assert not backend.capturing()


# --- cuDNN convolutions ----------------------------------------------------------------------------------
@pytest.mark.parametrize("padding, stride", [(1, 1), (0, 2), ("same", 1)])
def test_cudnn_convolutions_match_im2col(padding, stride):
    from distgrad.kernels import cudnn_conv
    if cudnn_conv.frontend() is None:
        pytest.skip("cudnn-frontend is not installed")
    x_values, w_values = _random((8, 3, 17, 17), np.float32), _random((16, 3, 3, 3), np.float32, 1)
    results = []
    for enabled in (True, False):
        from distgrad.backends import cudnn
        cudnn.enabled, cudnn.allow_tf32 = enabled, False
        try:
            x = dg.tensor(x_values, device="cuda", requires_grad=True)
            w = dg.tensor(w_values, device="cuda", requires_grad=True)
            out = F.conv2d(x, w, padding=padding, stride=stride)
            (out * out).sum().backward()
            results.append([_host(t) for t in (out.detach().array, x.grad.array, w.grad.array)])
        finally:
            cudnn.enabled, cudnn.allow_tf32 = True, True
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
