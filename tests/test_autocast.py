"""``autocast``: PyTorch's op policy, op by op, against ``torch.autocast`` as the oracle.

The CPU policy is checked by running every op distgrad has under ``autocast("cpu", bfloat16)`` in both
libraries (output dtypes, values within bfloat16's precision, and the dtypes of the inputs' gradients).
The CUDA policy is checked as data (the installed PyTorch's registered ops and its documented lists),
and its dispatch runs on the CPU with a stand-in that makes the hook see CPU tensors as CUDA ones; the
real CUDA variant runs where there is a GPU.
"""
import re
import threading
import warnings
from dataclasses import dataclass, field

import numpy as np
import pytest

import distgrad as dg
import distgrad.nn.functional as F
from distgrad.amp import policy
from distgrad.amp.autocast_mode import state
from distgrad.ops import autocasting
from helpers import host, to_torch

torch = pytest.importorskip("torch")


# --- the cases: every op the hook knows, and some it must leave alone ------------------------------------
@dataclass
class A:
    """An input: a ``dtype`` array of ``shape`` (normal values, or ``kind`` "unit" in (0, 1), "positive"),
    or int64 ``values``."""
    shape: tuple = ()
    dtype: str = "float32"
    kind: str = "normal"
    values: list = field(default=None)
    grad: bool = True  # a floating input that requires grad (False: a target)

    def array(self, rng):
        if self.values is not None:
            return np.array(self.values, dtype=np.int64)
        x = rng.standard_normal(self.shape)
        x = {"normal": x, "unit": 1 / (1 + np.exp(-x)), "positive": np.abs(x) + 0.5}[self.kind]
        return x.astype(dg.bfloat16 if self.dtype == "bfloat16" else self.dtype)


def f32(*shape, kind="normal", grad=True):
    return A(shape, "float32", kind, grad=grad)


def bf16(*shape, kind="normal", grad=True):
    return A(shape, "bfloat16", kind, grad=grad)


def f16(*shape):
    return A(shape, "float16")


def f64(*shape):
    return A(shape, "float64")


def idx(values):
    return A(values=values)


@dataclass
class Case:
    op: str  # the op's name in distgrad/amp/policy.py
    fn: object  # fn(lib, *inputs) with lib distgrad or torch
    inputs: list
    variant: str = ""
    cuda: str = None  # for a composite of listed ops: the dtype of its outputs under CUDA float16 autocast

    def __str__(self):
        return self.op + (f"/{self.variant}" if self.variant else "")


def _F(lib):
    return lib.nn.functional


def _cells(lib, name, x, h, c, w_ih, w_hh, b_ih, b_hh):
    cell = getattr(lib, name)
    return cell(x, (h, c), w_ih, w_hh, b_ih, b_hh) if name == "lstm_cell" else cell(x, h, w_ih, w_hh, b_ih, b_hh)


CELL_INPUTS = {"lstm_cell": 16, "gru_cell": 12, "rnn_tanh_cell": 4, "rnn_relu_cell": 4}

CASES = [
    Case("linear", lambda L, x, w, b: _F(L).linear(x, w, b), [f32(2, 3, 4), f32(5, 4), f32(5)]),
    Case("linear", lambda L, x, w, b: _F(L).linear(x, w, b), [bf16(2, 3, 4), f32(5, 4), f32(5)], "bfloat16 input"),
    Case("matmul", lambda L, a, b: L.matmul(a, b), [f32(2, 3, 4), f32(4, 5)]),
    Case("matmul", lambda L, a, b: L.matmul(a, b), [f32(4), f32(4)], "vectors"),
    Case("matmul", lambda L, a, b: L.matmul(a, b), [f64(3, 4), f64(4, 2)], "float64 is never cast"),
    Case("matmul", lambda L, a, b: a @ b, [f32(3, 4), f32(4, 2)], "operator"),
    Case("mm", lambda L, a, b: L.mm(a, b), [f32(3, 4), f32(4, 2)]),
    Case("mm", lambda L, a, b: L.mm(a, b), [f16(3, 4), f16(4, 2)], "float16 to bfloat16"),
    Case("bmm", lambda L, a, b: L.bmm(a, b), [f32(2, 3, 4), f32(2, 4, 5)]),
    Case("baddbmm", lambda L, i, a, b: L.baddbmm(i, a, b), [f32(2, 3, 5), f32(2, 3, 4), f32(2, 4, 5)]),
    Case("addmm", lambda L, i, a, b: L.addmm(i, a, b), [f32(3, 5), f32(3, 4), f32(4, 5)]),
    Case("addmm", lambda L, i, a, b: i.addmm(a, b), [f32(3, 5), f32(3, 4), f32(4, 5)], "method"),
    Case("addbmm", lambda L, i, a, b: L.addbmm(i, a, b), [f32(3, 5), f32(2, 3, 4), f32(2, 4, 5)]),
    Case("addmv", lambda L, i, a, v: L.addmv(i, a, v), [f32(3), f32(3, 4), f32(4)]),
    Case("mv", lambda L, a, v: L.mv(a, v), [f32(3, 4), f32(4)]),
    Case("dot", lambda L, a, b: L.dot(a, b), [f32(4), f32(4)]),
    Case("outer", lambda L, a, b: L.outer(a, b), [f32(3), f32(4)]),
    Case("einsum", lambda L, a, b: L.einsum("ij,jk->ik", a, b), [f32(3, 4), f32(4, 5)]),
    Case("conv2d", lambda L, x, w, b: _F(L).conv2d(x, w, b, padding=1), [f32(2, 3, 5, 5), f32(4, 3, 3, 3), f32(4)]),
    Case("conv_transpose2d", lambda L, x, w, b: _F(L).conv_transpose2d(x, w, b, stride=2),
         [f32(2, 3, 4, 4), f32(3, 2, 3, 3), f32(2)]),
    Case("scaled_dot_product_attention", lambda L, q, k, v, m: _F(L).scaled_dot_product_attention(q, k, v, m),
         [f32(2, 2, 3, 4), f32(2, 2, 3, 4), f32(2, 2, 3, 4), f32(3, 3)]),
    Case("scaled_dot_product_attention", lambda L, q, k, v: _F(L).scaled_dot_product_attention(q, k, v, is_causal=True),
         [f32(2, 2, 3, 4), f32(2, 2, 3, 4), f32(2, 2, 3, 4)], "causal"),
    *[Case(name, lambda L, *t, name=name: _cells(L, name, *t),
           [f32(2, 3), f32(2, 4), f32(2, 4), f32(n, 3), f32(n, 4), f32(n), f32(n)])
      for name, n in CELL_INPUTS.items()],
    Case("softmax", lambda L, x: _F(L).softmax(x, -1), [f32(3, 4)]),
    Case("softmax", lambda L, x: x.softmax(-1), [bf16(3, 4)], "bfloat16 method"),
    Case("log_softmax", lambda L, x: _F(L).log_softmax(x, -1), [bf16(3, 4)]),
    Case("softmin", lambda L, x: _F(L).softmin(x, -1), [bf16(3, 4)]),
    Case("cross_entropy_loss", lambda L, x, t: _F(L).cross_entropy(x, t), [bf16(3, 5), idx([0, 4, 2])]),
    Case("cross_entropy_loss", lambda L, x, t: _F(L).cross_entropy(x, t, label_smoothing=0.1),
         [f32(3, 5), idx([0, 4, 2])], "float32"),
    Case("nll_loss", lambda L, x, t: _F(L).nll_loss(x, t), [bf16(3, 5), idx([0, 4, 2])]),
    Case("mse_loss", lambda L, x, y: _F(L).mse_loss(x, y), [bf16(3, 4), bf16(3, 4)]),
    Case("l1_loss", lambda L, x, y: _F(L).l1_loss(x, y), [bf16(3, 4), bf16(3, 4)]),
    Case("smooth_l1_loss", lambda L, x, y: _F(L).smooth_l1_loss(x, y), [bf16(3, 4), bf16(3, 4)]),
    Case("binary_cross_entropy", lambda L, x, y: _F(L).binary_cross_entropy(x, y),
         [bf16(3, 4, kind="unit"), bf16(3, 4, kind="unit")]),
    Case("binary_cross_entropy_with_logits", lambda L, x, y: _F(L).binary_cross_entropy_with_logits(x, y),
         [bf16(3, 4), bf16(3, 4, kind="unit")]),
    Case("layer_norm", lambda L, x, w, b: _F(L).layer_norm(x, (4,), w, b), [f32(2, 3, 4), f32(4), f32(4)]),
    Case("layer_norm", lambda L, x, w, b: _F(L).layer_norm(x, (4,), w, b), [bf16(2, 3, 4), bf16(4), bf16(4)],
         "bfloat16"),
    Case("group_norm", lambda L, x, w, b: _F(L).group_norm(x, 2, w, b), [bf16(2, 4, 3), bf16(4), bf16(4)]),
    Case("rms_norm", lambda L, x, w: _F(L).rms_norm(x, (4,), w), [bf16(2, 3, 4), bf16(4)]),
    Case("exp", lambda L, x: L.exp(x), [bf16(5)]),
    Case("exp", lambda L, x: x.exp(), [f32(5)], "method"),
    Case("log", lambda L, x: L.log(x), [bf16(5, kind="positive")]),
    Case("log1p", lambda L, x: L.log1p(x), [bf16(5, kind="positive")]),
    Case("expm1", lambda L, x: L.expm1(x), [bf16(5)]),
    Case("rsqrt", lambda L, x: L.rsqrt(x), [bf16(5, kind="positive")]),
    Case("reciprocal", lambda L, x: L.reciprocal(x), [bf16(5, kind="positive")]),
    Case("tan", lambda L, x: L.tan(x), [bf16(5)]),
    Case("softplus", lambda L, x: _F(L).softplus(x), [bf16(5)]),
    Case("pow", lambda L, x: x ** 2, [bf16(5)]),
    Case("pow", lambda L, x, y: L.pow(x, y), [bf16(5, kind="positive"), bf16(5)], "tensors"),
    Case("pow", lambda L, x: 2 ** x, [bf16(5)], "number base"),
    Case("__rtruediv__", lambda L, x: 2 / x, [bf16(5, kind="positive")]),
    Case("sum", lambda L, x: x.sum(), [bf16(3, 4)]),
    Case("sum", lambda L, x: L.sum(x, 1), [f32(3, 4)], "float32"),
    Case("prod", lambda L, x: L.prod(x), [bf16(3, kind="positive")]),
    Case("logsumexp", lambda L, x: L.logsumexp(x, 1), [bf16(3, 4)]),
    Case("norm", lambda L, x: x.norm(), [bf16(3, 4)]),
    Case("cumsum", lambda L, x: L.cumsum(x, 0), [bf16(3, 4)]),
    Case("cumprod", lambda L, x: L.cumprod(x, 0), [bf16(3, 4)]),
    Case("cdist", lambda L, a, b: L.cdist(a, b), [bf16(3, 4), bf16(2, 4)]),
    Case("cat", lambda L, a, b: L.cat([a, b]), [f32(2, 3), bf16(2, 3)]),
    Case("cat", lambda L, a, b: L.cat((a, b), 1), [bf16(2, 3), bf16(2, 3)], "bfloat16"),
    Case("cat", lambda L, a, b: L.cat([a, b]), [f64(2, 3), bf16(2, 3)], "float64 is not cast"),
    Case("stack", lambda L, a, b: L.stack([a, b]), [bf16(2, 3), f32(2, 3)]),
    Case("index_copy", lambda L, x, i, s: x.index_copy(0, i, s), [f32(4, 3), idx([2, 0]), bf16(2, 3)]),
    Case("scatter_add", lambda L, x, i, s: L.scatter_add(x, 0, i, s), [bf16(3, 4), idx([[0, 1, 2, 0]]), bf16(1, 4)]),
    Case("conv1d", lambda L, x, w, b: _F(L).conv1d(x, w, b, padding=1), [f32(2, 3, 6), f32(4, 3, 3), f32(4)]),
    Case("conv_transpose1d", lambda L, x, w, b: _F(L).conv_transpose1d(x, w, b, stride=2),
         [f32(2, 3, 5), f32(3, 2, 3), f32(2)]),
    Case("prelu", lambda L, x, w: _F(L).prelu(x, w), [f32(2, 3, 4), f32(3)]),
    Case("bilinear", lambda L, a, b, w, c: _F(L).bilinear(a, b, w, c), [f32(2, 3), f32(2, 4), f32(5, 3, 4), f32(5)]),
    Case("huber_loss", lambda L, x, y: _F(L).huber_loss(x, y), [bf16(3, 4), bf16(3, 4)]),
    Case("kl_div", lambda L, x, y: _F(L).kl_div(x, y, reduction="batchmean"),
         [bf16(3, 4), bf16(3, 4, kind="unit")]),
    Case("poisson_nll_loss", lambda L, x, y: _F(L).poisson_nll_loss(x, y), [bf16(3, 4), bf16(3, 4, kind="positive")]),
    Case("cosine_embedding_loss", lambda L, a, b, t: _F(L).cosine_embedding_loss(a, b, t),
         [bf16(3, 4), bf16(3, 4), idx([1, -1, 1])]),
    Case("margin_ranking_loss", lambda L, a, b, t: _F(L).margin_ranking_loss(a, b, t),
         [bf16(3), bf16(3), bf16(3, grad=False)]),
    Case("hinge_embedding_loss", lambda L, x, t: _F(L).hinge_embedding_loss(x, t), [bf16(3, 4), idx([[1, -1, 1, -1]] * 3)]),
    Case("soft_margin_loss", lambda L, x, t: _F(L).soft_margin_loss(x, t), [bf16(3, 4), bf16(3, 4, grad=False)]),
    Case("triplet_margin_loss", lambda L, a, p, n: _F(L).triplet_margin_loss(a, p, n), [bf16(3, 4), bf16(3, 4), bf16(3, 4)]),
    Case("cosine_similarity", lambda L, a, b: _F(L).cosine_similarity(a, b), [bf16(3, 4), bf16(3, 4)]),
    Case("interpolate", lambda L, x: _F(L).interpolate(x, scale_factor=2, mode="bilinear"), [f32(1, 2, 3, 3)]),
    Case("interpolate", lambda L, x: _F(L).interpolate(x, scale_factor=2), [bf16(1, 2, 3, 3)], "nearest"),
    Case("normalize", lambda L, x: _F(L).normalize(x), [bf16(3, 4)], cuda="float32"),
    Case("pairwise_distance", lambda L, a, b: _F(L).pairwise_distance(a, b), [bf16(3, 4), bf16(3, 4)], cuda="float32"),
    Case("gaussian_nll_loss", lambda L, x, y, v: _F(L).gaussian_nll_loss(x, y, v),
         [f32(3, 4), f32(3, 4), f32(3, 4, kind="positive")]),
    Case("multilabel_soft_margin_loss", lambda L, x, y: _F(L).multilabel_soft_margin_loss(x, y),
         [f32(3, 4), f32(3, 4, kind="unit", grad=False)]),
    Case("instance_norm", lambda L, x: _F(L).instance_norm(x), [bf16(2, 3, 5)]),
    Case("batch_norm", lambda L, x, w, b: _F(L).batch_norm(x, None, None, w, b, training=True),
         [f32(4, 3), f32(3), f32(3)]),
    Case("avg_pool2d", lambda L, x: _F(L).avg_pool2d(x, 2), [f32(1, 2, 4, 4)]),
    Case("max_pool2d", lambda L, x: _F(L).max_pool2d(x, 2), [bf16(1, 2, 4, 4)]),
    Case("adaptive_avg_pool2d", lambda L, x: _F(L).adaptive_avg_pool2d(x, 3), [f32(1, 2, 5, 5)]),
    Case("adaptive_max_pool2d", lambda L, x: _F(L).adaptive_max_pool2d(x, 2), [f32(1, 2, 5, 5)]),
    Case("embedding", lambda L, i, w: _F(L).embedding(i, w), [idx([0, 2]), f32(3, 4)]),
    Case("gelu", lambda L, x: _F(L).gelu(x), [bf16(5)]),
    Case("multi_head_attention_forward", lambda L, q, w, b, ow, ob: _F(L).multi_head_attention_forward(
        q, q, q, 8, 2, w, b, None, None, False, 0.0, ow, ob, training=False)[0],
        [f32(5, 2, 8), f32(24, 8), f32(24), f32(8, 8), f32(8)], cuda="float16"),
]


def _inputs(case: Case):
    """The case's inputs for distgrad and for torch: floating ones are leaves that require grad."""
    rng = np.random.default_rng(7)
    ours, theirs = [], []
    for spec in case.inputs:
        t = dg.tensor(spec.array(rng))
        t_torch = to_torch(t)
        if t.dtype in dg.dtypes.FLOATING and spec.grad:
            t.requires_grad_()
            t_torch.requires_grad_()
        ours.append(t)
        theirs.append(t_torch)
    return ours, theirs


def _outputs(result) -> list:
    return list(result) if isinstance(result, (tuple, list)) else [result]


def _name(dtype) -> str:
    return str(dtype).replace("torch.", "")


def _backward(outputs, lib) -> None:
    """Backward of the sum of the floating outputs (outside autocast, as a training loop does)."""
    floats = [o.float().sum() for o in outputs if o.requires_grad]
    if floats:
        sum(floats[1:], floats[0]).backward()


@pytest.mark.parametrize("case", CASES, ids=str)
def test_cpu_autocast_gives_pytorchs_dtypes_values_and_gradient_dtypes(case):
    ours, theirs = _inputs(case)
    with dg.autocast("cpu", dtype=dg.bfloat16):
        out = _outputs(case.fn(dg, *ours))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected = _outputs(case.fn(torch, *theirs))
    assert [o.dtype.name for o in out] == [_name(e.dtype) for e in expected]
    for o, e in zip(out, expected):
        want = e.detach().double().numpy()
        np.testing.assert_allclose(host(o.detach()).astype(np.float64), want, rtol=5e-2,
                                   atol=5e-2 * max(1.0, np.abs(want).max()))
    _backward(out, dg)
    _backward(expected, torch)
    assert [None if t.grad is None else t.grad.dtype.name for t in ours] == \
        [None if t.grad is None else _name(t.grad.dtype) for t in theirs]


RECURRENT_LAYERS = [("LSTM", {}), ("GRU", {}), ("RNN", {}), ("RNN", {"nonlinearity": "relu"}),
                    ("LSTM", {"num_layers": 2, "bidirectional": True})]


@pytest.mark.parametrize("layer,options", RECURRENT_LAYERS, ids=lambda v: str(v))
def test_recurrent_layers_give_pytorchs_dtypes_on_the_cpu(layer, options):
    def dtypes(lib, region):
        lib.manual_seed(0)
        module = getattr(lib.nn, layer)(3, 4, **options)
        with region:
            out, state_ = module(lib.randn(2, 5, 3))
        out.float().sum().backward()
        states = state_ if isinstance(state_, tuple) else (state_,)
        return [_name(t.dtype) for t in (out, *states)], {_name(p.grad.dtype) for p in module.parameters()}

    assert dtypes(dg, dg.autocast("cpu")) == dtypes(torch, torch.autocast("cpu", dtype=torch.bfloat16))


def _decorated_ops() -> set:
    """The policy names of every function that carries the autocast hook: ops, functional, Tensor methods."""
    found = set()
    for space in (vars(dg.ops), vars(F), vars(dg.Tensor)):
        found |= {fn.autocast_name for fn in space.values() if hasattr(fn, "autocast_name")}
    return found


def test_every_op_with_the_hook_and_every_cpu_op_distgrad_has_is_a_case():
    cased = {case.op for case in CASES}
    assert _decorated_ops() - cased == set()
    assert {op for op in policy.POLICY["cpu"] if op in _decorated_ops()} <= cased


# --- the policy as data ---------------------------------------------------------------------------------
def _registered_by_torch(key: str) -> set:
    names = torch._C._dispatch_get_all_op_names()
    return {n.split("::")[1].split(".")[0] for n in names if torch._C._dispatch_has_kernel_for_dispatch_key(n, key)}


@pytest.mark.parametrize("device_type,key", [("cpu", "AutocastCPU"), ("cuda", "AutocastCUDA")])
def test_the_registered_lists_are_the_installed_pytorchs(device_type, key):
    ours = {op for names in policy.REGISTERED[device_type].values() for op in names.split()}
    assert ours == _registered_by_torch(key)


# PyTorch's documented CUDA lists ("Autocast Op Reference", docs/source/amp.md), by their public names.
DOCUMENTED_CUDA = {
    "lower": """__matmul__ addbmm addmm addmv addr baddbmm bmm multi_dot conv1d conv2d conv3d conv_transpose1d
        conv_transpose2d conv_transpose3d GRUCell linear LSTMCell matmul mm mv prelu RNNCell""",
    "fp32": """__pow__ __rdiv__ __rpow__ __rtruediv__ acos asin binary_cross_entropy_with_logits cosh
        cosine_embedding_loss cdist cosine_similarity cross_entropy cumprod cumsum dist erfinv exp expm1 group_norm
        hinge_embedding_loss kl_div l1_loss layer_norm log log_softmax log10 log1p log2 margin_ranking_loss mse_loss
        multilabel_margin_loss multi_margin_loss nll_loss norm normalize pdist poisson_nll_loss pow prod reciprocal
        rsqrt sinh smooth_l1_loss soft_margin_loss softmax softmin softplus sum renorm tan triplet_margin_loss""",
    "promote": "addcdiv addcmul atan2 bilinear cross dot grid_sample index_put scatter_add tensordot",
}
PUBLIC_TO_POLICY = {"__matmul__": "matmul", "multi_dot": "linalg_multi_dot", "GRUCell": "gru_cell",
                    "LSTMCell": "lstm_cell", "RNNCell": "rnn_tanh_cell", "__pow__": "pow", "__rpow__": "pow",
                    "__rdiv__": "__rtruediv__", "cross_entropy": "cross_entropy_loss", "grid_sample": "grid_sampler"}
FLOAT32_CATEGORIES = {policy.FP32, policy.FP32_SET_OPT_DTYPE, policy.FP32_APPEND_DTYPE}


@pytest.mark.parametrize("documented", sorted(DOCUMENTED_CUDA))
def test_the_cuda_policy_has_pytorchs_documented_lists(documented):
    wanted = {"lower": {policy.LOWER}, "fp32": FLOAT32_CATEGORIES, "promote": {policy.PROMOTE}}[documented]
    wrong = {name: policy.category("cuda", PUBLIC_TO_POLICY.get(name, name))
             for name in DOCUMENTED_CUDA[documented].split()
             if policy.category("cuda", PUBLIC_TO_POLICY.get(name, name)) not in wanted}
    assert wrong == {}


# --- the CUDA policy, run: on a GPU, or on the CPU through a stand-in -----------------------------------------
@pytest.fixture
def cuda_autocast(device, monkeypatch):
    """``autocast("cuda", float16)``: the real one on a GPU; on the CPU, the hook sees every array as a
    CUDA array and CUDA autocast is switched on directly (``autocast("cuda")`` would refuse)."""
    if device == "cuda":
        return lambda: dg.autocast("cuda", dtype=dg.float16)
    monkeypatch.setattr(autocasting, "is_device_array", lambda array: True)

    class StandIn:
        def __enter__(self):
            self.saved = (state.enabled["cuda"], state.dtype["cuda"])
            state.set_enabled("cuda", True)
            state.dtype["cuda"] = dg.float16

        def __exit__(self, *exc):
            state.set_enabled("cuda", self.saved[0])
            state.dtype["cuda"] = self.saved[1]
            state.cache.clear()
    return StandIn


def _cuda_target(case: Case, inputs: list):
    """The dtype PyTorch's CUDA policy gives the case's floating outputs; None when it leaves the op alone."""
    if case.cuda is not None:
        return dg.dtypes.to_dtype(case.cuda)
    eligible = [t.dtype for t in inputs if t.dtype in (dg.float16, dg.bfloat16, dg.float32)]
    category = policy.category("cuda", case.op)
    if category is None or not eligible:
        return None
    if category in (policy.FP32_SET_OPT_DTYPE, policy.FP32_APPEND_DTYPE):
        return dg.float32 if inputs[0].dtype in eligible else None
    if category == policy.PROMOTE:
        target = dg.float16
        for dtype in eligible:
            target = dg.promote_types(target, dtype)
        return target
    return dg.float16 if category == policy.LOWER else dg.float32


@pytest.mark.parametrize("case", [c for c in CASES if c.op != "binary_cross_entropy"], ids=str)
def test_cuda_autocast_follows_the_cuda_policy(case, device, cuda_autocast):
    ours, _ = _inputs(case)
    ours = [t.to(device) for t in ours]
    target = _cuda_target(case, ours)
    if target is None:  # left alone: what the op gives (or raises) without autocast
        try:
            natural = [o.dtype for o in _outputs(case.fn(dg, *ours))]
        except RuntimeError as exc:
            with cuda_autocast(), pytest.raises(RuntimeError, match=re.escape(str(exc))):
                case.fn(dg, *ours)
            return
    with cuda_autocast():
        out = _outputs(case.fn(dg, *ours))
    if target is None:
        assert [o.dtype for o in out] == natural
    else:
        assert [o.dtype for o in out if o.dtype in dg.dtypes.FLOATING] == [target] * len(out)


def test_binary_cross_entropy_is_banned_under_cuda_autocast(device, cuda_autocast):
    x = dg.rand(3, device=device)
    with cuda_autocast(), pytest.raises(RuntimeError, match="unsafe to autocast"):
        F.binary_cross_entropy(x, x)


def test_an_explicit_dtype_is_respected_under_cuda_autocast(device, cuda_autocast):
    x = dg.randn(3, 4, dtype=dg.bfloat16, device=device)
    with cuda_autocast():
        assert F.softmax(x, -1).dtype == dg.float32
        assert F.softmax(x, -1, dtype=dg.float16).dtype == dg.float16


# --- the regions ------------------------------------------------------------------------------------------
def test_nested_regions_disabled_regions_and_the_state_functions():
    a, b = dg.randn(3, 3), dg.randn(3, 3)
    assert not dg.is_autocast_enabled("cpu") and dg.get_autocast_dtype("cpu") == dg.bfloat16
    with dg.autocast("cpu"):
        assert dg.is_autocast_enabled("cpu") and dg.mm(a, b).dtype == dg.bfloat16
        with dg.autocast("cpu", enabled=False):
            assert not dg.is_autocast_enabled("cpu") and dg.mm(a, b).dtype == dg.float32
        with dg.autocast("cpu", dtype=dg.float16):
            assert dg.get_autocast_dtype("cpu") == dg.float16 and dg.mm(a, b).dtype == dg.float16
        assert dg.mm(a, b).dtype == dg.bfloat16 and dg.get_autocast_dtype("cpu") == dg.bfloat16
    assert not dg.is_autocast_enabled("cpu") and dg.mm(a, b).dtype == dg.float32
    dg.set_autocast_enabled("cpu", True)
    try:
        assert dg.mm(a, b).dtype == dg.bfloat16
    finally:
        dg.set_autocast_enabled("cpu", False)
    assert not state.active


def test_autocast_as_a_decorator_and_the_amp_aliases():
    @dg.autocast("cpu")
    def product(a, b):
        return a @ b

    assert product(dg.randn(2, 2), dg.randn(2, 2)).dtype == dg.bfloat16
    assert dg.amp.autocast is dg.autocast
    with dg.cpu.amp.autocast():
        assert dg.is_autocast_enabled("cpu") and dg.get_autocast_dtype("cpu") == dg.bfloat16
    with pytest.raises(TypeError, match="requires a callable"):
        dg.autocast("cpu")(3)


def test_unsupported_settings_warn_or_raise_as_in_pytorch():
    with pytest.warns(UserWarning, match="CPU Autocast only supports dtypes"):
        region = dg.autocast("cpu", dtype=dg.float32)
    with region:
        assert not dg.is_autocast_enabled("cpu")
    with pytest.raises(RuntimeError, match="unsupported autocast device_type 'tpu'"):
        dg.autocast("tpu")
    with pytest.raises(ValueError, match="Expected `device_type` of type `str`"):
        dg.autocast(0)
    if not dg.cuda.is_available():
        with pytest.warns(UserWarning, match="CUDA is not available"):
            region = dg.autocast("cuda")
        with region:
            assert not dg.is_autocast_enabled("cuda")


def test_the_state_is_per_thread():
    seen = []
    with dg.autocast("cpu"):
        thread = threading.Thread(target=lambda: seen.append(dg.is_autocast_enabled("cpu")))
        thread.start()
        thread.join()
    assert seen == [False]


# --- the cache of parameters' casts and the gradients -------------------------------------------------------
def test_a_parameter_is_cast_once_per_region_and_recast_after_an_in_place_change():
    w = dg.randn(4, 4, requires_grad=True)
    x = dg.randn(2, 4)
    with dg.autocast("cpu"):
        first, second = F.linear(x, w), F.linear(x, w)
        assert first.grad_fn.next_functions[1][0] is second.grad_fn.next_functions[1][0]  # one ToCopy node
        with dg.no_grad():
            w.mul_(2)
        third = F.linear(x, w)
        assert third.grad_fn.next_functions[1][0] is not first.grad_fn.next_functions[1][0]
        with dg.autocast("cpu"):
            pass
        assert state.cache  # an inner region's exit keeps the cache
    assert not state.cache  # the outermost region's exit empties it
    (first.float().sum() + second.float().sum()).backward()
    np.testing.assert_allclose(host(w.grad), 2 * host(x).sum(0)[None, :].repeat(4, 0), rtol=1e-2)
    assert w.grad.dtype == dg.float32


def test_casts_made_without_grad_are_not_cached_for_later_ops_with_grad():
    w = dg.randn(4, 4, requires_grad=True)
    x = dg.randn(2, 4)
    with dg.autocast("cpu"):
        with dg.no_grad():
            F.linear(x, w)
        F.linear(x, w).float().sum().backward()
    assert w.grad is not None and w.grad.dtype == dg.float32


def test_cache_enabled_false_casts_every_time():
    w = dg.randn(4, 4, requires_grad=True)
    with dg.autocast("cpu", cache_enabled=False):
        first, second = F.linear(dg.randn(2, 4), w), F.linear(dg.randn(2, 4), w)
        assert first.grad_fn.next_functions[1][0] is not second.grad_fn.next_functions[1][0]
        assert not state.cache


def test_backward_inside_the_region_runs_in_the_forwards_dtypes():
    def gradients(inside: bool):
        dg.manual_seed(0)
        x, w = dg.randn(3, 5, requires_grad=True), dg.randn(4, 5, requires_grad=True)
        with dg.autocast("cpu"):
            loss = F.log_softmax(F.linear(x, w), -1).sum()
            if inside:
                loss.backward()
        if not inside:
            loss.backward()
        return host(x.grad), host(w.grad)

    for a, b in zip(gradients(True), gradients(False)):
        np.testing.assert_array_equal(a, b)
    assert not state.active


def test_a_model_under_autocast_matches_pytorchs_under_autocast():
    from helpers import copy_torch_into
    torch.manual_seed(0)
    # Tanh, not ReLU: a bfloat16 value rounded to 0 in one library and not in the other would flip a ReLU's mask.
    theirs = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Tanh(), torch.nn.Flatten(),
                                 torch.nn.Linear(4 * 6 * 6, 10))
    ours = dg.nn.Sequential(dg.nn.Conv2d(1, 4, 3), dg.nn.Tanh(), dg.nn.Flatten(), dg.nn.Linear(4 * 6 * 6, 10))
    copy_torch_into(ours, theirs)
    x, y = np.random.default_rng(0).standard_normal((5, 1, 8, 8)).astype(np.float32), np.array([1, 2, 3, 4, 5])
    with dg.autocast("cpu"):
        loss = F.cross_entropy(ours(dg.tensor(x)), dg.tensor(y))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected = torch.nn.functional.cross_entropy(theirs(torch.tensor(x)), torch.tensor(y))
    assert loss.dtype == dg.float32 and expected.dtype == torch.float32
    np.testing.assert_allclose(loss.item(), expected.item(), rtol=2e-2)
    loss.backward()
    expected.backward()
    for (name, p), q in zip(ours.named_parameters(), theirs.parameters()):
        assert p.grad.dtype == dg.float32, name
        np.testing.assert_allclose(host(p.grad), q.grad.numpy(), rtol=5e-2, atol=2e-2 * np.abs(q.grad.numpy()).max(),
                                   err_msg=name)


def test_no_warning_when_autocast_is_off():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert dg.exp(dg.ones(2)).dtype == dg.float32
