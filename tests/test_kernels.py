"""distgrad.kernels without a GPU: each CUDA kernel, run on the CPU emulator, equals its NumPy reference
(float32, bfloat16, float16); each reference equals the op whose GPU path the kernel is; the ops take their
kernel path (emulated) and match PyTorch, gradients included; every source compiles for sm_90 where nvcc
is installed; and the policy sends only what the kernels handle."""
import shutil
import subprocess

import numpy as np
import pytest

import distgrad as dg
import distgrad.nn.functional as F
from distgrad.dtypes import bfloat16, float16, float32
from distgrad.kernels import emulator, flash_attention, pointwise, policy, rows
from distgrad.ops import fused
from helpers import assert_matches_torch

pytestmark = pytest.mark.skipif(not emulator.available(), reason="the kernel emulator needs a C++20 compiler")

# Tolerance of a kernel against its reference: float32 arithmetic in another order, then one rounding.
TOLERANCE = {np.dtype(float32): 2e-5, np.dtype(bfloat16): 2e-2, np.dtype(float16): 2e-3}
DTYPES = [float32, bfloat16, float16]
dtype_ids = pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)


@pytest.fixture
def launched(monkeypatch):
    """Inside ``policy.emulated()``; yields the names of the kernels launched, in order."""
    names = []
    original = emulator.launch

    def spy(file, name, *args, **kwargs):
        names.append(name)
        return original(file, name, *args, **kwargs)
    monkeypatch.setattr(emulator, "launch", spy)
    with policy.emulated():
        yield names


def _random(shape, dtype, seed=0, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


def _close(got, expected, dtype=None):
    tol = TOLERANCE[np.dtype(dtype or got.dtype)]
    np.testing.assert_allclose(np.asarray(got, np.float64), np.asarray(expected, np.float64), rtol=tol, atol=tol)


# --- each kernel against its reference, on the emulator --------------------------------------------------
@dtype_ids
@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("shape, scale, causal", [((3, 37), 1.0, 0), ((2, 5, 300), 0.3, 0), ((2, 4, 6), 0.5, 4)],
                         ids=["short-rows", "long-rows", "causal"])
def test_softmax_kernels_match_their_reference(launched, dtype, log, shape, scale, causal):
    x = _random(shape, dtype, scale=3)
    y = rows.softmax(x, log=log, scale=scale, causal_length=causal)
    expected = rows.reference_softmax(x, log=log, scale=scale, causal_length=causal)
    finite = np.isfinite(expected.astype(np.float64))
    assert (np.isfinite(y.astype(np.float64)) == finite).all()  # masked log-probabilities are -inf
    _close(y[finite], expected[finite], dtype)
    g = _random(shape, dtype, seed=1)
    _close(rows.softmax_backward(g, y, log=log), rows.reference_softmax_backward(g, y, log=log), dtype)


def test_softmax_kernel_writes_in_place_and_gives_nan_rows_like_numpy(launched):
    x = _random((3, 8), float32)
    x[1] = -np.inf
    expected = rows.reference_softmax(x)
    rows.softmax(x, out=x)
    assert np.isnan(x[1]).all() and np.isnan(expected[1]).all()
    _close(x[[0, 2]], expected[[0, 2]])


@dtype_ids
@pytest.mark.parametrize("center", [True, False], ids=["layer_norm", "rms_norm"])
@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
def test_layer_norm_kernels_match_their_reference(launched, dtype, center, affine):
    size, x = 70, _random((600, 70), dtype, scale=2) + np.asarray(1.5, dtype)  # more rows than one gradient chunk
    weight, bias = (_random(size, dtype, 1), _random(size, dtype, 2)) if affine else (None, None)
    y, mean, rstd = rows.layer_norm(x, weight, bias, size, 1e-5, center)
    ref_y, ref_mean, ref_rstd = rows.reference_layer_norm(x, weight, bias, size, 1e-5, center)
    _close(y, ref_y, dtype)
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(rstd, ref_rstd, rtol=1e-5)
    g = _random(x.shape, dtype, seed=3)
    grads = rows.layer_norm_backward(g, x, weight, mean, rstd, size, center)
    expected = rows.reference_layer_norm_backward(g, x, weight, mean, rstd, size, center)
    _close(grads[0], expected[0], dtype)
    for got, want in zip(grads[1:], expected[1:]):  # sums over 600 rows: compare relative to their size
        np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64),
                                   rtol=TOLERANCE[np.dtype(dtype)], atol=TOLERANCE[np.dtype(dtype)] * 25)


@dtype_ids
def test_cross_entropy_kernels_match_their_reference(launched, dtype):
    x = _random((6, 130), dtype, scale=4)
    target = np.array([3, -100, 129, 0, 7, 200])  # an ignored row, and one out of range (nan, not a crash)
    loss, lse = rows.cross_entropy(x, target, -100)
    ref_loss, ref_lse = rows.reference_cross_entropy(x, target, -100)
    np.testing.assert_allclose(lse, ref_lse, rtol=1e-5)
    assert np.isnan(loss[5]) and np.isnan(ref_loss[5]) and loss[1] == 0
    np.testing.assert_allclose(loss[:5], ref_loss[:5], rtol=1e-5, atol=1e-5)
    for scale in (np.float32([0.25]), np.linspace(1, 2, 6, dtype=np.float32)):  # one factor, or one per row
        _close(rows.cross_entropy_backward(x, target, lse, scale, -100),
               rows.reference_cross_entropy_backward(x, target, lse, scale, -100), dtype)


@dtype_ids
@pytest.mark.parametrize("activation", sorted(pointwise.ACTIVATIONS))
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "no-bias"])
def test_bias_activation_kernels_match_their_reference(launched, dtype, activation, with_bias):
    x = _random((7, 33), dtype, scale=2)
    bias = _random(33, dtype, 1) if with_bias else None
    _close(pointwise.bias_act(x, bias, activation), pointwise.reference_bias_act(x, bias, activation), dtype)
    g = _random(x.shape, dtype, 2)
    _close(pointwise.bias_act_backward(g, x, bias, activation),
           pointwise.reference_bias_act_backward(g, x, bias, activation), dtype)


@dtype_ids
def test_dropout_kernels_match_their_reference_and_recompute_the_mask(launched, dtype):
    x, residual = _random((5, 300), dtype), _random((5, 300), dtype, 1)
    out = pointwise.dropout(x, residual, 0.25, seed=7, offset=11)
    _close(out, pointwise.reference_dropout(x, residual, 0.25, 7, 11), dtype)
    keep = pointwise.reference_keep(x.size, 0.25, 7, 11).reshape(x.shape)
    assert 0.2 < 1 - keep.mean() < 0.3
    g = _random(x.shape, dtype, 2)
    _close(pointwise.dropout_backward(g, 0.25, 7, 11), np.where(keep, g.astype(np.float32) / 0.75, 0), dtype)
    counter = np.array([100], np.uint64)  # a CUDA graph's device counter adds to the offset
    _close(pointwise.dropout(x, None, 0.25, 7, 11, counter), pointwise.reference_dropout(x, None, 0.25, 7, 111), dtype)
    pointwise.advance_counter(counter, 5)
    assert counter[0] == 105


@dtype_ids
@pytest.mark.parametrize("d, length, source, causal", [(16, 70, 70, True), (32, 5, 9, False), (64, 65, 40, True),
                                                       (128, 33, 70, False)])
def test_flash_attention_kernels_match_their_reference(launched, dtype, d, length, source, causal):
    q, k, v = (_random((2, n, d), dtype, seed) for seed, n in enumerate((length, source, source)))
    scale = d ** -0.5
    out, lse = flash_attention.forward(q, k, v, scale, causal)
    ref_out, ref_lse = flash_attention.reference_forward(q, k, v, scale, causal)
    _close(out, ref_out, dtype)
    np.testing.assert_allclose(lse, ref_lse, rtol=1e-5, atol=1e-5)
    g = _random(out.shape, dtype, 5)
    for got, want in zip(flash_attention.backward(g, q, k, v, out, lse, scale, causal),
                         flash_attention.reference_backward(g, q, k, v, scale, causal)):
        _close(got, want, dtype)
    assert launched == [flash_attention._name(n, dtype, d) for n in
                        ("flash_forward", "flash_backward_dq", "flash_backward_dkdv")]


def test_the_shared_memory_a_flash_kernel_asks_for_fits_a_hopper_block():
    for kernel in ("flash_forward", "flash_backward_dq", "flash_backward_dkdv"):
        for d in flash_attention.HEAD_DIMS:
            assert flash_attention.shared_bytes(kernel, d) <= 227 * 1024


# --- each reference against the op whose GPU path it is (NumPy, no kernel) ------------------------------------
def test_references_equal_the_ops_they_replace():
    x = _random((4, 6, 9), float32, scale=3)
    t = dg.tensor(x)
    _close(rows.reference_softmax(x), F.softmax(t, -1).numpy())
    _close(rows.reference_softmax(x, log=True), F.log_softmax(t, -1).numpy())
    weight, bias = _random(9, float32, 1), _random(9, float32, 2)
    _close(rows.reference_layer_norm(x, weight, bias, 9, 1e-5)[0],
           F.layer_norm(t, (9,), dg.tensor(weight), dg.tensor(bias)).numpy())
    _close(rows.reference_layer_norm(x, weight, None, 9, 1e-6, center=False)[0],
           F.rms_norm(t, (9,), dg.tensor(weight), 1e-6).numpy())
    for approximate, activation in (("none", "gelu"), ("tanh", "gelu_tanh")):
        _close(pointwise.reference_bias_act(x, None, activation), F.gelu(t, approximate=approximate).numpy())
    logits, target = x.reshape(-1, 9), np.arange(24) % 9
    loss = rows.reference_cross_entropy(logits, target, -100)[0]
    _close(loss.mean(), F.cross_entropy(dg.tensor(logits), dg.tensor(target)).numpy())
    q, k, v = (_random((2, 3, n, 16), float32, seed) for seed, n in enumerate((5, 7, 7)))
    for causal in (False, True):
        _close(flash_attention.reference_forward(q, k, v, 0.25, causal)[0],
               F.scaled_dot_product_attention(dg.tensor(q), dg.tensor(k), dg.tensor(v), is_causal=causal,
                                              scale=0.25).numpy())


# --- the ops through their kernel path, against PyTorch ------------------------------------------------------
OP_CASES = {
    "softmax": (lambda m, x: m.nn.functional.softmax(x, -1), [(4, 3, 50)], "softmax_forward<float, false>"),
    "log_softmax": (lambda m, x: m.nn.functional.log_softmax(x, dim=-1), [(4, 50)], "softmax_forward<float, true>"),
    "layer_norm": (lambda m, x, w, b: m.nn.functional.layer_norm(x, (40,), w, b), [(3, 5, 40), (40,), (40,)],
                   "layer_norm_forward<float, true>"),
    "rms_norm": (lambda m, x, w: m.nn.functional.rms_norm(x, (40,), w, 1e-6), [(6, 40), (40,)],
                 "layer_norm_forward<float, false>"),
    "group_norm": (lambda m, x: m.nn.functional.group_norm(x, 2, None, None), [(3, 4, 5)],
                   "layer_norm_forward<float, true>"),
    "gelu": (lambda m, x: m.nn.functional.gelu(x), [(5, 31)], "bias_act_forward<float, 2>"),
    "gelu_tanh": (lambda m, x: m.nn.functional.gelu(x, approximate="tanh"), [(5, 31)], "bias_act_forward<float, 3>"),
    "sdpa": (lambda m, q, k, v: m.nn.functional.scaled_dot_product_attention(q, k, v), [(2, 3, 9, 16), (2, 3, 11, 16),
                                                                                      (2, 3, 11, 16)],
             "flash_forward<float, 16, 64>"),
    "sdpa_causal": (lambda m, q, k, v: m.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True),
                    [(2, 70, 32), (2, 70, 32), (2, 70, 32)], "flash_forward<float, 32, 64>"),
}


@pytest.mark.parametrize("case", sorted(OP_CASES))
def test_ops_take_their_kernel_path_and_match_torch(launched, case):
    fn, shapes, kernel = OP_CASES[case]
    values = [_random(shape, float32, seed) for seed, shape in enumerate(shapes)]
    assert_matches_torch(fn, values, "cpu", rtol=2e-4, atol=2e-5)
    assert kernel in launched
    assert any("backward" in name for name in launched)  # the first-order backward ran a kernel too


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_takes_its_kernel_path_and_matches_torch(launched, reduction):
    logits = _random((7, 12), float32, scale=3)
    target = np.array([1, 0, -100, 11, 4, 4, 2])
    assert_matches_torch(lambda m, x, t: m.nn.functional.cross_entropy(x, t, reduction=reduction),
                         [logits, target], "cpu", rtol=1e-5, atol=1e-6)
    assert launched == ["cross_entropy_forward<float>", "cross_entropy_backward<float>"]


def test_attention_returning_weights_fuses_scale_mask_and_softmax(launched):
    from distgrad.ops.attention import attention
    q, k, v = (dg.tensor(_random((2, 6, 8), float32, seed)) for seed in range(3))
    out, weights = attention(q, k, v, is_causal=True, need_weights=True)
    assert "softmax_forward<float, false>" in launched
    with policy.emulated():
        policy.set_enabled(False)
        try:
            expected_out, expected_weights = attention(q, k, v, is_causal=True, need_weights=True)
        finally:
            policy.set_enabled(True)
    _close(out.numpy(), expected_out.numpy())
    _close(weights.numpy(), expected_weights.numpy())


def test_double_backward_through_a_kernel_path_uses_the_tensor_formulas(launched):
    torch = pytest.importorskip("torch")
    x = _random((3, 20), float32)

    def second(m, t):
        y = m.nn.functional.log_softmax(m.nn.functional.layer_norm(t, (20,)), -1)
        (g,) = m.autograd.grad((y * y).sum(), t, create_graph=True)
        return (g * g).sum()
    ours = dg.tensor(x, requires_grad=True)
    theirs = torch.tensor(x, requires_grad=True)
    second(dg, ours).backward()
    second(torch, theirs).backward()
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=2e-3, atol=2e-4)


def test_dropout_on_the_kernel_path_is_repeatable_and_backward_uses_the_same_mask(launched):
    x = dg.tensor(_random((40, 50), float32), requires_grad=True)
    dg.manual_seed(3)
    y = F.dropout(x, 0.4)
    dg.manual_seed(3)
    np.testing.assert_array_equal(F.dropout(x, 0.4).detach().numpy(), y.detach().numpy())
    assert not np.array_equal(F.dropout(x, 0.4).detach().numpy(), y.detach().numpy())  # the offset moved on
    y.sum().backward()
    kept = y.detach().numpy() != 0
    assert 0.3 < 1 - kept.mean() < 0.5
    np.testing.assert_allclose(x.grad.numpy(), kept / 0.6, rtol=1e-6)
    assert launched[:1] == ["dropout_forward<float>"] and "dropout_backward<float>" in launched


def test_dropout_add_and_bias_activation_fuse_what_they_compose(launched):
    torch = pytest.importorskip("torch")
    x, residual = dg.tensor(_random((8, 16), float32), requires_grad=True), dg.tensor(_random((8, 16), float32, 1))
    dg.manual_seed(5)
    out = fused.dropout_add(x, residual, 0.5)
    dg.manual_seed(5)
    np.testing.assert_allclose(out.detach().numpy(), F.dropout(x, 0.5).detach().numpy() + residual.numpy(), rtol=1e-6)
    for activation, reference in (("relu", torch.relu), ("gelu", torch.nn.functional.gelu)):
        assert_matches_torch(lambda m, a, b: fused.bias_activation(a, b, activation) if m is dg else reference(a + b),
                             [_random((6, 10), float32, 2), _random(10, float32, 3)], "cpu", rtol=1e-5, atol=1e-6)
    assert "bias_act_forward<float, 1>" in launched and "bias_act_backward<float, 2>" in launched


# --- the sources compile for Hopper ------------------------------------------------------------------------
@pytest.mark.parametrize("module", [pointwise, rows, flash_attention], ids=lambda m: m.FILE.filename)
def test_every_kernel_compiles_for_sm_90_with_nvcc(module, tmp_path):
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc is not installed")
    file = module.FILE
    source = tmp_path / file.filename
    # Taking each kernel's address instantiates every template that CuPy's name expressions name.
    source.write_text(file.text + "\nvoid* dg_instances[] = {" + ", ".join(f"(void*)&{n}" for n in file.names) + "};\n")
    # -Xcicc -O0: the front end's checks without NVVM's optimiser (minutes for the unrolled attention tiles)
    built = subprocess.run([nvcc, "-arch=sm_90", "-std=c++17", "--ptx", "-Xcicc", "-O0", str(source),
                            "-o", str(tmp_path / "k.ptx")], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-3000:]
    ptx = (tmp_path / "k.ptx").read_text()
    assert ptx.count(".entry") == len(file.names)


# --- the policy --------------------------------------------------------------------------------------------
def test_the_policy_sends_only_what_the_kernels_handle():
    x = np.zeros((4, 8), np.float32)
    assert not policy.on_kernel_path(x)  # host arrays, outside the emulator
    with policy.emulated():
        assert policy.on_kernel_path(x, None)
        assert not policy.on_kernel_path(x.astype(np.float64))
        assert not policy.on_kernel_path(x.T)  # not C-contiguous
        assert rows.softmax_applies(x, -1) and not rows.softmax_applies(x, 0)
        assert not rows.cross_entropy_applies(x, np.zeros(3, np.int64))
        assert not flash_attention.applies(x[None], x[None], x[None], None, 0.1, False)  # dropout
        assert not flash_attention.applies(np.zeros((1, 4, 24), np.float32), *[np.zeros((1, 4, 24), np.float32)] * 2,
                                           None, 0.0, False)  # head dim 24
        policy.set_enabled(False)
        try:
            assert not policy.on_kernel_path(x)
        finally:
            policy.set_enabled(True)


def test_the_emulator_refuses_arguments_of_the_wrong_size(launched):
    x = np.zeros((2, 8), np.float32)
    with pytest.raises(TypeError, match="argument 2"):
        rows.launch(rows.FILE, "softmax_forward<float, false>", 2, 32,
                    (x, x, np.int64(2), np.int32(8), np.float32(1), np.int32(0)))
