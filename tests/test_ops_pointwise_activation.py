"""The activations of ops/pointwise_activation.py (and their nn.functional / nn forms): values and gradients
against PyTorch in float64, gradcheck, the kinks, in-place forms, modules and errors."""
import numpy as np
import pytest

import distgrad as dg
import distgrad.nn.functional as F
from distgrad import nn
from helpers import check_against_torch, host

# name: (our call, torch's call); the inputs avoid the kinks where finite differences are ill-defined
CASES = {
    "elu": (lambda x: F.elu(x), "elu", {}),
    "elu_alpha": (lambda x: F.elu(x, 0.3), "elu", {"alpha": 0.3}),
    "celu": (lambda x: F.celu(x, 1.7), "celu", {"alpha": 1.7}),
    "selu": (lambda x: F.selu(x), "selu", {}),
    "hardtanh": (lambda x: F.hardtanh(x, -0.8, 1.2), "hardtanh", {"min_val": -0.8, "max_val": 1.2}),
    "relu6": (lambda x: F.relu6(x * 4), None, {}),
    "hardsigmoid": (lambda x: F.hardsigmoid(x * 3), None, {}),
    "hardswish": (lambda x: F.hardswish(x * 3), None, {}),
    "mish": (lambda x: F.mish(x), "mish", {}),
    "logsigmoid": (lambda x: F.logsigmoid(x), "logsigmoid", {}),
    "threshold": (lambda x: F.threshold(x, 0.1, 20.0), "threshold", {"threshold": 0.1, "value": 20.0}),
    "hardshrink": (lambda x: F.hardshrink(x, 0.4), "hardshrink", {"lambd": 0.4}),
    "softshrink": (lambda x: F.softshrink(x, 0.4), "softshrink", {"lambd": 0.4}),
    "softsign": (lambda x: F.softsign(x), "softsign", {}),
    "tanhshrink": (lambda x: F.tanhshrink(x), "tanhshrink", {}),
    "glu": (lambda x: F.glu(x, 1), "glu", {"dim": 1}),
}
TORCH_SCALED = {"relu6": ("relu6", 4), "hardsigmoid": ("hardsigmoid", 3), "hardswish": ("hardswish", 3)}


def away_from_kinks(shape, seed=0):
    x = np.random.default_rng(seed).uniform(-3, 3, shape)
    for kink in (-1.2, -0.8, -0.4, 0.0, 0.1, 0.4, 1.0, 1.2, 1.5):
        x[np.abs(x - kink) < 0.02] += 0.05
    return x


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_torch_and_gradchecks(name, device):
    torch = pytest.importorskip("torch")
    ours, torch_name, kwargs = CASES[name]
    if name in TORCH_SCALED:
        fn, scale = TORCH_SCALED[name]
        theirs = lambda x: getattr(torch.nn.functional, fn)(x * scale)  # noqa: E731
    else:
        theirs = lambda x: getattr(torch.nn.functional, torch_name)(x, **kwargs)  # noqa: E731
    shape = tuple(np.random.default_rng(len(name)).integers(1, 5, 3) * (1, 2, 1))
    # torch's celu backward rounds 1/alpha to float32 (derivatives.yaml: 1.0/alpha.toFloat()), and its
    # hardsigmoid backward uses a float32 1/6: distgrad's gradients are the exact ones
    rtol = 1e-6 if name in ("celu", "hardsigmoid") else 1e-10
    check_against_torch(ours, theirs, [away_from_kinks(shape)], device, rtol=rtol)


def test_large_inputs_stay_finite():
    x = dg.tensor([-1000.0, -50.0, 50.0, 1000.0], dtype=dg.float64, requires_grad=True)
    for fn in (F.elu, F.selu, F.celu, F.mish, F.logsigmoid):
        y = fn(x)
        y.sum().backward()
        assert np.isfinite(host(y)).all() and np.isfinite(host(x.grad)).all(), fn.__name__
        x.grad = None


@pytest.mark.parametrize("name,args,kink", [
    ("hardtanh", (), 1.0), ("hardtanh", (), -1.0), ("relu6", (), 6.0), ("relu6", (), 0.0), ("hardswish", (), 3.0),
    ("hardswish", (), -3.0), ("hardsigmoid", (), 3.0), ("hardsigmoid", (), -3.0), ("threshold", (0.5, 0.0), 0.5),
    ("hardshrink", (0.5,), 0.5), ("softshrink", (0.5,), -0.5), ("elu", (), 0.0), ("selu", (), 0.0),
])
def test_gradients_at_the_kinks_follow_torch(name, args, kink):
    torch = pytest.importorskip("torch")
    x = dg.tensor([kink], dtype=dg.float64, requires_grad=True)
    tx = torch.tensor([kink], dtype=torch.float64, requires_grad=True)
    getattr(F, name)(x, *args).sum().backward()
    getattr(torch.nn.functional, name)(tx, *args).sum().backward()
    assert host(x.grad)[0] == pytest.approx(tx.grad.item(), rel=1e-7)


@pytest.mark.parametrize("weight_shape,input_shape", [((1,), (4, 3)), ((3,), (4, 3)), ((3,), (2, 3, 5, 4)),
                                                      ((1,), (5,)), ((2,), (2, 2, 3))])
def test_prelu_matches_torch(weight_shape, input_shape, device):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    check_against_torch(F.prelu, torch.nn.functional.prelu,
                        [away_from_kinks(input_shape), rng.uniform(0.05, 0.5, weight_shape)], device)


def test_prelu_and_glu_errors_like_torch():
    with pytest.raises(RuntimeError, match="Found parameter numbers = 2 and channel size = 3"):
        F.prelu(dg.ones(4, 3), dg.ones(2))
    with pytest.raises(RuntimeError, match="Halving dimension must be even, but dimension 1 is size 3"):
        F.glu(dg.ones(2, 3), 1)
    with pytest.raises(ValueError, match="min_val cannot be greater than max_val"):
        F.hardtanh(dg.ones(2), 1.0, -1.0)


@pytest.mark.parametrize("name,call", [
    ("elu", lambda x: F.elu(x, 0.5, inplace=True)), ("selu", lambda x: F.selu(x, True)),
    ("hardtanh", lambda x: F.hardtanh(x, -0.5, 0.5, True)), ("mish", lambda x: F.mish(x, inplace=True)),
    ("threshold", lambda x: F.threshold(x, 0.0, -1.0, True)),
])
def test_in_place_forms_write_into_the_input_and_record(name, call):
    data = away_from_kinks((3, 4))
    leaf = dg.tensor(data, dtype=dg.float64, requires_grad=True)
    expected = call(leaf * 1)
    x = leaf * 1
    out = call(x)
    assert out is x
    np.testing.assert_allclose(host(x), host(expected))
    out.sum().backward()
    reference = dg.tensor(data, dtype=dg.float64, requires_grad=True)
    call(reference * 1).sum().backward()
    np.testing.assert_allclose(host(leaf.grad), host(reference.grad))
    plain = dg.tensor(data, dtype=dg.float64)
    assert call(plain) is plain


@pytest.mark.parametrize("ours,theirs", [
    (lambda m: m.ELU(0.5), lambda m: m.ELU(0.5)), (lambda m: m.CELU(2.0), lambda m: m.CELU(2.0)),
    (lambda m: m.SELU(), lambda m: m.SELU()), (lambda m: m.Hardtanh(-2, 2), lambda m: m.Hardtanh(-2, 2)),
    (lambda m: m.ReLU6(), lambda m: m.ReLU6()), (lambda m: m.Hardsigmoid(), lambda m: m.Hardsigmoid()),
    (lambda m: m.Hardswish(), lambda m: m.Hardswish()), (lambda m: m.Mish(), lambda m: m.Mish()),
    (lambda m: m.Softplus(2.0, 5.0), lambda m: m.Softplus(2.0, 5.0)), (lambda m: m.Softsign(), lambda m: m.Softsign()),
    (lambda m: m.LogSigmoid(), lambda m: m.LogSigmoid()), (lambda m: m.Tanhshrink(), lambda m: m.Tanhshrink()),
    (lambda m: m.Threshold(0.2, -3.0), lambda m: m.Threshold(0.2, -3.0)),
    (lambda m: m.Hardshrink(0.3), lambda m: m.Hardshrink(0.3)), (lambda m: m.Softshrink(0.3), lambda m: m.Softshrink(0.3)),
    (lambda m: m.GLU(-1), lambda m: m.GLU(-1)), (lambda m: m.Softmin(1), lambda m: m.Softmin(1)),
    (lambda m: m.Softmax2d(), lambda m: m.Softmax2d()),
])
def test_modules_match_torch_and_print_like_torch(ours, theirs, device):
    torch = pytest.importorskip("torch")
    ours, theirs = ours(nn), theirs(torch.nn)
    assert repr(ours) == repr(theirs)
    check_against_torch(ours, theirs, [away_from_kinks((2, 3, 4, 4))], device, rtol=1e-6, gradcheck=False)


def test_prelu_module_learns_its_slope_like_torch(device):
    torch = pytest.importorskip("torch")
    ours, theirs = nn.PReLU(3, init=0.1).double().to(device), torch.nn.PReLU(3, init=0.1).double()
    assert repr(ours) == repr(theirs) and ours.weight.shape == (3,)
    x = away_from_kinks((2, 3, 4))
    out = ours(dg.tensor(x, device=device))
    expected = theirs(torch.tensor(x))
    np.testing.assert_allclose(host(out), expected.detach().numpy())
    out.sum().backward()
    expected.sum().backward()
    np.testing.assert_allclose(host(ours.weight.grad), theirs.weight.grad.numpy())
