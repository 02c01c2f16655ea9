"""distgrad.optim: each optimizer's update rule, checked by hand and against torch.optim."""
import itertools
import math

import numpy as np
import pytest

import distgrad as dg
from distgrad import optim
from helpers import host

RNG = np.random.default_rng(0)
INITS = [RNG.standard_normal((3, 4)), RNG.standard_normal(5)]
GRADS = [[RNG.standard_normal(a.shape) for a in INITS] for _ in range(5)]


def params(*values, dtype=dg.float64, device="cpu"):
    return [dg.tensor(np.asarray(v, dtype=np.float64), dtype=dtype, device=device, requires_grad=True)
            for v in values]


def set_grads(ps, grads):
    for p, g in zip(ps, grads):
        p.grad = dg.tensor(np.asarray(g), dtype=p.dtype, device=p.device)


def run_distgrad(name, kwargs, inits=INITS, grads=GRADS, device="cpu"):
    ps = params(*inits, device=device)
    opt = getattr(optim, name)(ps, **kwargs)
    for step_grads in grads:
        set_grads(ps, step_grads)
        opt.step()
    return [host(p) for p in ps]


def run_torch(torch, name, kwargs, inits=INITS, grads=GRADS):
    # float64 by default: torch keeps NAdam's mu_product in the default dtype, distgrad in a Python float
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        ps = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in inits]
        opt = getattr(torch.optim, name)(ps, **kwargs)
        for step_grads in grads:
            for p, g in zip(ps, step_grads):
                p.grad = torch.tensor(g, dtype=torch.float64)
            opt.step()
    finally:
        torch.set_default_dtype(default)
    return [p.detach().numpy() for p in ps]


def combinations(**options):
    names = list(options)
    return [dict(zip(names, values)) for values in itertools.product(*options.values())]


SGD_CASES = [c for c in combinations(lr=[0.1], momentum=[0, 0.9], dampening=[0, 0.3], weight_decay=[0, 0.1],
                                     nesterov=[False, True], maximize=[False, True])
             if not c["nesterov"] or (c["momentum"] > 0 and c["dampening"] == 0)]
ADAM_CASES = combinations(lr=[0.05], betas=[(0.9, 0.999), (0.3, 0.5)], weight_decay=[0, 0.1], amsgrad=[False, True],
                          maximize=[False, True])
RMSPROP_CASES = combinations(lr=[0.01], alpha=[0.99, 0.5], weight_decay=[0, 0.1], momentum=[0, 0.9],
                             centered=[False, True], maximize=[False, True])
ADAGRAD_CASES = combinations(lr=[0.1], lr_decay=[0, 0.1], weight_decay=[0, 0.1], initial_accumulator_value=[0, 0.5],
                             maximize=[False, True])
ADADELTA_CASES = combinations(lr=[1.0, 0.5], rho=[0.9, 0.5], eps=[1e-6, 1e-3], weight_decay=[0, 0.1],
                              maximize=[False, True])
ADAMAX_CASES = combinations(lr=[0.05], betas=[(0.9, 0.999), (0.3, 0.5)], eps=[1e-8, 0.1], weight_decay=[0, 0.1],
                            maximize=[False, True])
NADAM_CASES = combinations(lr=[0.05], betas=[(0.9, 0.999), (0.3, 0.5)], weight_decay=[0, 0.1],
                           momentum_decay=[4e-3, 0.5], decoupled_weight_decay=[False, True], maximize=[False, True])
# betas[1] = 0.5 makes the variance rectification start on step 2, 0.999 keeps it off for all five steps
RADAM_CASES = combinations(lr=[0.05], betas=[(0.9, 0.999), (0.3, 0.5), (0.9, 0.7)], weight_decay=[0, 0.1],
                           decoupled_weight_decay=[False, True], maximize=[False, True])
ALL_CASES = ([("SGD", c) for c in SGD_CASES] + [("Adam", c) for c in ADAM_CASES] + [("AdamW", c) for c in ADAM_CASES]
             + [("Adam", dict(c, decoupled_weight_decay=True)) for c in ADAM_CASES if c["weight_decay"]]
             + [("RMSprop", c) for c in RMSPROP_CASES] + [("Adagrad", c) for c in ADAGRAD_CASES]
             + [("Adadelta", c) for c in ADADELTA_CASES] + [("Adamax", c) for c in ADAMAX_CASES]
             + [("NAdam", c) for c in NADAM_CASES] + [("RAdam", c) for c in RADAM_CASES])


@pytest.mark.parametrize("name,kwargs", ALL_CASES, ids=[f"{n}-{c}" for n, c in ALL_CASES])
def test_five_steps_match_torch(name, kwargs):
    torch = pytest.importorskip("torch")
    ours = run_distgrad(name, kwargs)
    theirs = run_torch(torch, name, kwargs)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)


def test_param_groups_with_their_own_hyperparameters_match_torch():
    torch = pytest.importorskip("torch")
    ps = params(*INITS)
    opt = optim.SGD([{"params": [ps[0]]}, {"params": [ps[1]], "lr": 0.5, "momentum": 0.5}], lr=0.1, momentum=0.9)
    tps = [torch.tensor(a, requires_grad=True) for a in INITS]
    topt = torch.optim.SGD([{"params": [tps[0]]}, {"params": [tps[1]], "lr": 0.5, "momentum": 0.5}],
                           lr=0.1, momentum=0.9)
    for step_grads in GRADS:
        set_grads(ps, step_grads)
        for p, g in zip(tps, step_grads):
            p.grad = torch.tensor(g)
        opt.step()
        topt.step()
    for p, tp in zip(ps, tps):
        np.testing.assert_allclose(p.array, tp.detach().numpy(), rtol=1e-10, atol=1e-10)


# --- hand-computed updates ---------------------------------------------------------------------
def test_sgd_with_momentum_two_steps_by_hand():
    (p,) = params([1.0, -2.0])
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    set_grads([p], [[0.5, 1.0]])
    opt.step()  # buffer = g
    np.testing.assert_allclose(p.array, [1.0 - 0.1 * 0.5, -2.0 - 0.1 * 1.0])
    opt.step()  # buffer = 0.9 * g + g
    np.testing.assert_allclose(p.array, [0.95 - 0.1 * 0.95, -2.1 - 0.1 * 1.9])


def test_sgd_nesterov_weight_decay_and_maximize_by_hand():
    (p,) = params([2.0])
    opt = optim.SGD([p], lr=0.1, momentum=0.5, weight_decay=0.25, nesterov=True, maximize=True)
    set_grads([p], [[1.0]])
    opt.step()
    g = -1.0 + 0.25 * 2.0  # ascend, plus weight decay
    np.testing.assert_allclose(p.array, [2.0 - 0.1 * (g + 0.5 * g)])


def test_adam_first_step_by_hand():
    (p,) = params([1.0, 1.0])
    opt = optim.Adam([p], lr=0.1, betas=(0.9, 0.99), eps=1e-3)
    set_grads([p], [[0.5, -2.0]])
    opt.step()
    # after bias correction m_hat = g and v_hat = g * g, so the step is lr * g / (|g| + eps)
    np.testing.assert_allclose(p.array, [1.0 - 0.1 * 0.5 / (0.5 + 1e-3), 1.0 + 0.1 * 2.0 / (2.0 + 1e-3)])
    state = opt.state[p]
    assert state["step"] == 1
    np.testing.assert_allclose(state["exp_avg"].array, [0.05, -0.2])
    np.testing.assert_allclose(state["exp_avg_sq"].array, [0.01 * 0.25, 0.01 * 4.0])


def test_adam_second_step_by_hand():
    (p,) = params([0.0])
    opt = optim.Adam([p], lr=1.0, betas=(0.5, 0.5), eps=0.0)
    set_grads([p], [[1.0]])
    opt.step()
    set_grads([p], [[3.0]])
    opt.step()
    m, v = 0.5 * 0.5 + 0.5 * 3.0, 0.5 * 0.5 + 0.5 * 9.0  # m_1 = 0.5, v_1 = 0.5
    expected = -1.0 - (m / (1 - 0.25)) / (math.sqrt(v) / math.sqrt(1 - 0.25))
    np.testing.assert_allclose(p.array, [expected])


def test_amsgrad_divides_by_the_largest_second_moment_seen():
    (p,) = params([0.0])
    opt = optim.Adam([p], lr=1.0, betas=(0.0, 0.5), eps=0.0, amsgrad=True)
    set_grads([p], [[2.0]])
    opt.step()  # v = 2, max = 2
    set_grads([p], [[0.5]])
    opt.step()  # v = 1.125 < max = 2
    assert opt.state[p]["max_exp_avg_sq"].array[0] == 2.0
    np.testing.assert_allclose(p.array, [-1.0 - 0.5 / (math.sqrt(2.0) / math.sqrt(0.75))])


def test_adamw_decays_the_weights_before_the_adam_step():
    (p,) = params([2.0])
    opt = optim.AdamW([p], lr=0.1, weight_decay=0.5, eps=0.0)
    set_grads([p], [[4.0]])
    opt.step()
    np.testing.assert_allclose(p.array, [2.0 * (1 - 0.1 * 0.5) - 0.1])


def test_rmsprop_first_step_by_hand():
    (p,) = params([1.0, 1.0])
    opt = optim.RMSprop([p], lr=0.01, alpha=0.75, eps=0.0)
    set_grads([p], [[2.0, -1.0]])
    opt.step()
    # v = 0.25 * g * g, so the step is lr * g / (0.5 * |g|) = 2 * lr * sign(g)
    np.testing.assert_allclose(p.array, [1.0 - 0.02, 1.0 + 0.02])


def test_centered_rmsprop_with_momentum_first_step_by_hand():
    (p,) = params([0.0])
    opt = optim.RMSprop([p], lr=0.1, alpha=0.5, eps=0.0, momentum=0.9, centered=True)
    set_grads([p], [[2.0]])
    opt.step()
    v, a = 0.5 * 4.0, 0.5 * 2.0
    np.testing.assert_allclose(p.array, [-0.1 * 2.0 / math.sqrt(v - a * a)])


def test_adagrad_two_steps_by_hand():
    (p,) = params([1.0])
    opt = optim.Adagrad([p], lr=0.1, lr_decay=0.5, initial_accumulator_value=1.0, eps=0.0)
    set_grads([p], [[3.0]])
    opt.step()
    after_one = 1.0 - 0.1 * 3.0 / math.sqrt(1.0 + 9.0)
    np.testing.assert_allclose(p.array, [after_one])
    set_grads([p], [[1.0]])
    opt.step()
    np.testing.assert_allclose(p.array, [after_one - 0.1 / (1 + 0.5) * 1.0 / math.sqrt(11.0)])


# --- behaviour shared by all optimizers --------------------------------------------------------
OPTIMIZERS = [optim.SGD, optim.Adam, optim.AdamW, optim.RMSprop, optim.Adagrad, optim.Adadelta, optim.Adamax,
              optim.NAdam, optim.RAdam]


@pytest.mark.parametrize("cls", OPTIMIZERS)
def test_parameters_without_grad_are_left_alone(cls):
    a, b = params([1.0, 2.0], [3.0])
    opt = cls([a, b], lr=0.1)
    state_before = {k: v.array.tolist() if isinstance(v, dg.Tensor) else v for k, v in opt.state[b].items()}
    set_grads([a], [[1.0, 1.0]])
    opt.step()
    assert b.array.tolist() == [3.0] and b._version[0] == 0
    assert {k: v.array.tolist() if isinstance(v, dg.Tensor) else v for k, v in opt.state[b].items()} == state_before
    assert a.array.tolist() != [1.0, 2.0]


@pytest.mark.parametrize("cls", OPTIMIZERS)
def test_step_updates_in_place_bumps_the_version_and_records_nothing(cls):
    (p,) = params([1.0, 2.0])
    array = p.array
    opt = cls([p], lr=0.1)
    for expected_version in (1, 2):
        set_grads([p], [[1.0, -1.0]])
        opt.step()
        assert p.array is array and p._version[0] == expected_version
    assert p.grad_fn is None and p.is_leaf and p.grad.grad_fn is None


def test_backward_through_a_graph_that_saved_a_stepped_parameter_fails():
    (p,) = params([1.0, 2.0])
    y = p * p
    opt = optim.SGD([p], lr=0.1)
    set_grads([p], [[1.0, 1.0]])
    opt.step()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward(dg.ones(2, dtype=dg.float64))


@pytest.mark.parametrize("cls", OPTIMIZERS)
def test_float32_parameters_and_state_stay_float32(cls):
    (p,) = params([1.0, 2.0], dtype=dg.float32)
    opt = cls([p], lr=0.1)
    for _ in range(2):
        set_grads([p], [[0.5, -0.5]])
        opt.step()
    assert p.dtype == dg.float32
    assert all(v.dtype == dg.float32 for v in opt.state[p].values() if isinstance(v, dg.Tensor))


@pytest.mark.parametrize("name,kwargs", [("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
                                         ("Adam", dict(lr=0.1, amsgrad=True)), ("AdamW", dict(lr=0.1)),
                                         ("RMSprop", dict(lr=0.01, momentum=0.9, centered=True)),
                                         ("Adagrad", dict(lr=0.1, lr_decay=0.1)), ("Adadelta", dict(lr=0.5)),
                                         ("Adamax", dict(lr=0.1, weight_decay=0.1)),
                                         ("NAdam", dict(lr=0.1, decoupled_weight_decay=True, weight_decay=0.1)),
                                         ("RAdam", dict(lr=0.1, betas=(0.9, 0.5)))])
def test_steps_on_the_device_match_the_cpu(name, kwargs, device):
    on_device = run_distgrad(name, kwargs, device=device)
    on_cpu = run_distgrad(name, kwargs)
    for a, b in zip(on_device, on_cpu):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_zero_grad_sets_grads_to_none_by_default():
    a, b = params([1.0], [2.0])
    opt = optim.SGD([a, b], lr=0.1)
    set_grads([a], [[5.0]])
    opt.zero_grad()
    assert a.grad is None and b.grad is None


def test_zero_grad_can_fill_with_zeros_instead():
    (p,) = params([1.0, 2.0])
    opt = optim.SGD([p], lr=0.1)
    set_grads([p], [[5.0, 6.0]])
    grad = p.grad
    opt.zero_grad(set_to_none=False)
    assert p.grad is grad and grad.array.tolist() == [0.0, 0.0] and not grad.requires_grad


def test_step_runs_the_closure_with_grad_enabled_and_returns_its_loss():
    (p,) = params([3.0])
    opt = optim.SGD([p], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = p * p
        loss.backward(dg.ones(1, dtype=dg.float64))
        return loss

    with dg.no_grad():
        loss = opt.step(closure)
    assert loss.array.tolist() == [9.0]
    np.testing.assert_allclose(p.array, [3.0 - 0.1 * 6.0])


# --- parameter groups --------------------------------------------------------------------------
def test_groups_take_defaults_for_what_they_do_not_set():
    a, b = params([1.0], [2.0])
    opt = optim.Adam([{"params": a}, {"params": [b], "lr": 0.5}], lr=0.1, betas=(0.8, 0.9))
    assert opt.param_groups[0]["lr"] == 0.1 and opt.param_groups[1]["lr"] == 0.5
    assert opt.param_groups[1]["betas"] == (0.8, 0.9) and opt.param_groups[0]["params"] == [a]


def test_add_param_group_adds_a_group_that_steps():
    a, b = params([1.0], [2.0])
    opt = optim.Adagrad([a], lr=0.1)
    opt.add_param_group({"params": [b], "lr": 1.0})
    set_grads([a, b], [[1.0], [1.0]])
    opt.step()
    np.testing.assert_allclose(b.array, [2.0 - 1.0 / (1.0 + 1e-10)])


def test_a_parameter_may_not_be_in_two_groups():
    a, b = params([1.0], [2.0])
    opt = optim.SGD([a, b], lr=0.1)
    with pytest.raises(ValueError, match="some parameters appear in more than one parameter group"):
        opt.add_param_group({"params": [b]})


@pytest.mark.parametrize("bad,error,message", [
    (lambda: dg.zeros(2, requires_grad=True), TypeError, "should be an iterable of Tensors or dicts"),
    (lambda: [], ValueError, "optimizer got an empty parameter list"),
    (lambda: [1.0], TypeError, "optimizer can only optimize Tensors, but one of the params is float"),
    (lambda: [{"params": {dg.zeros(1)}}], TypeError, "ordered collections"),
    (lambda: [dg.ones(1, requires_grad=True) * 2], ValueError, "can't optimize a non-leaf Tensor"),
])
def test_bad_params_are_refused(bad, error, message):
    with pytest.raises(error, match=message):
        optim.SGD(bad(), lr=0.1)


@pytest.mark.parametrize("cls,kwargs,message", [
    (optim.SGD, dict(lr=-1), "Invalid learning rate: -1"),
    (optim.SGD, dict(lr=0.1, momentum=-0.5), "Invalid momentum value: -0.5"),
    (optim.SGD, dict(lr=0.1, weight_decay=-1), "Invalid weight_decay value: -1"),
    (optim.SGD, dict(lr=0.1, nesterov=True), "Nesterov momentum requires a momentum and zero dampening"),
    (optim.SGD, dict(lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "Nesterov momentum requires"),
    (optim.Adam, dict(lr=-1), "Invalid learning rate: -1"),
    (optim.Adam, dict(eps=-1e-8), "Invalid epsilon value: -1e-08"),
    (optim.Adam, dict(betas=(1.0, 0.999)), "Invalid beta parameter at index 0: 1.0"),
    (optim.AdamW, dict(betas=(0.9, -0.1)), "Invalid beta parameter at index 1: -0.1"),
    (optim.AdamW, dict(weight_decay=-0.1), "Invalid weight_decay value: -0.1"),
    (optim.RMSprop, dict(alpha=-0.1), "Invalid alpha value: -0.1"),
    (optim.RMSprop, dict(momentum=-1), "Invalid momentum value: -1"),
    (optim.RMSprop, dict(eps=-1), "Invalid epsilon value: -1"),
    (optim.Adagrad, dict(lr_decay=-1), "Invalid lr_decay value: -1"),
    (optim.Adagrad, dict(initial_accumulator_value=-1), "Invalid initial_accumulator_value value: -1"),
    (optim.Adadelta, dict(rho=1.5), "Invalid rho value: 1.5"),
    (optim.Adadelta, dict(lr=-1), "Invalid learning rate: -1"),
    (optim.Adamax, dict(betas=(0.9, 1.0)), "Invalid beta parameter at index 1: 1.0"),
    (optim.NAdam, dict(momentum_decay=-1), "Invalid momentum_decay value: -1"),
    (optim.NAdam, dict(eps=-1), "Invalid epsilon value: -1"),
    (optim.RAdam, dict(weight_decay=-1), "Invalid weight_decay value: -1"),
])
def test_invalid_hyperparameters_raise_like_torch(cls, kwargs, message):
    with pytest.raises(ValueError, match=message):
        cls(params([1.0]), **kwargs)


def test_repr_lists_each_group_hyperparameters():
    opt = optim.SGD(params([1.0]), lr=0.1, momentum=0.9)
    text = repr(opt)
    assert text.startswith("SGD (\nParameter Group 0\n") and "    lr: 0.1\n" in text and "    momentum: 0.9\n" in text


# --- state_dict --------------------------------------------------------------------------------
def test_state_dict_uses_integer_indices_across_groups():
    a, b, c = params([1.0], [2.0], [3.0])
    opt = optim.Adam([{"params": [a, b]}, {"params": [c], "lr": 0.5}], lr=0.1)
    set_grads([a, c], [[1.0], [1.0]])
    opt.step()
    sd = opt.state_dict()
    assert [g["params"] for g in sd["param_groups"]] == [[0, 1], [2]]
    assert sorted(sd["state"]) == [0, 2] and sd["state"][2]["step"] == 1
    assert sd["param_groups"][1]["lr"] == 0.5 and "params" in opt.param_groups[0]


@pytest.mark.parametrize("name,kwargs", [("SGD", dict(lr=0.1, momentum=0.9)), ("Adam", dict(lr=0.1, amsgrad=True)),
                                         ("RMSprop", dict(lr=0.01, momentum=0.5, centered=True)),
                                         ("Adagrad", dict(lr=0.1)), ("Adadelta", dict(lr=0.5)),
                                         ("Adamax", dict(lr=0.1)), ("NAdam", dict(lr=0.1)),
                                         ("RAdam", dict(lr=0.1, betas=(0.9, 0.5)))])
def test_load_state_dict_resumes_exactly_where_training_stopped(name, kwargs):
    straight = run_distgrad(name, kwargs)
    ps = params(*INITS)
    opt = getattr(optim, name)(ps, **kwargs)
    for step_grads in GRADS[:3]:
        set_grads(ps, step_grads)
        opt.step()
    saved = opt.state_dict()
    resumed_ps = params(*(p.array for p in ps))
    resumed = getattr(optim, name)(resumed_ps, lr=123.0)  # the loaded groups bring back the real lr
    resumed.load_state_dict(saved)
    assert resumed.param_groups[0]["lr"] == kwargs["lr"] and resumed.param_groups[0]["params"] == resumed_ps
    for step_grads in GRADS[3:]:
        set_grads(resumed_ps, step_grads)
        resumed.step()
    for p, expected in zip(resumed_ps, straight):
        np.testing.assert_allclose(p.array, expected, rtol=1e-12)


def test_loaded_state_is_a_copy_in_the_parameter_dtype():
    (p,) = params([1.0])
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    set_grads([p], [[1.0]])
    opt.step()
    (q,) = params([1.0], dtype=dg.float32)
    other = optim.SGD([q], lr=0.1, momentum=0.9)
    other.load_state_dict(opt.state_dict())
    buf = other.state[q]["momentum_buffer"]
    assert buf.dtype == dg.float32 and buf.array is not opt.state[p]["momentum_buffer"].array


def test_load_state_dict_refuses_mismatched_groups():
    a, b = params([1.0], [2.0])
    one_group = optim.SGD([a, b], lr=0.1).state_dict()
    with pytest.raises(ValueError, match="doesn't match the size of optimizer's group"):
        optim.SGD([a], lr=0.1).load_state_dict(one_group)
    with pytest.raises(ValueError, match="different number of parameter groups"):
        optim.SGD([{"params": [a]}, {"params": [b]}], lr=0.1).load_state_dict(one_group)
