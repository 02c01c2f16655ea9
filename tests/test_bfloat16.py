"""bfloat16 as a first-class dtype: casts that round to nearest even as PyTorch's, creation, printing,
serialization, DLPack, and every op compared with PyTorch's bfloat16 results, gradients included."""
import io

import numpy as np
import pytest
from helpers import from_torch, host, to_torch

import distgrad as dg
import distgrad.nn.functional as F

torch = pytest.importorskip("torch")

BF16_EPS = 2.0 ** -8  # the spacing of bfloat16 numbers relative to their size (half of finfo.eps)


def _bits(values) -> np.ndarray:
    return np.asarray(values).view(np.uint16)


# --- casts -------------------------------------------------------------------------------------------
def _hard_float32s() -> np.ndarray:
    """Float32 values around every rounding case: ties to even up and down, just off ties, the largest
    finite values, subnormals, signed zeros, infinities and NaN, and random numbers over the range."""
    rng = np.random.default_rng(0)
    upper = rng.integers(0, 2 ** 16, 2000, dtype=np.uint32) << 16
    lower = np.array([0x8000, 0x7FFF, 0x8001, 0x0000, 0xFFFF, 0x0001], dtype=np.uint32)
    bits = (upper[:, None] | lower[None, :]).ravel()
    special = np.array([0.0, -0.0, np.inf, -np.inf, 3.3895e38, 3.4e38, 1e-40, -1e-45, 1.0, -2.5], dtype=np.float32)
    values = np.concatenate([bits.view(np.float32), special, rng.standard_normal(1000).astype(np.float32)])
    return values[~np.isnan(values)]


def test_float32_to_bfloat16_rounds_to_nearest_even_as_pytorch():
    values = _hard_float32s()
    ours = dg.tensor(values).to(dg.bfloat16)
    theirs = torch.from_numpy(values).to(torch.bfloat16)
    np.testing.assert_array_equal(_bits(host(ours)), _bits(from_torch(theirs)))


def test_nan_stays_nan_through_bfloat16():
    ours = dg.tensor([np.nan, -np.nan], dtype=dg.float32).bfloat16().float()
    assert np.isnan(host(ours)).all()


@pytest.mark.parametrize("source", ["float16", "float64", "int8", "int32", "int64", "uint8", "bool"])
def test_other_dtypes_to_bfloat16_and_back_as_pytorch(source):
    rng = np.random.default_rng(1)
    if source == "bool":
        values = rng.integers(0, 2, 500).astype(bool)
    elif source.startswith(("int", "uint")):
        info = np.iinfo(source)  # halved: a value that rounds past the dtype's range has no defined cast back
        values = rng.integers(max(info.min // 2, -2 ** 40), min(info.max // 2, 2 ** 40), 500).astype(source)
    else:
        values = (rng.standard_normal(500) * 10.0 ** rng.integers(-5, 5, 500)).astype(source)
    t = dg.tensor(values)
    bf = t.to(dg.bfloat16)
    tt = torch.from_numpy(values).to(torch.bfloat16)
    np.testing.assert_array_equal(_bits(host(bf)), _bits(from_torch(tt)))
    np.testing.assert_array_equal(host(bf.to(t.dtype)), tt.to(getattr(torch, source)).numpy())


def test_bfloat16_to_float32_is_exact():
    values = dg.tensor(_hard_float32s()).bfloat16()
    back = host(values.float())
    np.testing.assert_array_equal(back, from_torch(to_torch(values).float()))


def test_casting_methods_and_type_names():
    x = dg.ones(2)
    assert x.bfloat16().dtype == dg.bfloat16
    assert x.to(dg.bfloat16).dtype == dg.bfloat16
    assert x.type(dg.bfloat16).dtype == dg.bfloat16
    assert x.bfloat16().type() == "distgrad.BFloat16Tensor"
    assert x.type("torch.BFloat16Tensor").dtype == dg.bfloat16
    assert x.bfloat16().element_size() == 2


def test_the_gradient_of_a_cast_comes_back_in_the_sources_dtype():
    x = dg.tensor([1.0, 2.0], requires_grad=True)
    (x.bfloat16() * 3).sum().backward()
    assert x.grad.dtype == dg.float32 and x.grad.tolist() == [3.0, 3.0]


# --- creation, printing ---------------------------------------------------------------------------------
def test_creation_functions_make_bfloat16():
    bf = dg.bfloat16
    made = [dg.zeros(2, dtype=bf), dg.ones(2, 3, dtype=bf), dg.empty(2, dtype=bf), dg.full((2,), 1.5, dtype=bf),
            dg.eye(3, dtype=bf), dg.arange(0, 3, dtype=bf), dg.linspace(0, 1, 5, dtype=bf), dg.rand(3, dtype=bf),
            dg.randn(3, dtype=bf), dg.tensor([1.5, 2.0], dtype=bf), dg.zeros_like(dg.ones(2, dtype=bf)),
            dg.randn_like(dg.ones(2, dtype=bf)), dg.tensor(np.ones(2, dtype=bf))]
    assert all(t.dtype == bf for t in made)
    assert dg.linspace(0, 1, 5, dtype=bf).tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert dg.full((2,), 1.5, dtype=bf).tolist() == [1.5, 1.5]


def test_a_bfloat16_leaf_can_require_grad():
    x = dg.randn(3, dtype=dg.bfloat16, requires_grad=True)
    assert x.requires_grad and x.is_leaf


def test_repr_names_the_dtype_as_pytorch_does():
    t = dg.tensor([1.5, -0.25, 3.0], dtype=dg.bfloat16)
    assert repr(t) == "tensor([ 1.5 , -0.25,  3.  ], dtype=distgrad.bfloat16)"
    assert "dtype=distgrad.bfloat16" in repr(dg.randn(2, 2, dtype=dg.bfloat16, requires_grad=True))
    assert "dtype=distgrad.bfloat16" in repr(dg.zeros(0, dtype=dg.bfloat16))


def test_set_default_dtype_bfloat16_makes_python_floats_bfloat16():
    dg.set_default_dtype(dg.bfloat16)
    try:
        assert dg.tensor([1.5]).dtype == dg.bfloat16
        assert (dg.tensor([1, 2]) * 0.5).dtype == dg.bfloat16
        assert dg.finfo().dtype == "bfloat16"
    finally:
        dg.set_default_dtype(dg.float32)


# --- saving and exchanging --------------------------------------------------------------------------------
def test_save_and_load_keep_bfloat16_values_and_sharing(tmp_path):
    w = dg.randn(3, 4, dtype=dg.bfloat16, requires_grad=True)
    path = tmp_path / "bf16.pt"
    dg.save({"w": w, "tied": w, "array": host(w.detach()), "scalar": host(w.detach())[0, 0]}, path)
    loaded = dg.load(path)
    assert loaded["w"].dtype == dg.bfloat16 and loaded["w"].requires_grad
    np.testing.assert_array_equal(_bits(host(loaded["w"].detach())), _bits(host(w.detach())))
    assert loaded["tied"].array is loaded["w"].array
    assert loaded["array"].dtype == dg.bfloat16 and loaded["scalar"].dtype == dg.bfloat16


def test_a_module_in_bfloat16_saves_and_loads_its_state_dict():
    model = dg.nn.Linear(3, 2).to(dg.bfloat16)
    buffer = io.BytesIO()
    dg.save(model.state_dict(), buffer)
    buffer.seek(0)
    other = dg.nn.Linear(3, 2).to(dg.bfloat16)
    other.load_state_dict(dg.load(buffer))
    assert other.weight.dtype == dg.bfloat16
    np.testing.assert_array_equal(_bits(host(other.weight.detach())), _bits(host(model.weight.detach())))


def test_dlpack_shares_bfloat16_memory_with_pytorch_both_ways():
    ours = dg.randn(2, 3, dtype=dg.bfloat16)
    theirs = torch.from_dlpack(ours)
    assert theirs.dtype == torch.bfloat16
    np.testing.assert_array_equal(_bits(from_torch(theirs)), _bits(host(ours)))
    theirs[0, 0] = 7.0
    assert ours[0, 0].item() == 7.0
    source = torch.randn(4).bfloat16()
    back = dg.from_dlpack(source)
    assert back.dtype == dg.bfloat16
    source[1] = -3.0
    assert back[1].item() == -3.0


@pytest.mark.parametrize("max_version", [None, (1, 0)])
def test_dlpack_capsules_old_and_versioned_carry_the_bfloat16_type_code(max_version):
    ours = dg.tensor([1.0, 2.5], dtype=dg.bfloat16)
    capsule = ours.__dlpack__() if max_version is None else ours.__dlpack__(max_version=max_version)
    theirs = torch.utils.dlpack.from_dlpack(capsule)
    assert theirs.dtype == torch.bfloat16 and theirs.tolist() == [1.0, 2.5]


# --- ops against PyTorch's bfloat16 ----------------------------------------------------------------------
def _positive(x):
    return x.abs() + 0.5


UNARY = {
    "exp": lambda m, x: x.exp(), "log": lambda m, x: _positive(x).log(), "log1p": lambda m, x: _positive(x).log1p(),
    "expm1": lambda m, x: x.expm1(), "sqrt": lambda m, x: _positive(x).sqrt(),
    "rsqrt": lambda m, x: _positive(x).rsqrt(), "reciprocal": lambda m, x: _positive(x).reciprocal(),
    "sin": lambda m, x: x.sin(), "cos": lambda m, x: x.cos(), "tan": lambda m, x: (x * 0.5).tan(),
    "tanh": lambda m, x: x.tanh(), "sigmoid": lambda m, x: x.sigmoid(), "erf": lambda m, x: x.erf(),
    "abs": lambda m, x: x.abs(), "sign": lambda m, x: x.sign() * x, "relu": lambda m, x: x.relu(),
    "square": lambda m, x: x.square(), "neg": lambda m, x: -x, "pow 3": lambda m, x: x ** 3,
    "pow 0.5": lambda m, x: _positive(x) ** 0.5, "2 ** x": lambda m, x: 2 ** x, "1 / x": lambda m, x: 1 / _positive(x),
    "floor": lambda m, x: x.floor() + x, "round": lambda m, x: (x * 4).round() + x,
    "clamp": lambda m, x: x.clamp(-0.5, 0.5), "leaky_relu": lambda m, x: m.leaky_relu(x, 0.1),
    "gelu": lambda m, x: m.gelu(x), "gelu tanh": lambda m, x: m.gelu(x, approximate="tanh"),
    "silu": lambda m, x: m.silu(x), "softplus": lambda m, x: m.softplus(x),
    "softmax": lambda m, x: m.softmax(x, dim=1), "log_softmax": lambda m, x: m.log_softmax(x, dim=1),
    "sum": lambda m, x: x.sum(), "sum dim": lambda m, x: x.sum(1), "mean": lambda m, x: x.mean(),
    "mean dim": lambda m, x: x.mean(0, keepdim=True), "var": lambda m, x: x.var(1), "std": lambda m, x: x.std(),
    "prod": lambda m, x: _positive(x).prod(1), "amax": lambda m, x: x.amax(1), "max dim": lambda m, x: x.max(1)[0],
    "logsumexp": lambda m, x: x.logsumexp(1), "norm": lambda m, x: x.norm(), "cumsum": lambda m, x: x.cumsum(1),
    "cumprod": lambda m, x: (x * 0.1 + 1).cumprod(1), "sort": lambda m, x: x.sort(1)[0] * 2,
    "topk": lambda m, x: x.topk(3, 1)[0] * 2, "tril": lambda m, x: x[:, :4].tril(),
    "transpose reshape": lambda m, x: x.t().reshape(-1) * 2, "index": lambda m, x: x[1:, ::2] * 3,
    "layer_norm": lambda m, x: m.layer_norm(x, (16,)),
    "mse_loss": lambda m, x: m.mse_loss(x, x.detach() * 0.5),
    "l1_loss": lambda m, x: m.l1_loss(x, x.detach() * 0.5),
    "smooth_l1_loss": lambda m, x: m.smooth_l1_loss(x, x.detach() * 0.5),
    "bce_with_logits": lambda m, x: m.binary_cross_entropy_with_logits(x, (x.detach() > 0).to(x.dtype)),
}


def _library(lib):
    """The namespace an op table uses: ``m.softmax`` etc. from distgrad.nn.functional or torch's."""
    return F if lib is dg else torch.nn.functional


def _compare_op(fn, inputs, device="cpu", rtol=2 * BF16_EPS, grad_rtol=8 * BF16_EPS):
    """Runs ``fn`` on bfloat16 leaves in distgrad and torch: equal dtypes, values and gradients within
    bfloat16 tolerances (relative to each result's largest entry: both round at every step)."""
    ours = [dg.tensor(v, dtype=dg.bfloat16, device=device, requires_grad=np.issubdtype(v.dtype, np.floating))
            for v in inputs]
    theirs = [to_torch(t).requires_grad_(t.requires_grad) for t in ours]
    out, t_out = fn(_library(dg), *ours), fn(_library(torch), *theirs)
    assert str(t_out.dtype) == f"torch.{out.dtype.name}"
    _close(host(out), from_torch(t_out), rtol, "forward")
    weights = np.random.default_rng(5).uniform(0.5, 1.5, out.shape)
    (out * dg.tensor(weights, dtype=out.dtype, device=device)).sum().backward()
    (t_out * torch.from_numpy(weights).to(t_out.dtype)).sum().backward()
    for i, (a, ta) in enumerate(zip(ours, theirs)):
        if ta.grad is not None:
            assert a.grad.dtype == dg.bfloat16, f"grad {i} is {a.grad.dtype}"
            _close(host(a.grad), from_torch(ta.grad), grad_rtol, f"grad {i}")


def _close(ours, theirs, rtol, what):
    ours, theirs = ours.astype(np.float64), theirs.astype(np.float64)
    scale = max(float(np.abs(theirs).max(initial=0)), 1e-3)
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=rtol * scale, err_msg=what)


@pytest.mark.parametrize("op", list(UNARY))
def test_unary_ops_in_bfloat16_match_pytorch(op, device):
    x = np.random.default_rng(2).standard_normal((4, 16))
    _compare_op(lambda m, a: UNARY[op](m, a), [x], device)


BINARY = {
    "add": lambda m, a, b: a + b, "sub": lambda m, a, b: a - b, "mul": lambda m, a, b: a * b,
    "div": lambda m, a, b: a / _positive(b), "pow": lambda m, a, b: _positive(a) ** b,
    "maximum": lambda m, a, b: a.maximum(b), "minimum": lambda m, a, b: a.minimum(b),
    "where": lambda m, a, b: (dg if m is F else torch).where(a > b, a, b * 2),
    "remainder": lambda m, a, b: a % _positive(b), "matmul": lambda m, a, b: a @ b.t(),
    "linear": lambda m, a, b: m.linear(a, b, b[:, 0]), "bmm": lambda m, a, b: a.reshape(2, 2, 16) @ b.reshape(2, 16, 2),
    "batched @ 2-D": lambda m, a, b: a.reshape(2, 2, 16) @ b.t(), "dot": lambda m, a, b: a[0].dot(b[0]),
    "outer": lambda m, a, b: a[0].outer(b[1]), "broadcast mul": lambda m, a, b: a * b[:1],
    "einsum": lambda m, a, b: (dg if m is F else torch).einsum("ij,kj->ik", a, b),
    "lerp": lambda m, a, b: a.lerp(b, 0.3), "addmm": lambda m, a, b: (dg if m is F else torch).addmm(a[:, :4], a, b.t()),
}


@pytest.mark.parametrize("op", list(BINARY))
def test_binary_ops_and_products_in_bfloat16_match_pytorch(op, device):
    rng = np.random.default_rng(3)
    _compare_op(lambda m, a, b: BINARY[op](m, a, b), [rng.standard_normal((4, 16)), rng.standard_normal((4, 16))],
                device)


def test_cdist_in_bfloat16_is_its_float32_result_rounded():
    # torch has no bfloat16 cdist on the CPU: the oracle is float32, rounded
    x = dg.randn(5, 64, dtype=dg.bfloat16)
    ours = host(dg.cdist(x, x[:2] * 0.5)).astype(np.float64)
    expected = torch.cdist(to_torch(x).float(), to_torch(x[:2] * 0.5).float()).numpy()
    np.testing.assert_allclose(ours, expected, rtol=2 * BF16_EPS, atol=2 * BF16_EPS * expected.max())


def test_matrix_products_accumulate_in_float32(device):
    # 4096 ones: a bfloat16 accumulator would stop at 256; float32's reaches 4096, which bfloat16 holds
    ones = dg.ones(1, 4096, dtype=dg.bfloat16, device=device)
    assert (ones @ ones.t()).item() == 4096.0
    assert ones.sum().item() == 4096.0


NETWORK = {
    "conv2d": (lambda m, x, w: m.conv2d(x, w, padding=1), [(2, 3, 6, 6), (4, 3, 3, 3)]),
    "conv2d stride groups": (lambda m, x, w: m.conv2d(x, w[:, :1], stride=2, groups=3), [(2, 3, 6, 6), (3, 3, 3, 3)]),
    "max_pool2d": (lambda m, x: m.max_pool2d(x, 2), [(2, 3, 6, 6)]),
    "avg_pool2d": (lambda m, x: m.avg_pool2d(x, 3, stride=1, padding=1), [(2, 3, 6, 6)]),
    "adaptive_avg_pool2d": (lambda m, x: m.adaptive_avg_pool2d(x, (2, 3)), [(2, 3, 6, 6)]),
    "batch_norm": (lambda m, x, w: m.batch_norm(x, None, None, w[0, 0, 0], w[0, 0, 1], training=True),
                   [(4, 3, 5, 5), (1, 1, 2, 3)]),
    "group_norm": (lambda m, x, w: m.group_norm(x, 3, w[0, 0, 0], w[0, 0, 1]), [(2, 6, 4, 4), (1, 1, 2, 6)]),
    "layer_norm affine": (lambda m, x, w: m.layer_norm(x, (8,), w[0], w[1]), [(4, 8), (2, 8)]),
    "cross_entropy": (lambda m, x: m.cross_entropy(x, x.detach().argmin(1), label_smoothing=0.1), [(8, 5)]),
    "nll_loss": (lambda m, x: m.nll_loss(m.log_softmax(x, 1), x.detach().argmax(1)), [(8, 5)]),
    "embedding": (lambda m, w: m.embedding(dg.tensor([[0, 2], [2, 3]], device=w.device) if m is F
                                           else torch.tensor([[0, 2], [2, 3]]), w), [(5, 4)]),
    "cat stack": (lambda m, x: (dg if m is F else torch).cat([x, (dg if m is F else torch).stack([x[0]] * 2)]),
                  [(3, 4)]),
    "dropout p=0": (lambda m, x: m.dropout(x, 0.0, training=True), [(3, 4)]),
}


@pytest.mark.parametrize("op", list(NETWORK))
def test_network_ops_in_bfloat16_match_pytorch(op, device):
    fn, shapes = NETWORK[op]
    rng = np.random.default_rng(4)
    _compare_op(fn, [rng.standard_normal(s) for s in shapes], device)


def _train(dtype, steps: int = 30) -> list:
    dg.manual_seed(0)
    model = dg.nn.Sequential(dg.nn.Linear(8, 16), dg.nn.ReLU(), dg.nn.Linear(16, 3)).to(dtype)
    optimizer = dg.optim.SGD(model.parameters(), lr=0.5)
    x = dg.randn(64, 8).to(dtype)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert loss.dtype == dtype
    assert all(p.grad.dtype == dtype and p.dtype == dtype for p in model.parameters())
    return losses


def test_a_bfloat16_model_trains_like_its_float32_twin():
    bf16, fp32 = _train(dg.bfloat16), _train(dg.float32)
    assert bf16[-1] < 0.6 * bf16[0]
    assert abs(bf16[-1] - fp32[-1]) < 0.05


def test_bfloat16_with_other_dtypes_promotes_as_pytorch():
    bf = dg.ones(2, dtype=dg.bfloat16)
    assert (bf + dg.ones(2, dtype=dg.float16)).dtype == dg.float32
    assert (bf + dg.ones(2, dtype=dg.float64)).dtype == dg.float64
    assert (bf * dg.tensor([1, 2])).dtype == dg.bfloat16
    assert (bf + 2.5).dtype == dg.bfloat16
    assert (bf + dg.tensor(2.5, dtype=dg.float64)).dtype == dg.bfloat16
    assert (dg.tensor([1, 2]) + dg.tensor(1.0, dtype=dg.bfloat16)).dtype == dg.bfloat16


# --- the GPU path, routed through a stand-in for CuPy (no GPU here) -------------------------------------
class _CupyStandIn:
    """Records the products the GPU path asks of CuPy; answers as cuBLAS would (float32 sums, rounded)."""

    add = np.add

    def __init__(self):
        self.calls = []

    def matmul(self, a, b, out=None):
        self.calls.append((a.dtype.name, a.shape, b.shape))
        result = np.matmul(a.astype(np.float32), b.astype(np.float32)).astype(a.dtype)
        if out is not None:
            out[...] = result
            return out
        return result


@pytest.fixture
def cupy_stand_in(monkeypatch):
    from distgrad import backend

    stand_in = _CupyStandIn()
    monkeypatch.setattr(backend, "is_device_array", lambda a: True)
    monkeypatch.setattr(backend, "array_module", lambda a: stand_in)
    monkeypatch.setattr(backend, "_cupy", stand_in)
    return stand_in


def test_gpu_bfloat16_products_reach_cublas_as_2d_gemms_or_compute_in_float32(cupy_stand_in):
    from distgrad import backend

    rng = np.random.default_rng(6)
    a2, b2 = rng.standard_normal((3, 4)).astype(dg.bfloat16), rng.standard_normal((4, 5)).astype(dg.bfloat16)
    a3, b3 = rng.standard_normal((2, 3, 4)).astype(dg.bfloat16), rng.standard_normal((2, 4, 5)).astype(dg.bfloat16)
    results = [backend.matmul(a2, b2), backend.matmul(a3, b2), backend.matmul(a3, b3)]
    assert cupy_stand_in.calls == [("bfloat16", (3, 4), (4, 5)),  # a GEMM of bfloat16 matrices
                                   ("bfloat16", (6, 4), (4, 5)),  # batches folded into the rows of one GEMM
                                   ("float32", (2, 3, 4), (2, 4, 5))]  # batched: CuPy 14.0-14.2 has no bf16 path
    expected = [np.matmul(x.astype(np.float32), y.astype(np.float32)) for x, y in [(a2, b2), (a3, b2), (a3, b3)]]
    for got, want in zip(results, expected):
        assert got.dtype == dg.bfloat16 and got.shape == want.shape
        np.testing.assert_allclose(got.astype(np.float32), want, rtol=2 * BF16_EPS, atol=1e-6)


def test_gpu_float16_products_go_to_cupy_unchanged(cupy_stand_in):
    from distgrad import backend

    a = np.ones((2, 3, 4), np.float16)
    backend.matmul(a, a.transpose(0, 2, 1))
    assert cupy_stand_in.calls == [("float16", (2, 3, 4), (2, 4, 3))]


def test_gpu_bfloat16_scatter_add_sums_in_float32(cupy_stand_in):
    from distgrad import backend

    target = np.zeros(2, dg.bfloat16)
    backend.scatter_add(target, np.zeros(300, np.int64), np.ones(300, dg.bfloat16))
    assert target.tolist() == [300, 0]  # a bfloat16 running sum would stop at 256
