"""``nn.utils.flatten_parameters``: parameters and gradients become views into one flat buffer per dtype and
device; backward writes into it, the foreach optimizers update it in place, and training is unchanged."""
import numpy as np
import pytest

import distgrad as dg
import distgrad.nn.functional as F
from distgrad import nn
from distgrad.nn.utils import flatten_parameters
from distgrad.nn.utils.flat_parameters import flat_run
from helpers import host


def _model(dtype=dg.float64):
    dg.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3)).to(dtype)


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    return dg.tensor(rng.standard_normal((4, 5))), dg.tensor(rng.integers(0, 3, 4))


def _train(model, optimizer, steps=5, set_to_none=True):
    for k in range(steps):
        x, y = _batch(k)
        optimizer.zero_grad(set_to_none=set_to_none)
        F.cross_entropy(model(x.to(next(model.parameters()).dtype)), y).backward()
        optimizer.step()


def _values(model):
    return [host(p.detach()) for p in model.parameters()]


def _intact(model):
    params = list(model.parameters())
    return flat_run(params) is not None


def test_parameters_and_gradients_become_views_of_one_buffer_with_the_same_values():
    model = _model()
    before = _values(model)
    (buffer,) = flatten_parameters(model)
    params = list(model.parameters())
    assert buffer.offsets == [0, 35, 42, 63, 66] and buffer.data.shape == (66,)
    for p, b, start, end in zip(params, before, buffer.offsets, buffer.offsets[1:]):
        np.testing.assert_array_equal(host(p.detach()), b)
        assert np.shares_memory(p.array, buffer.data.array) and np.shares_memory(p.grad.array, buffer.grad.array)
        np.testing.assert_array_equal(buffer.data.array[start:end], b.ravel())
    assert not buffer.grad.array.any()
    # backward accumulates into the views: the flat gradient buffer is the concatenated gradient
    x, y = _batch()
    F.cross_entropy(model(x), y).backward()
    np.testing.assert_array_equal(buffer.grad.array, np.concatenate([host(p.grad).ravel() for p in params]))


@pytest.mark.parametrize("name,options", [("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
                                          ("Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.01)),
                                          ("AdamW", dict(lr=0.01))])
@pytest.mark.parametrize("set_to_none", [False, True])
def test_training_flattened_equals_training_unflattened_bit_for_bit(name, options, set_to_none):
    reference = _model()
    _train(reference, getattr(dg.optim, name)(reference.parameters(), foreach=False, **options),
           set_to_none=set_to_none)
    model = _model()
    flatten_parameters(model)
    optimizer = getattr(dg.optim, name)(model.parameters(), **options)  # foreach=None: the flat path
    _train(model, optimizer, set_to_none=set_to_none)
    assert _intact(model) and optimizer._foreach_cache
    for ours, theirs in zip(_values(model), _values(reference)):
        np.testing.assert_array_equal(ours, theirs)


def test_zero_grad_keeps_the_views_or_gets_them_back_after_set_to_none():
    model = _model()
    (buffer,) = flatten_parameters(model)
    x, y = _batch()
    F.cross_entropy(model(x), y).backward()
    model.zero_grad(set_to_none=False)
    assert _intact(model) and not buffer.grad.array.any()
    model.zero_grad()  # set_to_none=True: gradients are None until the next backward ...
    assert all(p.grad is None for p in model.parameters())
    F.cross_entropy(model(x), y).backward()
    assert _intact(model)  # ... which puts them back into the views
    np.testing.assert_array_equal(buffer.grad.array,
                                  np.concatenate([host(p.grad).ravel() for p in model.parameters()]))


def test_state_dicts_load_into_the_views():
    model, source = _model(), _model()
    (buffer,) = flatten_parameters(model)
    with dg.no_grad():
        for p in source.parameters():
            p.mul_(2)
    model.load_state_dict(source.state_dict())
    assert _intact(model)
    np.testing.assert_array_equal(buffer.data.array, 2 * np.concatenate([b.ravel() for b in _values(_model())]))
    optimizer = dg.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    _train(model, optimizer, steps=2)
    restored = dg.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    restored.load_state_dict(optimizer.state_dict())
    for p in model.parameters():
        np.testing.assert_array_equal(host(restored.state[p]["momentum_buffer"]),
                                      host(optimizer.state[p]["momentum_buffer"]))


def test_to_another_dtype_drops_the_buffer_and_training_stays_right():
    model = _model(dg.float32)
    flatten_parameters(model)
    model.to(dg.float32).to("cpu")  # already there: the views stay
    assert _intact(model)
    model.to(dg.float64)
    assert not _intact(model)
    reference = _model(dg.float32).to(dg.float64)
    for m in (model, reference):
        _train(m, dg.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, foreach=m is model))
    for ours, theirs in zip(_values(model), _values(reference)):
        np.testing.assert_array_equal(ours, theirs)
    (buffer,) = flatten_parameters(model)  # flattening again gives a float64 buffer
    assert buffer.data.dtype == dg.float64 and _intact(model)


def test_frozen_parameters_are_left_alone_and_dtypes_get_buffers_of_their_own():
    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 2).double(), nn.Linear(2, 2))
    model[2].weight.requires_grad_(False)
    frozen = model[2].weight.array
    buffers = flatten_parameters(model)
    assert [b.data.dtype for b in buffers] == [dg.float32, dg.float64]
    assert [len(b) for b in buffers] == [3, 2]
    assert model[2].weight.array is frozen and model[2].weight.grad is None
