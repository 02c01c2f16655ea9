"""distgrad.optim.lr_scheduler: each schedule's rates, checked by hand and against torch's schedulers."""
import math
import warnings

import numpy as np
import pytest

import distgrad as dg
from distgrad import optim
from distgrad.optim import lr_scheduler as sched

LRS = (0.1, 0.02)  # two parameter groups with different rates


def make_optimizer(lib, name="SGD", **kwargs):
    groups = [{"params": [lib.zeros(2, requires_grad=True)], "lr": lr} for lr in LRS]
    return getattr(lib.optim, name)(groups, lr=LRS[0], **kwargs)


def rates(scheduler, optimizer, steps, key="lr"):
    """The groups' ``key`` before each of ``steps`` optimizer steps (the scheduler stepping after each)."""
    seen = []
    for _ in range(steps):
        seen.append([g[key] for g in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    return seen


SINGLE = {
    "StepLR": lambda m, o: m.StepLR(o, step_size=3, gamma=0.5),
    "MultiStepLR": lambda m, o: m.MultiStepLR(o, milestones=[2, 5, 5, 9], gamma=0.3),
    "ExponentialLR": lambda m, o: m.ExponentialLR(o, gamma=0.9),
    "CosineAnnealingLR": lambda m, o: m.CosineAnnealingLR(o, T_max=7, eta_min=0.001),
    "LinearLR": lambda m, o: m.LinearLR(o, start_factor=0.25, end_factor=0.75, total_iters=6),
    "LambdaLR": lambda m, o: m.LambdaLR(o, lr_lambda=lambda e: 1 / (1 + e)),
    "LambdaLR-per-group": lambda m, o: m.LambdaLR(o, [lambda e: 0.5 ** e, lambda e: e + 1.0]),
    "OneCycleLR-cos": lambda m, o: m.OneCycleLR(o, max_lr=[1.0, 0.5], total_steps=20),
    "OneCycleLR-linear-3phase": lambda m, o: m.OneCycleLR(o, max_lr=0.8, epochs=4, steps_per_epoch=5, pct_start=0.25,
                                                          anneal_strategy="linear", three_phase=True),
    "SequentialLR-warmup-cosine": lambda m, o: m.SequentialLR(
        o, [m.LinearLR(o, start_factor=0.1, total_iters=4), m.CosineAnnealingLR(o, T_max=10)], milestones=[4]),
    "SequentialLR-three": lambda m, o: m.SequentialLR(
        o, [m.ExponentialLR(o, 0.5), m.StepLR(o, 2, 0.1), m.MultiStepLR(o, [1, 3])], milestones=[3, 8]),
    "ChainedScheduler": lambda m, o: m.ChainedScheduler(
        [m.LinearLR(o, start_factor=0.5, total_iters=3), m.ExponentialLR(o, gamma=0.9)]),
    "ConstantLR": lambda m, o: m.ConstantLR(o, factor=0.25, total_iters=4),
    "PolynomialLR": lambda m, o: m.PolynomialLR(o, total_iters=8, power=2.0),
    "MultiplicativeLR": lambda m, o: m.MultiplicativeLR(o, lambda e: 0.9 if e % 2 else 0.95),
    "CosineAnnealingWarmRestarts": lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=3, eta_min=0.001),
    "CosineAnnealingWarmRestarts-mult": lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=2),
    "CyclicLR-triangular": lambda m, o: m.CyclicLR(o, [0.01, 0.002], [0.1, 0.05], step_size_up=3, step_size_down=5),
    "CyclicLR-triangular2": lambda m, o: m.CyclicLR(o, 0.01, 0.1, step_size_up=2, mode="triangular2"),
    "CyclicLR-exp_range": lambda m, o: m.CyclicLR(o, 0.01, 0.1, step_size_up=4, mode="exp_range", gamma=0.9),
    "CyclicLR-scale_fn": lambda m, o: m.CyclicLR(o, 0.01, 0.1, step_size_up=3, scale_fn=lambda x: 0.8 ** x,
                                                 scale_mode="iterations", cycle_momentum=False),
    "SequentialLR-constant-polynomial": lambda m, o: m.SequentialLR(
        o, [m.ConstantLR(o, 0.5, total_iters=3), m.PolynomialLR(o, total_iters=10)], milestones=[3]),
}
SGD_MOMENTUM = {"CyclicLR-triangular", "CyclicLR-triangular2", "CyclicLR-exp_range"}  # cycle_momentum needs one


@pytest.mark.parametrize("name", SINGLE)
def test_rates_match_torch(name):
    torch = pytest.importorskip("torch")
    steps = 20
    kwargs = {"momentum": 0.9} if name in SGD_MOMENTUM else {}
    ours_opt, theirs_opt = make_optimizer(dg, **kwargs), make_optimizer(torch, **kwargs)
    ours = rates(SINGLE[name](sched, ours_opt), ours_opt, steps)
    theirs = rates(SINGLE[name](torch.optim.lr_scheduler, theirs_opt), theirs_opt, steps)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name,kwargs,key", [
    ("SGD", dict(momentum=0.9), "momentum"),
    ("Adam", {}, "betas"),
])
def test_one_cycle_momentum_matches_torch(name, kwargs, key):
    torch = pytest.importorskip("torch")
    ours_opt, theirs_opt = make_optimizer(dg, name, **kwargs), make_optimizer(torch, name, **kwargs)
    ours = rates(sched.OneCycleLR(ours_opt, 1.0, total_steps=12, three_phase=True), ours_opt, 12, key)
    theirs = rates(torch.optim.lr_scheduler.OneCycleLR(theirs_opt, 1.0, total_steps=12, three_phase=True),
                   theirs_opt, 12, key)
    np.testing.assert_allclose(np.array(ours, dtype=float), np.array(theirs, dtype=float), rtol=1e-12)


@pytest.mark.parametrize("name,mode", [("SGD", "triangular2"), ("Adam", "exp_range")])
def test_cyclic_momentum_matches_torch(name, mode):
    torch = pytest.importorskip("torch")
    kwargs = {"momentum": 0.9} if name == "SGD" else {}
    key = "momentum" if name == "SGD" else "betas"
    seen = []
    for lib in (dg, torch):
        opt = make_optimizer(lib, name, **kwargs)
        scheduler = lib.optim.lr_scheduler.CyclicLR(opt, 0.01, 0.1, step_size_up=3, mode=mode, gamma=0.95,
                                                    base_momentum=0.7, max_momentum=0.95)
        seen.append(np.array(rates(scheduler, opt, 15, key), dtype=float))
    np.testing.assert_allclose(seen[0], seen[1], rtol=1e-12)


def test_warm_restarts_take_fractional_epochs_like_torch():
    torch = pytest.importorskip("torch")
    seen = []
    for lib in (dg, torch):
        opt = make_optimizer(lib)
        scheduler = lib.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=2, T_mult=3, eta_min=0.005)
        lrs = []
        for epoch in range(5):
            for i in range(4):
                opt.step()
                scheduler.step(epoch + i / 4)
                lrs.append([g["lr"] for g in opt.param_groups])
        scheduler.step(0.5)
        lrs.append(scheduler.get_last_lr())
        seen.append(lrs)
    np.testing.assert_allclose(seen[0], seen[1], rtol=1e-12)
    opt = make_optimizer(dg)
    opt.step()
    with pytest.raises(ValueError, match="Expected non-negative epoch, but got -1"):
        sched.CosineAnnealingWarmRestarts(opt, T_0=2).step(-1)


PLATEAU_METRICS = [1.0, 0.9, 0.95, 0.95, 0.96, 0.97, 0.5, 0.55, 0.56, 0.6, 0.61, 0.7, 0.2, 0.21, 0.3, 0.3, 0.3, 0.4,
                   0.4, 0.5]


@pytest.mark.parametrize("kwargs", [
    dict(), dict(patience=1), dict(mode="max", patience=2, factor=0.5), dict(patience=0, cooldown=2),
    dict(patience=1, threshold=0.1, threshold_mode="abs"), dict(patience=1, min_lr=[0.05, 0.001]),
    dict(patience=0, factor=0.5, eps=0.03),
])
def test_reduce_lr_on_plateau_matches_torch(kwargs):
    torch = pytest.importorskip("torch")
    seen = []
    for lib in (dg, torch):
        opt = make_optimizer(lib)
        scheduler = lib.optim.lr_scheduler.ReduceLROnPlateau(opt, **kwargs)
        lrs = []
        for metric in PLATEAU_METRICS:
            opt.step()
            scheduler.step(lib.tensor(metric))
            lrs.append(scheduler.get_last_lr() + [scheduler.num_bad_epochs, scheduler.cooldown_counter])
        seen.append(lrs)
    np.testing.assert_allclose(seen[0], seen[1], rtol=1e-12)


def test_reduce_lr_on_plateau_state_resumes_and_arguments_are_checked():
    opt = make_optimizer(dg)
    scheduler = sched.ReduceLROnPlateau(opt, mode="max", patience=1)
    for metric in (1.0, 0.5, 0.4):
        scheduler.step(metric)
    state = scheduler.state_dict()
    fresh = sched.ReduceLROnPlateau(make_optimizer(dg))
    fresh.load_state_dict(state)
    assert (fresh.mode, fresh.best, fresh.mode_worse, fresh.num_bad_epochs) == ("max", 1.0, -math.inf, 0)
    with pytest.raises(ValueError, match="Factor should be < 1.0."):
        sched.ReduceLROnPlateau(opt, factor=1.0)
    with pytest.raises(ValueError, match="mode sideways is unknown!"):
        sched.ReduceLROnPlateau(opt, mode="sideways")
    with pytest.raises(ValueError, match="expected 2 min_lrs, got 1"):
        sched.ReduceLROnPlateau(opt, min_lr=[0.1])


# --- hand-computed rates (group 0, lr 0.1) -----------------------------------------------------
def first_group(scheduler_factory, steps):
    opt = make_optimizer(dg)
    return [r[0] for r in rates(scheduler_factory(opt), opt, steps)]


@pytest.mark.parametrize("factory,expected", [
    (lambda o: sched.StepLR(o, step_size=2, gamma=0.5), [0.1, 0.1, 0.05, 0.05, 0.025]),
    (lambda o: sched.MultiStepLR(o, milestones=[1, 3, 3], gamma=0.5), [0.1, 0.05, 0.05, 0.0125, 0.0125]),
    (lambda o: sched.ExponentialLR(o, gamma=0.5), [0.1, 0.05, 0.025, 0.0125]),
    (lambda o: sched.CosineAnnealingLR(o, T_max=2), [0.1, 0.05, 0.0, 0.05, 0.1]),
    (lambda o: sched.LinearLR(o, start_factor=0.25, total_iters=3), [0.025, 0.05, 0.075, 0.1, 0.1]),
    (lambda o: sched.LambdaLR(o, lambda epoch: 2.0 ** -epoch), [0.1, 0.05, 0.025]),
    (lambda o: sched.SequentialLR(o, [sched.LinearLR(o, start_factor=0.5, total_iters=2),
                                      sched.ExponentialLR(o, gamma=0.5)], milestones=[2]),
     [0.05, 0.075, 0.1, 0.05, 0.025]),
    (lambda o: sched.ChainedScheduler([sched.LinearLR(o, start_factor=0.5, total_iters=2),
                                       sched.ExponentialLR(o, gamma=0.5)]),
     [0.05, 0.075 * 0.5, 0.1 * 0.25, 0.1 * 0.125]),
])
def test_rates_by_hand(factory, expected):
    np.testing.assert_allclose(first_group(factory, len(expected)), expected, rtol=1e-12, atol=1e-15)


def test_one_cycle_rises_to_max_lr_then_falls_to_min_lr():
    opt = make_optimizer(dg, momentum=0.9)
    scheduler = sched.OneCycleLR(opt, max_lr=1.0, total_steps=10, pct_start=0.3, div_factor=10.0,
                                 final_div_factor=100.0)
    seen = []
    for _ in range(10):
        seen.append((opt.param_groups[0]["lr"], opt.param_groups[0]["momentum"]))
        opt.step()
        if len(seen) < 10:
            scheduler.step()
    lr, momentum = np.array(seen).T
    # warm-up over steps 0..2 (pct_start * total - 1 = 2), a half-cosine each way
    np.testing.assert_allclose(lr[:3], [0.1, 0.1 + 0.9 * 0.5, 1.0])
    np.testing.assert_allclose(momentum[:3], [0.95, 0.9, 0.85])
    np.testing.assert_allclose(lr[9], 0.1 / 100.0)
    np.testing.assert_allclose(momentum[9], 0.95)
    assert all(a >= b for a, b in zip(lr[2:], lr[3:]))


def test_one_cycle_refuses_to_step_past_total_steps():
    opt = make_optimizer(dg)
    scheduler = sched.OneCycleLR(opt, max_lr=1.0, total_steps=3)
    for _ in range(3):  # like PyTorch, one step past the last (step index 3) is still allowed
        opt.step()
        scheduler.step()
    with pytest.raises(ValueError, match="Tried to step 4 times. The specified number of total steps is 3"):
        scheduler.step()


@pytest.mark.parametrize("kwargs,message", [
    (dict(), "You must define either total_steps OR"),
    (dict(total_steps=0), "Expected positive integer total_steps, but got 0"),
    (dict(total_steps=5, pct_start=1), "Expected float between 0 and 1 pct_start, but got 1"),
    (dict(total_steps=5, anneal_strategy="step"), "anneal_strategy must be one of 'cos' or 'linear'"),
    (dict(total_steps=5, max_lr=[1.0]), "max_lr must have the same length as optimizer.param_groups"),
])
def test_one_cycle_checks_its_arguments(kwargs, message):
    kwargs = {"max_lr": 1.0, **kwargs}
    with pytest.raises(ValueError, match=message):
        sched.OneCycleLR(make_optimizer(dg), **kwargs)


def test_one_cycle_momentum_needs_an_optimizer_with_momentum():
    opt = optim.Adagrad([dg.zeros(1, requires_grad=True)])
    with pytest.raises(ValueError, match="optimizer must support momentum or beta1"):
        sched.OneCycleLR(opt, max_lr=1.0, total_steps=5)


# --- the scheduler protocol --------------------------------------------------------------------
def test_get_last_lr_and_last_epoch_follow_the_steps():
    opt = make_optimizer(dg)
    scheduler = sched.StepLR(opt, step_size=1, gamma=0.5)
    assert scheduler.last_epoch == 0 and scheduler.get_last_lr() == list(LRS)
    opt.step()
    scheduler.step()
    assert scheduler.last_epoch == 1 and scheduler.get_last_lr() == [0.05, 0.01]
    assert [g["initial_lr"] for g in opt.param_groups] == list(LRS)


def test_stepping_the_scheduler_before_the_optimizer_warns():
    opt = make_optimizer(dg)
    scheduler = sched.ExponentialLR(opt, gamma=0.5)
    with pytest.warns(UserWarning, match=r"lr_scheduler.step\(\)` before `optimizer.step\(\)`"):
        scheduler.step()


def test_an_optimizer_with_its_own_step_counts_as_stepped_for_the_order_check():
    class PlainSGD(optim.Optimizer):  # written the PyTorch way: step() itself, no _update
        def __init__(self, params, lr):
            super().__init__(params, dict(lr=lr))

        def step(self, closure=None):
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        p.data.sub_(p.grad * group["lr"])

    p = dg.ones(2, requires_grad=True)
    opt = PlainSGD([p], lr=0.5)
    scheduler = sched.StepLR(opt, step_size=1, gamma=0.5)
    p.grad = dg.ones(2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt.step()
        scheduler.step()
    assert p.tolist() == [0.5, 0.5] and opt.param_groups[0]["lr"] == 0.25
    assert PlainSGD.step.__name__ == "step"


def test_stepping_in_the_right_order_does_not_warn():
    opt = make_optimizer(dg)
    scheduler = sched.ExponentialLR(opt, gamma=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt.step()
        scheduler.step()


@pytest.mark.parametrize("name", ["StepLR", "CosineAnnealingLR", "OneCycleLR-cos", "SequentialLR-warmup-cosine",
                                  "ChainedScheduler", "LambdaLR", "ConstantLR", "PolynomialLR",
                                  "CosineAnnealingWarmRestarts-mult", "CyclicLR-scale_fn"])
def test_state_dict_resumes_the_schedule_in_a_new_optimizer(name):
    opt = make_optimizer(dg)
    scheduler = SINGLE[name](sched, opt)
    rates(scheduler, opt, 5)
    expected = rates(scheduler, opt, 6)

    opt = make_optimizer(dg)
    scheduler = SINGLE[name](sched, opt)
    rates(scheduler, opt, 5)
    saved_opt, saved_sched = opt.state_dict(), scheduler.state_dict()
    assert "optimizer" not in saved_sched
    resumed_opt = make_optimizer(dg)
    resumed = SINGLE[name](sched, resumed_opt)
    resumed_opt.load_state_dict(saved_opt)
    resumed.load_state_dict(saved_sched)
    np.testing.assert_allclose(rates(resumed, resumed_opt, 6), expected, rtol=1e-12)


def test_lambda_lr_state_keeps_callable_objects_attributes_not_functions():
    class Warmup:
        def __init__(self):
            self.length = 4

        def __call__(self, epoch):
            return min(1.0, (epoch + 1) / self.length)

    opt = make_optimizer(dg)
    scheduler = sched.LambdaLR(opt, [Warmup(), lambda epoch: 1.0])
    assert scheduler.state_dict()["lr_lambdas"] == [{"length": 4}, None]
    fresh = sched.LambdaLR(make_optimizer(dg), [Warmup(), lambda epoch: 1.0])
    state = scheduler.state_dict()
    state["lr_lambdas"][0]["length"] = 8
    fresh.load_state_dict(state)
    assert fresh.lr_lambdas[0].length == 8


def test_resuming_without_initial_lr_is_an_error():
    with pytest.raises(KeyError, match="param 'initial_lr' is not specified in param_groups\\[0\\]"):
        sched.StepLR(make_optimizer(dg), step_size=2, last_epoch=3)


def test_resuming_with_last_epoch_continues_from_the_current_rate():
    opt = make_optimizer(dg)
    sched.ExponentialLR(opt, gamma=0.5)
    resumed = sched.CosineAnnealingLR(opt, T_max=4, last_epoch=1)
    assert resumed.last_epoch == 2 and opt.param_groups[0]["lr"] == 0.1  # the initial step keeps the rate
    opt.step()
    resumed.step()
    ratio = (1 + math.cos(math.pi * 3 / 4)) / (1 + math.cos(math.pi * 2 / 4))
    np.testing.assert_allclose(opt.param_groups[0]["lr"], 0.1 * ratio)


@pytest.mark.parametrize("build,error,message", [
    (lambda o: sched.SequentialLR(o, [sched.StepLR(o, 2)], milestones=[3]), ValueError,
     "expects number of schedulers provided to be one more than the number of milestone points"),
    (lambda o: sched.SequentialLR(o, [], milestones=[]), ValueError, "expects at least one scheduler"),
    (lambda o: sched.ChainedScheduler([sched.StepLR(o, 2), sched.StepLR(make_optimizer(dg), 2)]), ValueError,
     "expects all schedulers to belong to the same optimizer"),
    (lambda o: sched.StepLR(object(), 2), TypeError, "object is not an Optimizer"),
    (lambda o: sched.LambdaLR(o, [lambda e: 1.0]), ValueError, "Expected 2 lr_lambdas, but got 1"),
    (lambda o: sched.LinearLR(o, start_factor=0), ValueError, "Starting multiplicative factor expected"),
    (lambda o: sched.ConstantLR(o, factor=1.5), ValueError, "Constant multiplicative factor expected"),
    (lambda o: sched.CosineAnnealingWarmRestarts(o, T_0=0), ValueError, "Expected positive integer T_0"),
    (lambda o: sched.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=0), ValueError, "Expected integer T_mult >= 1"),
    (lambda o: sched.CyclicLR(o, 0.1, 1.0, mode="sawtooth"), ValueError, "mode is invalid and scale_fn is None"),
    (lambda o: sched.CyclicLR(optim.Adagrad(o.param_groups[0]["params"]), 0.1, 1.0), ValueError,
     "optimizer must support momentum or beta1"),
])
def test_bad_arguments_raise_like_torch(build, error, message):
    with pytest.raises(error, match=message):
        build(make_optimizer(dg))
