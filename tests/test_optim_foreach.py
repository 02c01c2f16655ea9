"""SGD, Adam and AdamW's ``foreach``/``fused`` path: one update over a flat buffer per bucket equals the
per-parameter path (bit for bit in float64) and PyTorch's foreach optimizers, keeps PyTorch's state layout,
and falls back per parameter for 16-bit parameters."""
import itertools

import numpy as np
import pytest

import distgrad as dg
from helpers import host

SHAPES = [(3, 4), (4,), (2, 3, 2), (1,)]

SGD_OPTIONS = [dict(momentum=m, dampening=d, nesterov=n, weight_decay=w, maximize=x)
               for m, d, n, w, x in itertools.product([0, 0.9], [0, 0.3], [False, True], [0, 0.1], [False, True])
               if not (n and (m == 0 or d != 0))]
ADAM_OPTIONS = [dict(weight_decay=w, amsgrad=a, maximize=x)
                for w, a, x in itertools.product([0, 0.1], [False, True], [False, True])]
CASES = ([("SGD", dict(lr=0.1, **o)) for o in SGD_OPTIONS] + [("Adam", dict(lr=0.05, **o)) for o in ADAM_OPTIONS]
         + [("AdamW", dict(lr=0.05, **o)) for o in ADAM_OPTIONS])


def _params(dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return [dg.nn.Parameter(dg.tensor(rng.standard_normal(s).astype(dtype))) for s in SHAPES]


def _gradients(steps, seed=1):
    """Per step, a gradient for each parameter; the second parameter has none on step 1 (so its step
    count falls behind and the foreach path must split it into a bucket of its own)."""
    rng = np.random.default_rng(seed)
    return [[None if (k == 1 and i == 1) else rng.standard_normal(s) for i, s in enumerate(SHAPES)]
            for k in range(steps)]


def _train(name, options, steps=4, dtype=np.float64, **flags):
    params = _params(dtype)
    optimizer = getattr(dg.optim, name)(params, **options, **flags)
    for grads in _gradients(steps):
        for p, g in zip(params, grads):
            p.grad = None if g is None else dg.tensor(g.astype(dtype)).to(p.dtype)
        optimizer.step()
    return params, optimizer


@pytest.mark.parametrize("name,options", CASES, ids=[f"{n}-{o}" for n, o in CASES])
def test_foreach_equals_the_per_parameter_path(name, options):
    ours, optimizer = _train(name, options, foreach=True)
    reference, reference_optimizer = _train(name, options, foreach=False)
    assert optimizer._foreach_cache and not reference_optimizer._foreach_cache  # each took its own path
    for p, q in zip(ours, reference):
        np.testing.assert_allclose(host(p.detach()), host(q.detach()), rtol=0, atol=1e-12)
    state, reference_state = optimizer.state_dict()["state"], reference_optimizer.state_dict()["state"]
    assert state.keys() == reference_state.keys()
    for index in state:
        assert state[index].keys() == reference_state[index].keys()
        for key, value in state[index].items():
            expected = reference_state[index][key]
            if isinstance(value, dg.Tensor):
                assert value.shape == expected.shape
                np.testing.assert_allclose(host(value), host(expected), rtol=0, atol=1e-12)
            else:
                assert value == expected


@pytest.mark.parametrize("name,options", CASES[::3], ids=[f"{n}-{o}" for n, o in CASES[::3]])
def test_foreach_and_fused_match_torch(name, options):
    torch = pytest.importorskip("torch")
    for flags in (dict(foreach=True), dict(fused=True)):
        ours, _ = _train(name, options, **flags)
        theirs = [torch.nn.Parameter(torch.tensor(host(p.detach()))) for p in _params()]
        optimizer = getattr(torch.optim, name)(theirs, **options, **flags)
        for grads in _gradients(4):
            for p, g in zip(theirs, grads):
                p.grad = None if g is None else torch.tensor(g)
            optimizer.step()
        for p, q in zip(ours, theirs):
            np.testing.assert_allclose(host(p.detach()), q.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_fused_equals_foreach_and_takes_the_flat_path():
    ours, optimizer = _train("AdamW", dict(lr=0.01, amsgrad=True), fused=True)
    reference, _ = _train("AdamW", dict(lr=0.01, amsgrad=True), foreach=True)
    assert optimizer._foreach_cache
    for p, q in zip(ours, reference):
        np.testing.assert_array_equal(host(p.detach()), host(q.detach()))


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW"])
def test_flags_are_pytorchs_defaults_and_foreach_with_fused_is_refused(name):
    optimizer = getattr(dg.optim, name)(_params())
    assert optimizer.defaults["foreach"] is None and optimizer.defaults["fused"] is None
    with pytest.raises(RuntimeError, match="`fused` and `foreach` cannot be `True` together."):
        getattr(dg.optim, name)(_params(), foreach=True, fused=True)


def test_fused_refuses_a_parameter_that_is_not_floating_point():
    p = dg.tensor(np.arange(3))
    p.grad = dg.tensor(np.ones(3, dtype=np.int64))
    optimizer = dg.optim.SGD([p], lr=0.1, fused=True)
    with pytest.raises(RuntimeError, match=r"`fused=True` requires all the params to be floating point Tensors "
                                           r"of supported devices: \['cpu', 'cuda'\]"):
        optimizer.step()


def test_default_on_the_cpu_is_the_per_parameter_path_as_in_pytorch():
    _, optimizer = _train("Adam", dict(lr=0.01))
    assert not optimizer._foreach_cache


def test_state_is_viewed_from_one_flat_buffer_and_survives_a_checkpoint():
    params, optimizer = _train("Adam", dict(lr=0.01, amsgrad=True), foreach=True)
    saved = {"state": {i: {k: (v.clone() if isinstance(v, dg.Tensor) else v) for k, v in s.items()}
                       for i, s in optimizer.state_dict()["state"].items()},
             "param_groups": optimizer.state_dict()["param_groups"]}
    assert saved["param_groups"][0]["foreach"] is True
    # The same parameters, fresh optimizer, loaded state: the next steps equal the uninterrupted run's.
    restored_params = [dg.nn.Parameter(p.detach().clone()) for p in params]
    restored = dg.optim.Adam(restored_params, lr=0.01, amsgrad=True, foreach=True)
    restored.load_state_dict(saved)
    rng = np.random.default_rng(5)
    for _ in range(2):
        grads = [rng.standard_normal(s) for s in SHAPES]
        for group, opt in ((params, optimizer), (restored_params, restored)):
            for p, g in zip(group, grads):
                p.grad = dg.tensor(g)
            opt.step()
    for p, q in zip(params, restored_params):
        np.testing.assert_array_equal(host(p.detach()), host(q.detach()))
    # After the reload each bucket's exp_avg is one flat array again: the parameter that missed a step
    # (one step behind) in a bucket of its own, the others viewing one array.
    bases = [restored.state[p]["exp_avg"].array.base for p in restored_params]
    assert bases[0] is bases[2] is bases[3] and bases[1] is not bases[0] and bases[0].size == 12 + 12 + 1


@pytest.mark.parametrize("master_weights", [False, True])
def test_16_bit_parameters_fall_back_per_parameter(master_weights):
    options = dict(lr=0.01, momentum=0.9, master_weights=master_weights)
    params = [dg.nn.Parameter(p.detach().to(dg.bfloat16)) for p in _params(np.float32)]
    reference = [dg.nn.Parameter(p.detach().clone()) for p in params]
    mixed = params + _params(np.float64, seed=3)  # a float64 bucket beside the bfloat16 parameters
    for group, foreach in ((mixed, True), (reference, False)):
        optimizer = dg.optim.SGD(group, foreach=foreach, **options)
        for grads in _gradients(3):
            for p, g in zip(group, grads + grads):
                p.grad = None if g is None else dg.tensor(g).to(p.dtype)
            optimizer.step()
    for p, q in zip(params, reference):
        assert p.dtype == dg.bfloat16
        np.testing.assert_array_equal(host(p.detach().float()), host(q.detach().float()))
    assert all(v.dtype == dg.float32 for v in (optimizer.state[q]["momentum_buffer"] for q in reference))
