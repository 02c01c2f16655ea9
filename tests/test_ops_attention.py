"""scaled_dot_product_attention: PyTorch's semantics (masks, causal, dropout, scale, GQA), its gradients,
and a backward that keeps only the attention probabilities."""
import numpy as np
import pytest

import distgrad as dg
import distgrad.nn.functional as F
from distgrad.autograd import gradcheck, gradgradcheck
from distgrad.ops.attention import attention
from helpers import host, random_leaf


def _qkv(device, batch=(2, 3), length=4, source=5, embed=3, value_embed=2, seed=0):
    return (random_leaf(batch + (length, embed), device, seed),
            random_leaf(batch + (source, embed), device, seed + 1),
            random_leaf(batch + (source, value_embed), device, seed + 2))


def _bool_mask(shape, seed=3, dead_row=None):
    allowed = np.random.default_rng(seed).random(shape) > 0.4
    if dead_row is not None:
        allowed[..., dead_row, :] = False
    return allowed


# --- gradients ------------------------------------------------------------------------------------
@pytest.mark.parametrize("options", [
    {}, {"is_causal": True}, {"scale": 0.7}, {"mask": "bool"}, {"mask": "bool_dead_row"}, {"mask": "float"},
], ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()) or "plain")
def test_gradcheck(device, options):
    q, k, v = _qkv(device)
    mask = options.pop("mask", None)
    if mask is not None:
        shape = (4, 5)
        allowed = _bool_mask(shape, dead_row=1 if mask == "bool_dead_row" else None)
        options["attn_mask"] = (dg.tensor(allowed, device=device) if mask.startswith("bool")
                                else random_leaf(shape, device, seed=9))
    inputs = [q, k, v] + ([options["attn_mask"]] if mask == "float" else [])

    def fn(q, k, v, *rest):
        return F.scaled_dot_product_attention(q, k, v, **{**options, **({"attn_mask": rest[0]} if rest else {})})
    assert gradcheck(fn, inputs)


@pytest.mark.parametrize("length, source", [(5, 3), (3, 5)])
def test_causal_gradcheck_with_unequal_lengths(device, length, source):
    q, k, v = _qkv(device, length=length, source=source)
    assert gradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True), [q, k, v])


def test_second_derivatives(device):
    q, k, v = _qkv(device, batch=(2,), length=3, source=4)
    mask = random_leaf((3, 4), device, seed=5)
    assert gradgradcheck(lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m), [q, k, v, mask])
    assert gradgradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True), [q, k, v])


def test_gqa_and_broadcast_batch_gradcheck(device):
    q = random_leaf((2, 4, 3, 3), device, 0)
    k, v = random_leaf((2, 2, 5, 3), device, 1), random_leaf((2, 1, 5, 2), device, 2)
    assert gradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, enable_gqa=True), [q, k, v])
    k, v = random_leaf((1, 5, 3), device, 3), random_leaf((2, 1, 5, 2), device, 4)  # batch dims broadcast
    assert gradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v), [q[:, :1], k, v])


def test_dropout_gradcheck_with_the_same_draw(device):
    q, k, v = _qkv(device)

    def fn(q, k, v):
        dg.manual_seed(7)  # every call draws the same keep mask
        return F.scaled_dot_product_attention(q, k, v, dropout_p=0.3)
    assert gradcheck(fn, [q, k, v])


def test_weights_output_and_its_gradient(device):
    q, k, v = _qkv(device)
    allowed = dg.tensor(_bool_mask((4, 5)), device=device)

    def fn(q, k, v):
        dg.manual_seed(1)
        return attention(q, k, v, allowed, dropout_p=0.25, need_weights=True)
    assert gradcheck(fn, [q, k, v])


# --- PyTorch's results ----------------------------------------------------------------------------
KINDS = ("none", "bool", "float", "causal", "gqa")


def _random_case(rng, kind):
    """Random shapes and heads for one kind of case: no mask, bool, float, causal, GQA."""
    n, hk, length, source, e, ev = (int(x) for x in rng.integers(1, 5, 6))
    hq = hk * int(rng.integers(1, 4)) if kind == "gqa" else hk
    shapes = ((n, hq, length, e), (n, hk, source, e), (n, hk, source, ev))
    mask_shape = [(length, source), (n, 1, length, source), (n, hq, length, source)][int(rng.integers(3))]
    return kind, shapes, mask_shape


@pytest.mark.parametrize("seed", range(15))
def test_matches_torch_forward_and_gradients(device, seed):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    kind, shapes, mask_shape = _random_case(rng, KINDS[seed % len(KINDS)])
    arrays = [rng.standard_normal(s) for s in shapes]
    ours = [dg.tensor(a, device=device, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    kw, tkw = {}, {}
    if kind == "bool":
        allowed = rng.random(mask_shape) > 0.5
        kw["attn_mask"], tkw["attn_mask"] = dg.tensor(allowed, device=device), torch.tensor(allowed)
    elif kind == "float":
        additive = rng.standard_normal(mask_shape)
        additive[rng.random(mask_shape) < 0.3] = -np.inf
        kw["attn_mask"] = dg.tensor(additive, device=device, requires_grad=True)
        tkw["attn_mask"] = torch.tensor(additive, requires_grad=True)
    elif kind == "causal":
        kw["is_causal"] = tkw["is_causal"] = True
    elif kind == "gqa":
        kw["enable_gqa"] = tkw["enable_gqa"] = True
    out = F.scaled_dot_product_attention(*ours, **kw)
    expected = torch.nn.functional.scaled_dot_product_attention(*theirs, **tkw)
    np.testing.assert_allclose(host(out.detach()), expected.detach().numpy(), rtol=1e-10, atol=1e-12)
    weights = rng.standard_normal(out.shape)
    (out * dg.tensor(weights, device=device)).sum().backward()
    (expected * torch.tensor(weights)).sum().backward()
    for a, b in zip(ours + [kw.get("attn_mask")], theirs + [tkw.get("attn_mask")]):
        if b is not None and b.grad is not None:
            np.testing.assert_allclose(host(a.grad), b.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_rows_with_every_key_masked_give_zeros_as_in_torch(device):
    torch = pytest.importorskip("torch")
    q, k, v = _qkv(device)
    allowed = _bool_mask((4, 5), dead_row=2)
    additive = np.where(allowed, 0.0, -np.inf)
    for ours_mask, torch_mask in ((dg.tensor(allowed, device=device), torch.tensor(allowed)),
                                  (dg.tensor(additive, device=device), torch.tensor(additive))):
        for t in (q, k, v):
            t.grad = None
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=ours_mask)
        out.sum().backward()
        tq, tk, tv = (torch.tensor(host(t.detach()), requires_grad=True) for t in (q, k, v))
        expected = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, attn_mask=torch_mask)
        expected.sum().backward()
        assert not np.isnan(host(out.detach())).any()
        np.testing.assert_array_equal(host(out.detach())[..., 2, :], 0)
        np.testing.assert_allclose(host(out.detach()), expected.detach().numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(host(q.grad), tq.grad.numpy(), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(host(k.grad), tk.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_unbatched_and_float32(device):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal(s).astype(np.float32) for s in ((3, 4), (5, 4), (5, 6)))
    out = F.scaled_dot_product_attention(*(dg.tensor(a, device=device) for a in (q, k, v)), is_causal=True)
    expected = torch.nn.functional.scaled_dot_product_attention(*map(torch.tensor, (q, k, v)), is_causal=True)
    assert out.dtype == dg.float32 and out.shape == (3, 6)
    np.testing.assert_allclose(host(out), expected.numpy(), rtol=1e-5, atol=1e-6)


# --- dropout --------------------------------------------------------------------------------------
def test_dropout_zeroes_weights_with_probability_p_and_rescales_the_rest(device):
    q, k, v = _qkv(device, batch=(64, 8), length=16, source=16)
    out, weights = attention(q, k, v, dropout_p=0.0, need_weights=True)
    dg.manual_seed(0)
    dropped_out, dropped = attention(q, k, v, dropout_p=0.2, need_weights=True)
    w, d = host(weights.detach()), host(dropped.detach())
    zero = d == 0
    assert abs(zero.mean() - 0.2) < 0.01
    np.testing.assert_allclose(d[~zero], w[~zero] / 0.8, rtol=1e-12)
    np.testing.assert_allclose(host(dropped_out.detach()), d @ host(v.detach()), rtol=1e-10, atol=1e-12)


def test_dropout_follows_the_seed(device):
    q, k, v = _qkv(device)
    draws = []
    for seed in (3, 3, 4):
        dg.manual_seed(seed)
        draws.append(host(F.scaled_dot_product_attention(q, k, v, dropout_p=0.5).detach()))
    np.testing.assert_array_equal(draws[0], draws[1])
    assert not np.array_equal(draws[0], draws[2])


def test_dropout_one_gives_zeros(device):
    q, k, v = _qkv(device)
    np.testing.assert_array_equal(host(F.scaled_dot_product_attention(q, k, v, dropout_p=1.0).detach()), 0)


# --- memory ---------------------------------------------------------------------------------------
def test_backward_keeps_the_probabilities_once_and_no_scores(device):
    q, k, v = _qkv(device, length=6, source=7)
    out = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=0.5)
    node = out.grad_fn
    square = [t for t in node._saved if t is not None and t.shape[-2:] == (6, 7)]
    assert len(square) == 1  # P; the scores and the dropped-out P are not kept
    assert node.keep.dtype == np.bool_  # the dropout mask costs a byte per weight


# --- errors ---------------------------------------------------------------------------------------
def test_errors_have_torch_messages():
    q = dg.randn(2, 3, 4)
    with pytest.raises(RuntimeError, match="Explicit attn_mask should not be set when is_causal=True"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=dg.ones(3, 3, dtype=dg.bool), is_causal=True)
    with pytest.raises(RuntimeError, match="Expected attn_mask dtype to be bool or float"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=dg.ones(3, 3, dtype=dg.int64))
    with pytest.raises(RuntimeError, match="at least 2 dimensional"):
        F.scaled_dot_product_attention(dg.randn(4), q, q)
    with pytest.raises(RuntimeError, match="must divide the number of heads in query"):
        F.scaled_dot_product_attention(dg.randn(1, 4, 3, 2), dg.randn(1, 3, 3, 2), dg.randn(1, 3, 3, 2),
                                       enable_gqa=True)
    with pytest.raises(RuntimeError, match="does not broadcast"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=dg.ones(5, 2, 3, 3, dtype=dg.bool))
    with pytest.raises(RuntimeError, match="dropout probability has to be between 0 and 1"):
        F.scaled_dot_product_attention(q, q, q, dropout_p=1.5)


@pytest.mark.parametrize("kind", ["per_head_bool", "float_with_grad", "causal", "dropout", "broadcast_batch"])
def test_blocks_of_heads_compute_what_one_block_does(device, kind, monkeypatch):
    from distgrad import parallel

    def run():
        q, k, v = _qkv(device, batch=(2, 3), length=4, source=5)
        if kind == "broadcast_batch":
            k, v = random_leaf((1, 3, 5, 3), device, 7), random_leaf((3, 5, 2), device, 8)
        options = {"causal": {"is_causal": True}, "dropout": {"dropout_p": 0.3},
                   "per_head_bool": {"attn_mask": dg.tensor(_bool_mask((2, 3, 4, 5), dead_row=0), device=device)},
                   "float_with_grad": {"attn_mask": random_leaf((2, 1, 4, 5), device, 9)}}.get(kind, {})
        dg.manual_seed(4)
        out = F.scaled_dot_product_attention(q, k, v, **options)
        (out * out).sum().backward()
        leaves = [q, k, v] + ([options["attn_mask"]] if kind == "float_with_grad" else [])
        return [host(out.detach())] + [host(t.grad) for t in leaves]
    whole = run()
    monkeypatch.setattr(parallel, "BLOCK_ELEMENTS", 1)  # one (batch, head) row per block
    for a, b in zip(run(), whole):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-14)
