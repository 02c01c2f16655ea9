"""The activations of ops/pointwise_activation.py (and their nn.functional / nn forms): values and gradients
against PyTorch in float64, gradcheck, the kinks, in-place forms, modules and errors."""
import numpy as np
import pytest

import distgrad as dg
import distgrad.nn.functional as F
from distgrad import nn
from helpers import assert_matches_torch, host

# one call for both libraries (m is distgrad or torch); the inputs avoid the kinks, where finite
# differences are ill-defined
CASES = {
    "elu": lambda m, x: m.nn.functional.elu(x),
    "elu_alpha": lambda m, x: m.nn.functional.elu(x, 0.3),
    "celu": lambda m, x: m.nn.functional.celu(x, 1.7),
    "selu": lambda m, x: m.nn.functional.selu(x),
    "hardtanh": lambda m, x: m.nn.functional.hardtanh(x, -0.8, 1.2),
    "relu6": lambda m, x: m.nn.functional.relu6(x * 4),
    "hardsigmoid": lambda m, x: m.nn.functional.hardsigmoid(x * 3),
    "hardswish": lambda m, x: m.nn.functional.hardswish(x * 3),
    "mish": lambda m, x: m.nn.functional.mish(x),
    "logsigmoid": lambda m, x: m.nn.functional.logsigmoid(x),
    "threshold": lambda m, x: m.nn.functional.threshold(x, 0.1, 20.0),
    "hardshrink": lambda m, x: m.nn.functional.hardshrink(x, 0.4),
    "softshrink": lambda m, x: m.nn.functional.softshrink(x, 0.4),
    "softsign": lambda m, x: m.nn.functional.softsign(x),
    "tanhshrink": lambda m, x: m.nn.functional.tanhshrink(x),
    "glu": lambda m, x: m.nn.functional.glu(x, 1),
}


def away_from_kinks(shape, seed=0):
    x = np.random.default_rng(seed).uniform(-3, 3, shape)
    for kink in (-1.2, -0.8, -0.4, 0.0, 0.1, 0.4, 1.0, 1.2, 1.5):
        x[np.abs(x - kink) < 0.02] += 0.05
    return x


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_torch_and_gradchecks(name, device):
    shape = tuple(np.random.default_rng(len(name)).integers(1, 5, 3) * (1, 2, 1))
    # torch's celu backward rounds 1/alpha to float32 (derivatives.yaml: 1.0/alpha.toFloat()), and its
    # hardsigmoid backward uses a float32 1/6: distgrad's gradients are the exact ones
    rtol = 1e-6 if name in ("celu", "hardsigmoid") else 1e-10
    assert_matches_torch(CASES[name], [away_from_kinks(shape)], device, rtol=rtol, gradcheck=True)


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
    rng = np.random.default_rng(1)
    assert_matches_torch(lambda m, x, w: m.nn.functional.prelu(x, w),
                         [away_from_kinks(input_shape), rng.uniform(0.05, 0.5, weight_shape)], device, gradcheck=True)


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


@pytest.mark.parametrize("make", [
    lambda m: m.ELU(0.5), lambda m: m.CELU(2.0), lambda m: m.SELU(), lambda m: m.Hardtanh(-2, 2), lambda m: m.ReLU6(),
    lambda m: m.Hardsigmoid(), lambda m: m.Hardswish(), lambda m: m.Mish(), lambda m: m.Softplus(2.0, 5.0),
    lambda m: m.Softsign(), lambda m: m.LogSigmoid(), lambda m: m.Tanhshrink(), lambda m: m.Threshold(0.2, -3.0),
    lambda m: m.Hardshrink(0.3), lambda m: m.Softshrink(0.3), lambda m: m.GLU(-1), lambda m: m.Softmin(1),
    lambda m: m.Softmax2d(),
])
def test_modules_match_torch_and_print_like_torch(make, device):
    torch = pytest.importorskip("torch")
    assert repr(make(nn)) == repr(make(torch.nn))
    assert_matches_torch(lambda m, x: make(m.nn)(x), [away_from_kinks((2, 3, 4, 4))], device, rtol=1e-6)


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
