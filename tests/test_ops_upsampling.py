"""interpolate (every mode, sizes and scale factors, align_corners), pixel_shuffle/unshuffle and the Upsample,
PixelShuffle layers: values and gradients against PyTorch in float64, gradcheck, float32 index picks, errors."""
import numpy as np
import pytest

import distgrad as dg
import distgrad.nn.functional as F
from distgrad import nn
from helpers import assert_matches_torch, host

RNG = np.random.default_rng(0)

CASES = [  # (input shape, keyword arguments of interpolate)
    ((2, 3, 5), dict(scale_factor=2, mode="nearest")),
    ((1, 2, 7), dict(size=4, mode="nearest")),
    ((1, 2, 5), dict(size=12, mode="nearest-exact")),
    ((2, 2, 6), dict(scale_factor=1.5, mode="linear")),
    ((1, 3, 6), dict(size=4, mode="linear", align_corners=True)),
    ((1, 3, 4), dict(size=9, mode="linear", align_corners=False)),
    ((2, 2, 3, 4), dict(scale_factor=2, mode="nearest")),
    ((1, 2, 5, 7), dict(size=(3, 10), mode="nearest")),
    ((1, 2, 4, 5), dict(scale_factor=(1.7, 0.6), mode="nearest")),
    ((1, 1, 5, 4), dict(size=(7, 3), mode="nearest-exact")),
    ((2, 2, 3, 4), dict(scale_factor=2, mode="bilinear", align_corners=False)),
    ((1, 2, 3, 4), dict(size=(5, 7), mode="bilinear", align_corners=True)),
    ((1, 2, 6, 5), dict(size=(4, 2), mode="bilinear")),
    ((1, 1, 4, 4), dict(scale_factor=0.75, mode="bilinear", recompute_scale_factor=True)),
    ((1, 2, 4, 5), dict(size=(7, 9), mode="bicubic", align_corners=False)),
    ((1, 1, 5, 4), dict(scale_factor=1.5, mode="bicubic", align_corners=True)),
    ((1, 2, 6, 6), dict(size=(3, 4), mode="bicubic")),
    ((1, 2, 3, 4, 3), dict(scale_factor=2, mode="trilinear")),
    ((1, 1, 3, 3, 4), dict(size=(2, 5, 3), mode="trilinear", align_corners=True)),
    ((1, 2, 3, 2, 2), dict(size=(4, 3, 5), mode="nearest")),
    ((2, 2, 7), dict(size=3, mode="area")),
    ((1, 2, 6, 7), dict(size=(4, 3), mode="area")),
    ((1, 2, 5, 5), dict(size=(5, 5), mode="bilinear")),
]


@pytest.mark.parametrize("shape,kwargs", CASES, ids=[f"{s}-{k}" for s, k in CASES])
def test_interpolate_matches_torch(shape, kwargs, device):
    assert_matches_torch(lambda m, x: m.nn.functional.interpolate(x, **kwargs), [RNG.standard_normal(shape)], device,
                         gradcheck=True)


@pytest.mark.parametrize("size,out", [(10, 15), (7, 11), (3, 5), (13, 4), (6, 12), (9, 9)])
@pytest.mark.parametrize("mode", ["nearest", "nearest-exact", "bilinear"])
def test_float32_inputs_pick_the_pixels_torch_picks(size, out, mode):
    torch = pytest.importorskip("torch")
    x = RNG.standard_normal((1, 1, size, size)).astype(np.float32)
    ours = F.interpolate(dg.tensor(x), size=(out, out), mode=mode)
    theirs = torch.nn.functional.interpolate(torch.tensor(x), size=(out, out), mode=mode)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(host(ours), theirs.numpy(), rtol=1e-5, atol=1e-6)


def test_interpolate_returns_a_new_tensor_even_when_nothing_changes():
    x = dg.ones(1, 1, 3, 3)
    y = F.interpolate(x, size=3)
    assert y is not x and y.tolist() == x.tolist()


@pytest.mark.parametrize("call,error,message", [
    (lambda: F.interpolate(dg.ones(1, 1, 4), scale_factor=2, mode="bilinear"), NotImplementedError,
     "Got 3D input, but bilinear mode needs 4D input"),
    (lambda: F.interpolate(dg.ones(1, 1, 4, 4), scale_factor=2, mode="nearest", align_corners=True), ValueError,
     "align_corners option can only be set with the interpolating modes"),
    (lambda: F.interpolate(dg.ones(1, 1, 4, 4), size=2, scale_factor=2), ValueError, "only one of size or scale_factor"),
    (lambda: F.interpolate(dg.ones(1, 1, 4, 4)), ValueError, "either size or scale_factor should be defined"),
    (lambda: F.interpolate(dg.ones(1, 1, 4, 4), size=(2, 2, 2)), ValueError, "same number of spatial dimensions"),
    (lambda: F.interpolate(dg.ones(1, 4), size=2), NotImplementedError, "Only 3D, 4D and 5D input Tensors"),
    (lambda: F.interpolate(dg.ones(1, 1, 4, 4), size=2, mode="cubic"), NotImplementedError, "got cubic"),
    (lambda: F.interpolate(dg.ones(1, 1, 4, 4), size=2, mode="bilinear", antialias=True), NotImplementedError,
     "antialias"),
])
def test_interpolate_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


@pytest.mark.parametrize("shape,r", [((1, 8, 3, 3), 2), ((2, 9, 2, 4), 3), ((3, 2, 4, 2, 6), 2), ((4, 3, 3), 1)])
def test_pixel_shuffle_and_unshuffle_match_torch_and_invert_each_other(shape, r, device):
    x = RNG.standard_normal(shape)
    (up,) = assert_matches_torch(lambda m, t: m.nn.functional.pixel_shuffle(t, r), [x], device, gradcheck=True)
    (back,) = assert_matches_torch(lambda m, t: m.nn.functional.pixel_unshuffle(t, r), [host(up)], device,
                                   gradcheck=True)
    np.testing.assert_array_equal(host(back), x)


def test_pixel_shuffle_errors_like_torch():
    with pytest.raises(RuntimeError, match=r"input.size\(-3\)=7 is not divisible by 4"):
        F.pixel_shuffle(dg.ones(1, 7, 2, 2), 2)
    with pytest.raises(RuntimeError, match="not both divisible by 2"):
        F.pixel_unshuffle(dg.ones(1, 1, 3, 4), 2)


def test_upsampling_layers_match_torch(device):
    torch = pytest.importorskip("torch")
    x = RNG.standard_normal((2, 4, 3, 5))
    for build in (lambda m: m.Upsample(scale_factor=2), lambda m: m.Upsample(size=(4, 7), mode="bilinear"),
                  lambda m: m.Upsample(scale_factor=(1.5, 2.0), mode="bicubic", align_corners=True),
                  lambda m: m.UpsamplingNearest2d(scale_factor=3), lambda m: m.UpsamplingBilinear2d(size=6),
                  lambda m: m.PixelShuffle(2), lambda m: m.PixelUnshuffle(1)):
        ours, theirs = build(nn), build(torch.nn)
        assert repr(ours) == repr(theirs)
        assert_matches_torch(lambda m, t: build(m.nn)(t), [x], device)
