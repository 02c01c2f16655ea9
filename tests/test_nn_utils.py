"""nn.utils: clip_grad_norm_ / clip_grad_value_ (vs PyTorch) and parameters <-> vector."""
import math

import numpy as np
import pytest

import distgrad
from distgrad import nn
from distgrad.nn.utils import clip_grad_norm_, clip_grad_value_, parameters_to_vector, vector_to_parameters
from helpers import host


def params_with_grads(device="cpu", seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    params = []
    for shape in [(3, 4), (5,), (2, 2, 2)]:
        p = nn.Parameter(distgrad.tensor(rng.standard_normal(shape).astype(np.float32), device=device))
        p.grad = distgrad.tensor((scale * rng.standard_normal(shape)).astype(np.float32), device=device)
        params.append(p)
    return params


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clip_grad_norm_matches_pytorch(norm_type, max_norm):
    torch = pytest.importorskip("torch")
    ours = params_with_grads()
    theirs = [torch.nn.Parameter(torch.from_numpy(p.array.copy())) for p in ours]
    for t, p in zip(theirs, ours):
        t.grad = torch.from_numpy(p.grad.array.copy())
    total = clip_grad_norm_(ours, max_norm, norm_type)
    expected = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type)
    assert isinstance(total, distgrad.Tensor) and total.shape == () and total.dtype == np.float32
    assert total.item() == pytest.approx(expected.item(), rel=1e-5)
    for t, p in zip(theirs, ours):
        np.testing.assert_allclose(p.grad.array, t.grad.numpy(), rtol=1e-5, atol=1e-7)


def test_clip_grad_norm_scales_to_max_norm_in_place(device):
    params = params_with_grads(device, scale=10.0)
    grads = [p.grad for p in params]
    before = math.sqrt(sum(float((host(g).astype(np.float64) ** 2).sum()) for g in grads))
    total = clip_grad_norm_(params, max_norm=1.0)
    assert total.item() == pytest.approx(before, rel=1e-5)
    after = math.sqrt(sum(float((host(p.grad).astype(np.float64) ** 2).sum()) for p in params))
    assert after == pytest.approx(1.0, rel=1e-4)
    assert all(p.grad is g for p, g in zip(params, grads))


def test_clip_grad_norm_accepts_a_single_tensor_and_skips_missing_grads():
    p = params_with_grads()[0]
    q = nn.Parameter(distgrad.ones(2))
    total = clip_grad_norm_([p, q], 1e9)
    assert total.item() == pytest.approx(float(np.linalg.norm(p.grad.array)), rel=1e-6)
    assert clip_grad_norm_(p, 1e9).item() == pytest.approx(total.item())
    assert clip_grad_norm_([q], 1.0).item() == 0.0


@pytest.mark.filterwarnings("ignore:invalid value encountered")
def test_clip_grad_norm_non_finite():
    params = params_with_grads()
    params[1].grad.array[0] = np.inf
    with pytest.raises(RuntimeError, match="The total norm of order 2.0 for gradients from `parameters` is non-finite"):
        clip_grad_norm_(params, 1.0, error_if_nonfinite=True)
    assert math.isinf(clip_grad_norm_(params, 1.0).item())


def test_clip_grad_value_clamps_in_place(device):
    params = params_with_grads(device, scale=3.0)
    grads = [p.grad for p in params]
    versions = [g._version[0] for g in grads]
    clip_grad_value_(params, 0.5)
    for p, g, v in zip(params, grads, versions):
        assert p.grad is g and g._version[0] == v + 1
        assert np.abs(host(g)).max() <= 0.5
    assert np.isclose(np.abs(np.concatenate([host(g).ravel() for g in grads])).max(), 0.5)


def test_parameters_to_vector_and_back_round_trip():
    params = params_with_grads()
    vec = parameters_to_vector(params)
    assert vec.shape == (12 + 5 + 8,)
    np.testing.assert_array_equal(vec.array[12:17], params[1].array)
    new = distgrad.arange(25, dtype=distgrad.float32)
    vector_to_parameters(new, params)
    assert params[0].shape == (3, 4) and params[2].shape == (2, 2, 2)
    np.testing.assert_array_equal(params[2].array.ravel(), np.arange(17, 25))
    np.testing.assert_array_equal(parameters_to_vector(params).array, new.array)


def test_parameters_to_vector_is_differentiable():
    params = params_with_grads()
    for p in params:
        p.grad = None
    vec = parameters_to_vector(params)
    (vec * distgrad.arange(25, dtype=distgrad.float32)).backward(distgrad.ones(25))
    np.testing.assert_array_equal(params[1].grad.array, np.arange(12, 17, dtype=np.float32))


def test_vector_to_parameters_requires_a_tensor():
    with pytest.raises(TypeError, match="expected distgrad Tensor, but got: list"):
        vector_to_parameters([1.0], params_with_grads())
