"""GroupNorm, InstanceNorm1d/2d/3d (F.instance_norm, running statistics), BatchNorm3d, channel dropout,
1-d pooling, padding layers, Bilinear and ParameterDict: against PyTorch in float64, gradcheck, errors."""
import numpy as np
import pytest

import distgrad as dg
import distgrad.nn.functional as F
from distgrad import nn
from helpers import assert_matches_torch, compare_with_torch, host

RNG = np.random.default_rng(0)
DOUBLE = dict(dtype=np.float64, rtol=1e-10, atol=1e-12)


# --- normalization ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("make,shape", [
    (lambda m: m.GroupNorm(2, 4), (3, 4, 5, 2)), (lambda m: m.GroupNorm(4, 4, affine=False), (2, 4, 6)),
    (lambda m: m.GroupNorm(1, 6, eps=1e-3, bias=False), (2, 6, 3, 3)),
    (lambda m: m.InstanceNorm1d(4), (3, 4, 6)), (lambda m: m.InstanceNorm1d(4, affine=True), (4, 6)),
    (lambda m: m.InstanceNorm2d(3, affine=True, track_running_stats=True), (2, 3, 4, 5)),
    (lambda m: m.InstanceNorm3d(2, momentum=None, track_running_stats=True), (2, 2, 3, 2, 3)),
    (lambda m: m.BatchNorm3d(3), (2, 3, 2, 3, 2)),
])
def test_norm_layers_match_torch(make, shape, device):
    torch = pytest.importorskip("torch")
    ours, theirs = make(nn).double(), make(torch.nn).double()
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert set(ours.state_dict()) == set(theirs.state_dict())
    for p in ours.parameters():  # parameters away from their 1/0 start, so the affine part is tested
        p.data.copy_(dg.tensor(RNG.uniform(0.5, 1.5, p.shape)))
    compare_with_torch(ours, theirs, shape, device=device, **DOUBLE)  # training: batch stats, buffers updated
    ours.eval()
    theirs.eval()
    compare_with_torch(ours, theirs, shape, device=device, **DOUBLE)


@pytest.mark.parametrize("with_affine", [False, True])
def test_instance_norm_gradchecks_and_matches_torch(with_affine, device):
    arrays = [RNG.standard_normal((2, 3, 5))] + ([RNG.uniform(0.5, 1.5, 3), RNG.standard_normal(3)]
                                                  if with_affine else [])
    assert_matches_torch(lambda m, x, *affine: m.nn.functional.instance_norm(x, None, None, *affine), arrays, device,
                         gradcheck=True)


def test_instance_norm_uses_running_stats_without_input_stats():
    torch = pytest.importorskip("torch")
    x = RNG.standard_normal((2, 3, 4))
    mean, var = RNG.standard_normal(3), RNG.uniform(0.5, 2, 3)
    ours = F.instance_norm(dg.tensor(x), dg.tensor(mean), dg.tensor(var), use_input_stats=False)
    theirs = torch.nn.functional.instance_norm(torch.tensor(x), torch.tensor(mean), torch.tensor(var),
                                               use_input_stats=False)
    np.testing.assert_allclose(host(ours), theirs.numpy())


def test_norm_layer_errors():
    with pytest.raises(ValueError, match="num_channels must be divisible by num_groups"):
        nn.GroupNorm(3, 4)
    with pytest.raises(ValueError, match="expected 3D or 4D input"):
        nn.InstanceNorm2d(3)(dg.ones(2, 3))
    with pytest.raises(ValueError, match="Expected more than 1 spatial element when training"):
        F.instance_norm(dg.ones(2, 3, 1))
    with pytest.raises(ValueError, match="expected 5D input"):
        nn.BatchNorm3d(3)(dg.ones(2, 3, 4, 4))


# --- channel dropout -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("layer,shape", [(nn.Dropout1d, (4, 6, 5)), (nn.Dropout2d, (3, 5, 4, 4)),
                                         (nn.Dropout2d, (5, 4, 4)), (nn.Dropout3d, (2, 4, 2, 3, 3))])
def test_channel_dropout_zeroes_whole_channels_and_scales_the_rest(layer, shape, device):
    dg.manual_seed(0)
    x = dg.ones(*shape, dtype=dg.float64, device=device, requires_grad=True)
    drop = layer(0.4)
    out = drop(x)
    spatial = len(shape) - (2 if layer is not nn.Dropout2d or len(shape) == 4 else 1)
    per_channel = host(out).reshape(shape[:len(shape) - spatial] + (-1,))
    assert np.all((per_channel == 0).all(-1) | (per_channel == 1 / 0.6).all(-1))
    assert 0 < (per_channel[..., 0] == 0).mean() < 1
    out.sum().backward()
    np.testing.assert_array_equal(host(x.grad), host(out))
    drop.eval()
    assert drop(x) is x


def test_channel_dropout_functions_like_torch_for_p_0_and_1_and_in_place():
    x = dg.randn(2, 3, 4)
    assert F.dropout1d(x, 0.0) is x and not host(F.dropout1d(x, 1.0)).any()
    y = x.clone()
    assert F.dropout2d(y.unsqueeze(-1), 0.5, inplace=True) is not None
    with pytest.raises(RuntimeError, match="dropout2d: Expected 3D or 4D input, but received a 2D input"):
        F.dropout2d(dg.ones(2, 3))
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1"):
        nn.Dropout2d(1.5)


# --- pooling, padding ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("make,shape", [
    (lambda m: m.MaxPool1d(3, 2, 1), (2, 3, 9)), (lambda m: m.MaxPool1d(2, ceil_mode=True), (3, 7)),
    (lambda m: m.AvgPool1d(3, 2, 1, count_include_pad=False), (2, 3, 8)), (lambda m: m.AvgPool1d(2), (2, 3, 8)),
    (lambda m: m.AdaptiveAvgPool1d(3), (2, 3, 8)), (lambda m: m.AdaptiveAvgPool1d(5), (2, 3, 7)),
])
def test_1d_pooling_layers_match_torch(make, shape, device):
    torch = pytest.importorskip("torch")
    ours, theirs = make(nn), make(torch.nn)
    assert repr(ours) == repr(theirs)
    compare_with_torch(ours, theirs, shape, device=device, **DOUBLE)


@pytest.mark.parametrize("make,shape", [
    (lambda m: m.ZeroPad2d((1, 0, 2, 1)), (2, 3, 4, 4)), (lambda m: m.ZeroPad1d(2), (2, 3, 4)),
    (lambda m: m.ConstantPad2d(1, 3.5), (2, 3, 4, 4)), (lambda m: m.ConstantPad1d((1, 2), -1.0), (3, 4)),
    (lambda m: m.ConstantPad3d((1, 0, 0, 1, 1, 1), 0.5), (1, 2, 3, 3, 3)),
    (lambda m: m.ReflectionPad2d(2), (2, 3, 4, 5)), (lambda m: m.ReflectionPad1d((2, 1)), (2, 3, 5)),
    (lambda m: m.ReplicationPad2d((1, 2, 0, 3)), (1, 2, 3, 3)), (lambda m: m.ReplicationPad1d(2), (2, 3, 4)),
    (lambda m: m.CircularPad2d(1), (1, 2, 3, 4)), (lambda m: m.ReflectionPad3d(1), (1, 1, 3, 3, 3)),
    (lambda m: m.ZeroPad2d((-1, 1, 0, -1)), (1, 2, 4, 4)),
])
def test_padding_layers_match_torch(make, shape, device):
    torch = pytest.importorskip("torch")
    ours, theirs = make(nn), make(torch.nn)
    assert repr(ours) == repr(theirs)
    compare_with_torch(ours, theirs, shape, device=device, **DOUBLE)


def test_padding_layers_check_their_widths():
    with pytest.raises(ValueError, match="padding must be an int or a tuple of 4 ints"):
        nn.ReflectionPad2d((1, 2))


# --- Bilinear, ParameterDict ------------------------------------------------------------------------------------
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("lead", [(5,), (2, 3), ()])
def test_bilinear_matches_torch(bias, lead, device):
    arrays = [RNG.standard_normal(lead + (3,)), RNG.standard_normal(lead + (4,)), RNG.standard_normal((2, 3, 4))]
    if bias:
        arrays.append(RNG.standard_normal(2))
    assert_matches_torch(lambda m, *t: m.nn.functional.bilinear(*t), arrays, device, gradcheck=True)


def test_bilinear_layer_matches_torch_and_has_its_init(device):
    torch = pytest.importorskip("torch")
    layer = nn.Bilinear(3, 4, 2)
    assert repr(layer) == repr(torch.nn.Bilinear(3, 4, 2))
    assert np.abs(layer.weight.detach().numpy()).max() <= 1 / np.sqrt(3)
    compare_with_torch(layer.double(), torch.nn.Bilinear(3, 4, 2).double(), (5, 3), (5, 4), device=device, **DOUBLE)


def test_parameter_dict_registers_its_parameters_by_name():
    pd = nn.ParameterDict({"a": nn.Parameter(dg.ones(2)), "b": dg.zeros(3)})
    pd["c"] = dg.ones(1)
    assert list(pd) == ["a", "b", "c"] and len(pd) == 3 and "b" in pd
    assert isinstance(pd["b"], nn.Parameter) and pd["b"].requires_grad
    model = nn.Module()
    model.extra = pd
    assert [n for n, _ in model.named_parameters()] == ["extra.a", "extra.b", "extra.c"]
    assert set(model.state_dict()) == {"extra.a", "extra.b", "extra.c"}
    del pd["a"]
    assert list(pd.keys()) == ["b", "c"] and pd.get("a") is None
    assert "(b): Parameter containing: [distgrad.float32 of size 3]" in repr(pd)


@pytest.mark.parametrize("shape,size", [((2, 3, 8, 8), 1), ((2, 3, 10, 7), (4, 3)), ((3, 9, 5), (2, None)),
                                        ((1, 2, 6, 6), (3, 2)), ((2, 3, 5, 5), 5)])
def test_adaptive_max_pool2d_matches_torch_with_indices(shape, size, device):
    torch = pytest.importorskip("torch")
    assert_matches_torch(lambda m, x: m.nn.functional.adaptive_max_pool2d(x, size), [RNG.standard_normal(shape)],
                         device, gradcheck=True)
    x = RNG.standard_normal(shape)
    _, ours = F.adaptive_max_pool2d(dg.tensor(x, device=device), size, return_indices=True)
    _, theirs = torch.nn.functional.adaptive_max_pool2d(torch.tensor(x), size, return_indices=True)
    np.testing.assert_array_equal(host(ours), theirs.numpy())


def test_adaptive_max_pooling_sends_the_gradient_to_the_first_maximum_only():
    x = np.zeros((1, 1, 5, 5))  # every window ties
    assert_matches_torch(lambda m, t: m.nn.functional.adaptive_max_pool2d(t, 2), [x], "cpu")


@pytest.mark.parametrize("make,shape", [(lambda m: m.AdaptiveMaxPool2d((3, 2)), (2, 3, 7, 5)),
                                        (lambda m: m.AdaptiveMaxPool1d(3), (2, 3, 7)),
                                        (lambda m: m.AdaptiveMaxPool2d(1), (2, 3, 4, 4))])
def test_adaptive_max_pool_layers_match_torch(make, shape, device):
    torch = pytest.importorskip("torch")
    ours, theirs = make(nn), make(torch.nn)
    assert repr(ours) == repr(theirs)
    compare_with_torch(ours, theirs, shape, device=device, **DOUBLE)
