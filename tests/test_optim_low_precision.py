"""Optimizers on bfloat16/float16 parameters: float32 state, the update computed in float32 and rounded
once, and float32 master weights (``master_weights=True``) that keep steps smaller than the rounding."""
import inspect

import numpy as np
import pytest

import distgrad as dg
from helpers import host

# Every optimizer distgrad has, with arguments that make each of its state entries matter.
OPTIONS = {"SGD": dict(lr=0.1, momentum=0.9, weight_decay=0.01), "Adam": dict(lr=0.01, amsgrad=True),
           "AdamW": dict(lr=0.01), "RMSprop": dict(lr=0.01, momentum=0.5, centered=True),
           "Adagrad": dict(lr=0.1), "Adadelta": dict(lr=1.0), "Adamax": dict(lr=0.01), "NAdam": dict(lr=0.01),
           "RAdam": dict(lr=0.01)}
OPTIMIZERS = sorted(name for name, cls in vars(dg.optim).items()
                    if inspect.isclass(cls) and issubclass(cls, dg.optim.Optimizer) and cls is not dg.optim.Optimizer)


def _param(dtype, device="cpu", seed=0):
    values = np.random.default_rng(seed).standard_normal((3, 4)).astype(np.float32)
    return dg.nn.Parameter(dg.tensor(values, device=device).to(dtype))


def _steps(optimizer_name, dtype, steps=3, device="cpu", **extra):
    """A parameter of ``dtype`` after ``steps`` steps on fixed gradients, and its optimizer."""
    p = _param(dtype, device)
    optimizer = getattr(dg.optim, optimizer_name)([p], **OPTIONS.get(optimizer_name, {}), **extra)
    rng = np.random.default_rng(1)
    for _ in range(steps):
        p.grad = dg.tensor(rng.standard_normal((3, 4)).astype(np.float32), device=device).to(dtype)
        optimizer.step()
    return p, optimizer


def test_every_optimizer_is_listed_here():
    assert set(OPTIMIZERS) <= set(OPTIONS)


@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_a_16_bit_parameter_keeps_its_dtype_and_float32_state_and_follows_float32_rounded(name, dtype, device):
    dtype = dg.dtypes.to_dtype(dtype)
    p, optimizer = _steps(name, dtype, steps=1, device=device)
    assert p.dtype == dtype
    floating_state = [v for v in optimizer.state[p].values() if isinstance(v, dg.Tensor) and v.dtype.kind in "fV"]
    assert floating_state and all(v.dtype == dg.float32 for v in floating_state)
    # One step from the same (representable) values in float32, rounded once, is the same parameter.
    reference = dg.nn.Parameter(_param(dtype, device).float().detach())
    reference_optimizer = getattr(dg.optim, name)([reference], **OPTIONS.get(name, {}))
    reference.grad = dg.tensor(np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32),
                               device=device).to(dtype).float()
    reference_optimizer.step()
    np.testing.assert_array_equal(host(p.detach()), host(reference.detach().to(dtype)))


def test_master_weights_keep_updates_smaller_than_the_rounding():
    def train(master_weights: bool):
        p = dg.nn.Parameter(dg.ones(4, dtype=dg.bfloat16))
        optimizer = dg.optim.SGD([p], lr=1e-3, master_weights=master_weights)
        for _ in range(100):
            p.grad = dg.ones(4, dtype=dg.bfloat16)  # each step moves p by 1e-3, below bfloat16's 2**-8 near 1
            optimizer.step()
        return host(p.detach()).astype(np.float32), optimizer.state[p]

    stuck, _ = train(False)
    moved, state = train(True)
    np.testing.assert_array_equal(stuck, np.ones(4))
    np.testing.assert_allclose(host(state["master_weight"]), 0.9, rtol=1e-5)
    assert state["master_weight"].dtype == dg.float32
    np.testing.assert_array_equal(moved, np.full(4, 0.9, dtype=np.float32).astype(dg.bfloat16).astype(np.float32))


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW"])
def test_master_weights_is_an_argument_saved_and_restored_with_the_state(name, tmp_path):
    p, optimizer = _steps(name, dg.bfloat16, master_weights=True)
    assert optimizer.param_groups[0]["master_weights"] is True
    master = host(optimizer.state[p]["master_weight"])
    path = tmp_path / "optimizer.dg"
    dg.save(optimizer.state_dict(), path)
    q = dg.nn.Parameter(p.detach().clone())
    restored = getattr(dg.optim, name)([q], **OPTIONS[name], master_weights=True)
    restored.load_state_dict(dg.load(path))
    for key, value in optimizer.state[p].items():
        if isinstance(value, dg.Tensor):
            assert restored.state[q][key].dtype == dg.float32, key  # not rounded to the parameter's dtype
            np.testing.assert_array_equal(host(restored.state[q][key]), host(value))
    np.testing.assert_array_equal(host(restored.state[q]["master_weight"]), master)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_master_weights_as_a_group_entry_work_for_every_optimizer(name):
    p = _param(dg.bfloat16)
    optimizer = getattr(dg.optim, name)([{"params": [p], "master_weights": True}], **OPTIONS[name])
    reference = dg.nn.Parameter(_param(dg.bfloat16).float().detach())
    reference_optimizer = getattr(dg.optim, name)([reference], **OPTIONS[name])
    rng = np.random.default_rng(1)
    for _ in range(3):
        grad = rng.standard_normal((3, 4)).astype(np.float32)
        p.grad, reference.grad = dg.tensor(grad).to(dg.bfloat16), dg.tensor(grad).to(dg.bfloat16).float()
        optimizer.step()
        reference_optimizer.step()
    assert optimizer.state[p]["master_weight"].dtype == dg.float32
    np.testing.assert_array_equal(host(optimizer.state[p]["master_weight"]), host(reference.detach()))
    np.testing.assert_array_equal(host(p.detach()), host(reference.detach().to(dg.bfloat16)))


def test_float32_and_float64_parameters_are_updated_in_place_as_before():
    p = _param(dg.float64)
    optimizer = dg.optim.Adam([p], lr=0.1, master_weights=True)
    array = p.array
    p.grad = dg.ones(3, 4, dtype=dg.float64)
    optimizer.step()
    assert p.array is array and "master_weight" not in optimizer.state[p]
    assert optimizer.state[p]["exp_avg"].dtype == dg.float64
