"""conv1d / conv_transpose1d and the Conv1d, ConvTranspose1d, ConvTranspose2d layers (padding modes, output_size):
against PyTorch in float64 with gradients, gradcheck, default init and repr."""
import numpy as np
import pytest

import distgrad as dg
import distgrad.nn.functional as F
from distgrad import nn
from helpers import assert_matches_torch, compare_with_torch

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("kwargs", [{}, {"stride": 2}, {"padding": 2}, {"padding": "same", "dilation": 2},
                                    {"padding": "valid"}, {"groups": 2}, {"stride": (3,), "padding": (1,)}])
@pytest.mark.parametrize("bias", [True, False])
def test_conv1d_matches_torch(kwargs, bias, device):
    arrays = [RNG.standard_normal((2, 4, 7)), RNG.standard_normal((4, 4 // kwargs.get("groups", 1), 3))]
    if bias:
        arrays.append(RNG.standard_normal(4))
    assert_matches_torch(lambda m, *t: m.nn.functional.conv1d(*t, **kwargs), arrays, device, gradcheck=True)


def test_conv1d_takes_an_unbatched_input(device):
    assert_matches_torch(lambda m, x, w: m.nn.functional.conv1d(x, w),
                         [RNG.standard_normal((3, 7)), RNG.standard_normal((2, 3, 2))], device, gradcheck=True)


@pytest.mark.parametrize("kwargs", [{}, {"stride": 2}, {"stride": 2, "padding": 1, "output_padding": 1},
                                    {"dilation": 2, "padding": 2}, {"groups": 2, "stride": 3}])
@pytest.mark.parametrize("bias", [True, False])
def test_conv_transpose1d_matches_torch(kwargs, bias, device):
    groups = kwargs.get("groups", 1)
    arrays = [RNG.standard_normal((2, 4, 4)), RNG.standard_normal((4, 4 // groups, 3))]
    if bias:
        arrays.append(RNG.standard_normal(4))
    assert_matches_torch(lambda m, *t: m.nn.functional.conv_transpose1d(*t, **kwargs), arrays, device, gradcheck=True)


def test_1d_argument_errors():
    with pytest.raises(RuntimeError, match="Expected 2D \\(unbatched\\) or 3D \\(batched\\) input to conv1d"):
        F.conv1d(dg.ones(1, 1, 2, 2), dg.ones(1, 1, 1))
    with pytest.raises(RuntimeError, match="expected a 3-D weight"):
        F.conv1d(dg.ones(1, 1, 4), dg.ones(1, 1, 1, 1))
    with pytest.raises(RuntimeError, match="stride to be a single integer value or a list of 1 values"):
        F.conv1d(dg.ones(1, 1, 4), dg.ones(1, 1, 1), stride=(1, 1))


@pytest.mark.parametrize("make", [
    lambda m: m.Conv1d(4, 6, 3), lambda m: m.Conv1d(4, 6, 3, stride=2, padding=1, bias=False),
    lambda m: m.Conv1d(4, 6, 3, padding="same", padding_mode="reflect"),
    lambda m: m.Conv1d(4, 6, 2, padding=2, padding_mode="circular", groups=2),
    lambda m: m.Conv2d(4, 6, 3, padding=1, padding_mode="replicate"),
    lambda m: m.Conv2d(4, 6, (2, 3), padding="same", padding_mode="reflect", dilation=(2, 1)),
    lambda m: m.ConvTranspose1d(4, 6, 3, stride=2), lambda m: m.ConvTranspose1d(4, 6, 4, 2, 1, 1, bias=False),
    lambda m: m.ConvTranspose2d(4, 6, 4, 2, 1), lambda m: m.ConvTranspose2d(4, 6, 3, stride=2, groups=2, dilation=2),
])
def test_layers_match_torch_with_gradients_and_print_alike(make, device):
    torch = pytest.importorskip("torch")
    ours, theirs = make(nn).double(), make(torch.nn).double()
    assert repr(ours) == repr(theirs)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert all(p.shape == tuple(q.shape) for p, q in zip(ours.parameters(), theirs.parameters()))
    shape = (2, 4, 9) if "1d" in type(ours).__name__ else (2, 4, 6, 7)
    compare_with_torch(ours, theirs, shape, device=device, dtype=np.float64, rtol=1e-10, atol=1e-12)


def test_default_init_has_torch_bounds():
    for layer in (nn.ConvTranspose2d(8, 4, 3), nn.Conv1d(6, 4, 5), nn.ConvTranspose1d(8, 4, 3, groups=2)):
        fan_in = layer.weight.shape[1] * np.prod(layer.weight.shape[2:])
        bound = 1 / np.sqrt(fan_in)
        assert np.abs(layer.weight.detach().numpy()).max() <= bound + 1e-7
        assert np.abs(layer.bias.detach().numpy()).max() <= bound + 1e-7


@pytest.mark.parametrize("output_size", [(11, 13), (12, 14), [2, 4, 12, 13]])
def test_conv_transpose_output_size_picks_the_output_padding_like_torch(output_size):
    torch = pytest.importorskip("torch")
    ours, theirs = nn.ConvTranspose2d(4, 3, 3, stride=2).double(), torch.nn.ConvTranspose2d(4, 3, 3, stride=2).double()
    theirs.load_state_dict({k: torch.tensor(v.numpy()) for k, v in ours.state_dict().items()})
    x = RNG.standard_normal((2, 4, 5, 6))
    out = ours(dg.tensor(x), output_size=output_size)
    expected = theirs(torch.tensor(x), output_size=output_size)
    np.testing.assert_allclose(out.detach().numpy(), expected.detach().numpy())
    with pytest.raises(ValueError, match="valid sizes range from 11 to 12"):
        ours(dg.tensor(x), output_size=(14, 13))


def test_conv_layer_argument_errors_like_torch():
    with pytest.raises(ValueError, match='Only "zeros" padding mode is supported for ConvTranspose2d'):
        nn.ConvTranspose2d(2, 2, 3, padding_mode="reflect")
    with pytest.raises(ValueError, match="in_channels must be divisible by groups"):
        nn.Conv1d(3, 4, 3, groups=2)
