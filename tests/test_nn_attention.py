"""MultiheadAttention and F.multi_head_attention_forward against PyTorch: state dicts copied both ways,
outputs, weights and gradients in float64, every mask kind and option."""
import numpy as np
import pytest

import distgrad as dg
import distgrad.nn.functional as F
from distgrad import nn
from distgrad.autograd import gradcheck
from helpers import assert_close, copy_torch_into, compare_gradients, host, random_leaf, run_both

torch = pytest.importorskip("torch")


CASES = {
    "self_batch_first_padding_weights": dict(module=dict(batch_first=True), inputs="self",
                                             kpm="bool", forward=dict(need_weights=True)),
    "seq_first_float_mask_no_weights": dict(module={}, inputs="self", attn_mask="float2d",
                                            forward=dict(need_weights=False)),
    "kdim_vdim_3d_bool_mask_per_head": dict(module=dict(kdim=3, vdim=5), inputs="cross", attn_mask="bool3d",
                                            forward=dict(need_weights=True, average_attn_weights=False)),
    "no_bias_zero_attn_bias_kv": dict(module=dict(bias=False, add_zero_attn=True, add_bias_kv=True,
                                                  batch_first=True), inputs="cross", kpm="bool", attn_mask="bool2d"),
    "key_is_value": dict(module=dict(batch_first=True), inputs="kv", kpm="float"),
    "mixed_float_mask_and_bool_padding": dict(module={}, inputs="cross", attn_mask="float2d", kpm="bool",
                                              forward=dict(need_weights=False)),
    "causal_hint": dict(module=dict(batch_first=True), inputs="self", attn_mask="causal",
                        forward=dict(need_weights=False, is_causal=True)),
    "unbatched": dict(module={}, inputs="self_unbatched", attn_mask="bool2d", kpm="bool"),
}
E, H, N, L, S = 6, 2, 3, 4, 5


def _case_inputs(case, rng):
    kdim, vdim = case["module"].get("kdim", E), case["module"].get("vdim", E)
    batch_first = case["module"].get("batch_first", False)
    unbatched = case["inputs"] == "self_unbatched"
    source = L if case["inputs"].startswith("self") else S

    def seq(length, width):
        shape = (length, width) if unbatched else ((N, length, width) if batch_first else (length, N, width))
        return rng.standard_normal(shape)
    query = seq(L, E)
    if case["inputs"].startswith("self"):
        key = value = query
    elif case["inputs"] == "kv":
        key = value = seq(source, kdim)
    else:
        key, value = seq(source, kdim), seq(source, vdim)
    def some_masked(shape):
        masked = rng.random(shape) < 0.3
        masked[..., 1] = False  # every query keeps a key: PyTorch's weights would be NaN otherwise
        return masked
    masks = {"bool2d": lambda: some_masked((L, source)),
             "float2d": lambda: rng.standard_normal((L, source)),
             "bool3d": lambda: some_masked((N * H, L, source)),
             "causal": lambda: np.triu(np.full((L, L), -np.inf), 1)}
    attn_mask = masks[case["attn_mask"]]() if "attn_mask" in case else None
    kpm = None
    if "kpm" in case:
        shape = (source,) if unbatched else (N, source)
        kpm = rng.random(shape) < 0.3 if case["kpm"] == "bool" else rng.standard_normal(shape)
        if case["kpm"] == "bool":
            kpm[..., 1] = False
    return query, key, value, attn_mask, kpm


@pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask")  # PyTorch's, on the mixed case
@pytest.mark.parametrize("name", sorted(CASES))
def test_multihead_attention_matches_torch(device, name):
    case = CASES[name]
    rng = np.random.default_rng(sorted(CASES).index(name))
    torch.manual_seed(0)
    theirs = torch.nn.MultiheadAttention(E, H, **case["module"], dtype=torch.float64)
    ours = nn.MultiheadAttention(E, H, **case["module"], dtype=dg.float64).to(device)
    copy_torch_into(ours, theirs, device)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    query, key, value, attn_mask, kpm = _case_inputs(case, rng)

    def call(module, tensors):
        q, k, v, m, p = tensors
        return module(q, k, v, key_padding_mask=p, attn_mask=m, **case.get("forward", {}))
    out, expected, mine, yours = run_both(ours, theirs, [query, key, value, attn_mask, kpm], call, device)
    assert_close(out[0], expected[0])
    assert_close(out[1], expected[1])
    compare_gradients(ours, theirs)
    for a, b in zip(mine[:3], yours[:3]):
        if b.grad is not None:
            np.testing.assert_allclose(host(a.grad), b.grad.numpy(), rtol=1e-9, atol=1e-11)


def test_state_dict_goes_back_to_torch(device):
    ours = nn.MultiheadAttention(E, H, kdim=3, vdim=4, add_bias_kv=True, dtype=dg.float64).to(device)
    theirs = torch.nn.MultiheadAttention(E, H, kdim=3, vdim=4, add_bias_kv=True, dtype=torch.float64)
    theirs.load_state_dict({k: torch.tensor(host(v)) for k, v in ours.state_dict().items()})
    rng = np.random.default_rng(0)
    q, k, v = rng.standard_normal((L, N, E)), rng.standard_normal((S, N, 3)), rng.standard_normal((S, N, 4))
    out, weights = ours(*(dg.tensor(a, device=device) for a in (q, k, v)))
    expected, expected_weights = theirs(*map(torch.tensor, (q, k, v)))
    assert_close(out, expected)
    assert_close(weights, expected_weights)


def test_functional_form_matches_torch():
    torch.manual_seed(1)
    module = torch.nn.MultiheadAttention(E, H, dtype=torch.float64)
    rng = np.random.default_rng(1)
    q, kv = rng.standard_normal((L, N, E)), rng.standard_normal((S, N, E))
    params = [module.in_proj_weight, module.in_proj_bias, None, None, False, 0.0, module.out_proj.weight,
              module.out_proj.bias]
    expected = torch.nn.functional.multi_head_attention_forward(torch.tensor(q), torch.tensor(kv), torch.tensor(kv),
                                                                E, H, *params, training=False)
    ours = [None if p is None or isinstance(p, (bool, float)) else dg.tensor(p.detach().numpy()) for p in params]
    ours[4], ours[5] = False, 0.0
    out = F.multi_head_attention_forward(dg.tensor(q), dg.tensor(kv), dg.tensor(kv), E, H, *ours, training=False)
    assert_close(out[0], expected[0])
    assert_close(out[1], expected[1])


def test_gradcheck_through_projections_and_masks(device):
    dg.manual_seed(0)
    module = nn.MultiheadAttention(4, 2, batch_first=True, kdim=3, vdim=2, dtype=dg.float64).to(device)
    query, key, value = random_leaf((2, 3, 4), device, 0), random_leaf((2, 5, 3), device, 1), \
        random_leaf((2, 5, 2), device, 2)
    kpm = dg.tensor(np.array([[False, True, False, False, True], [False] * 5]), device=device)
    assert gradcheck(lambda q, k, v: module(q, k, v, key_padding_mask=kpm)[0], [query, key, value])
    assert gradcheck(lambda w: F.linear(w, module.q_proj_weight).sum() + module(w, key, value)[1].sum(), [query])


def test_dropout_only_in_training(device):
    dg.manual_seed(0)
    module = nn.MultiheadAttention(E, H, dropout=0.5, batch_first=True, dtype=dg.float64).to(device)
    x = random_leaf((N, L, E), device)
    module.eval()
    first, second = module(x, x, x)[0], module(x, x, x)[0]
    np.testing.assert_array_equal(host(first.detach()), host(second.detach()))
    module.train()
    assert not np.allclose(host(module(x, x, x)[0].detach()), host(first.detach()))


def test_shape_errors_follow_torch():
    module = nn.MultiheadAttention(E, H)
    x = dg.randn(L, N, E)
    with pytest.raises(RuntimeError, match=r"The shape of the 2D attn_mask is \[3, 3\], but should be \[4, 4\]"):
        module(x, x, x, attn_mask=dg.zeros(3, 3, dtype=dg.bool))
    with pytest.raises(RuntimeError, match="Need attn_mask if specifying the is_causal hint"):
        module(x, x, x, is_causal=True)
    with pytest.raises(AssertionError, match="only bool and floating types of key_padding_mask"):
        module(x, x, x, key_padding_mask=dg.zeros(N, L, dtype=dg.int64))
    with pytest.raises(AssertionError, match="embed_dim must be divisible by num_heads"):
        nn.MultiheadAttention(5, 2)
