"""``GradScaler`` against ``torch.amp.GradScaler("cpu")``: the same scripted run of finite and
overflowing steps gives the same scales, the same skipped steps and the same parameters."""
import numpy as np
import pytest

import distgrad as dg
from helpers import host

torch = pytest.importorskip("torch")
# Overflowing steps are the point here: NumPy's overflow and invalid-value warnings on them are expected.
pytestmark = [pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning"),
              pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")]

STEPS = 12
OPTIONS = dict(init_scale=2.0 ** 10, growth_factor=2.0, backoff_factor=0.5, growth_interval=3)


def _run(lib, overflow_at, clip: float | None = None, options=OPTIONS, steps=STEPS, scaler=None, model=None,
         target_scale: float = 1.0):
    """Trains a linear model for ``steps``; an inf (or NaN) is written into one gradient at the steps of
    ``overflow_at`` ({step: value}). Returns the scale after each update, the steps whose update was
    skipped, the final parameters, the scaler and the model."""
    if model is None:
        lib.manual_seed(0)
        model = lib.nn.Linear(4, 3)
        with lib.no_grad():
            model.weight.copy_(lib.tensor(np.linspace(-1, 1, 12).reshape(3, 4), dtype=lib.float32))
            model.bias.zero_()
    optimizer = lib.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scaler = scaler or lib.amp.GradScaler("cpu", **options)
    rng = np.random.default_rng(0)
    scales, skipped = [], []
    for step in range(steps):
        x, y = (lib.tensor(rng.standard_normal(shape), dtype=lib.float32) for shape in ((8, 4), (8, 3)))
        loss = lib.nn.functional.mse_loss(model(x), y * target_scale)
        optimizer.zero_grad()
        scaler.scale(loss).backward()
        if step in overflow_at:
            with lib.no_grad():
                model.weight.grad[1, 2] = overflow_at[step]
        if clip is not None:
            scaler.unscale_(optimizer)
            lib.nn.utils.clip_grad_norm_(model.parameters(), clip)
        before = model.weight.detach().clone()
        scaler.step(optimizer)
        scaler.update()
        scales.append(scaler.get_scale())
        if bool((model.weight.detach() == before).all()):
            skipped.append(step)
    return scales, skipped, [np.array(p.detach().tolist()) for p in model.parameters()], scaler, model


SCRIPTS = {
    "finite steps grow the scale every growth_interval": {},
    "inf and NaN gradients skip the step and halve the scale": {2: float("inf"), 3: float("nan"), 7: -float("inf")},
    "overflows in a row": {0: float("inf"), 1: float("inf"), 2: float("inf"), 9: float("nan")},
}


@pytest.mark.parametrize("clip", [None, 0.5], ids=["step unscales", "unscale_ then clip_grad_norm_"])
@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_scales_skipped_steps_and_parameters_match_pytorch(script, clip):
    ours = _run(dg, SCRIPTS[script], clip)
    theirs = _run(torch, SCRIPTS[script], clip)
    assert ours[0] == theirs[0]
    assert ours[1] == theirs[1] == sorted(SCRIPTS[script])
    for a, b in zip(ours[2], theirs[2]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert ours[3].state_dict() == theirs[3].state_dict()


def test_a_scale_too_large_for_float32_backs_off_until_gradients_are_finite():
    options = dict(OPTIONS, init_scale=2.0 ** 127, growth_interval=2000)
    ours, theirs = (_run(lib, {}, options=options, target_scale=1e3) for lib in (dg, torch))
    assert ours[0] == theirs[0] and ours[1] == theirs[1]
    assert ours[1][0] == 0 and ours[0][-1] < 2.0 ** 127  # it overflowed at first, then trained


def test_growth_stops_where_the_scale_would_overflow_float32():
    ours = _run(dg, {}, options=dict(OPTIONS, init_scale=2.0 ** 120, growth_interval=1, growth_factor=2.0 ** 4))
    theirs = _run(torch, {}, options=dict(OPTIONS, init_scale=2.0 ** 120, growth_interval=1, growth_factor=2.0 ** 4))
    assert ours[0] == theirs[0]


def test_a_resumed_run_continues_with_the_saved_scale(tmp_path):
    overflow = SCRIPTS["inf and NaN gradients skip the step and halve the scale"]
    whole = _run(dg, overflow)
    first = _run(dg, overflow, steps=5)
    path = tmp_path / "ckpt.dg"
    dg.save({"model": first[4].state_dict(), "scaler": first[3].state_dict()}, path)
    saved = dg.load(path)
    scaler = dg.amp.GradScaler("cpu")
    scaler.load_state_dict(saved["scaler"])
    assert scaler.state_dict() == first[3].state_dict()
    # The rest of the run (the data of steps 5.. and the momentum aside): the scale sequence continues.
    rest = _run(dg, {step - 5: v for step, v in overflow.items() if step >= 5}, steps=STEPS - 5, scaler=scaler)
    assert first[0] + rest[0] == whole[0]


def test_state_dict_matches_pytorchs_before_and_after_the_first_scale():
    for options in ({}, OPTIONS):
        ours, theirs = dg.amp.GradScaler("cpu", **options), torch.amp.GradScaler("cpu", **options)
        assert ours.state_dict() == theirs.state_dict()
        ours.scale(dg.ones(1)), theirs.scale(torch.ones(1))
        assert ours.state_dict() == theirs.state_dict()


def test_the_order_of_calls_is_checked_as_in_pytorch():
    for lib in (dg, torch):
        w = lib.nn.Parameter(lib.ones(2))
        optimizer = lib.optim.SGD([w], lr=0.1)
        scaler = lib.amp.GradScaler("cpu")
        with pytest.raises(AssertionError, match="Attempted unscale_ but _scale is None"):
            scaler.unscale_(optimizer)
        scaler.scale((w * 2).sum()).backward()
        scaler.unscale_(optimizer)
        with pytest.raises(RuntimeError, match="unscale_\\(\\) has already been called on this optimizer"):
            scaler.unscale_(optimizer)
        scaler.step(optimizer)
        with pytest.raises(RuntimeError, match="step\\(\\) has already been called since the last update"):
            scaler.step(optimizer)
        with pytest.raises(RuntimeError, match="unscale_\\(\\) is being called after step"):
            scaler.unscale_(optimizer)
        scaler.update()
        with pytest.raises(AssertionError, match="No inf checks were recorded prior to update"):
            scaler.update()
        with pytest.raises(RuntimeError, match="Closure use is not currently supported"):
            scaler.step(optimizer, closure=lambda: 0)


def test_float16_gradients_are_refused_and_new_scale_sets_the_scale():
    for lib in (dg, torch):
        w = lib.nn.Parameter(lib.ones(2, dtype=lib.float16))
        optimizer = lib.optim.SGD([w], lr=0.1)
        scaler = lib.amp.GradScaler("cpu")
        scaler.scale((w * 2).sum()).backward()
        with pytest.raises(ValueError, match="Attempting to unscale FP16 gradients"):
            scaler.unscale_(optimizer)
        scaler.update(new_scale=8.0)
        assert scaler.get_scale() == 8.0
        scaler.update(new_scale=lib.tensor(4.0))
        assert scaler.get_scale() == 4.0


def test_a_disabled_scaler_passes_through():
    scaler = dg.amp.GradScaler("cpu", enabled=False)
    w = dg.nn.Parameter(dg.ones(2))
    optimizer = dg.optim.SGD([w], lr=0.5)
    loss = (w * 2).sum()
    assert scaler.scale(loss) is loss
    loss.backward()
    scaler.unscale_(optimizer)
    scaler.step(optimizer)
    scaler.update()
    np.testing.assert_array_equal(host(w.detach()), [0.0, 0.0])
    assert scaler.get_scale() == 1.0 and scaler.state_dict() == {} and not scaler.is_enabled()
    with pytest.raises(RuntimeError, match="The source state dict is empty"):
        dg.amp.GradScaler("cpu").load_state_dict({})


def test_the_cuda_scaler_disables_itself_without_a_gpu_and_the_aliases_exist():
    if dg.cuda.is_available():
        assert dg.amp.GradScaler().is_enabled()
    else:
        with pytest.warns(UserWarning, match="CUDA is not available.  Disabling"):
            assert not dg.amp.GradScaler().is_enabled()
        with pytest.warns(UserWarning, match="CUDA is not available"):
            assert not dg.cuda.amp.GradScaler(init_scale=4.0).is_enabled()
    assert dg.cpu.amp.GradScaler(init_scale=4.0).get_scale() == 4.0
    assert isinstance(dg.cpu.amp.GradScaler(), dg.amp.GradScaler)


def test_bfloat16_gradients_are_unscaled_in_place(device):
    w = dg.nn.Parameter(dg.ones(3, dtype=dg.bfloat16, device=device))
    optimizer = dg.optim.SGD([w], lr=1.0)
    scaler = dg.amp.GradScaler(device, init_scale=256.0)
    scaler.scale((w * dg.tensor([1.0, 2.0, 3.0], dtype=dg.bfloat16, device=device)).sum()).backward()
    scaler.unscale_(optimizer)
    assert w.grad.dtype == dg.bfloat16
    np.testing.assert_array_equal(host(w.grad).astype(np.float32), [1.0, 2.0, 3.0])
