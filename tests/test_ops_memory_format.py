"""Memory formats: clone keeps a dense tensor's strides by default (preserve_format), contiguous_format
is row-major, channels_last stores N H W C; contiguous and is_contiguous accept them, as in torch."""
import pickle

import numpy as np
import pytest

import distgrad as dg
from helpers import host, random_leaf


def strides_in_elements(t):
    return tuple(s // t.array.itemsize for s in t.array.strides)


@pytest.mark.parametrize("make", [lambda m, d: m.ones(2, 3, 4, 5, device=d).transpose(0, 1),
                                  lambda m, d: m.ones(2, 3, 4, 5, device=d),
                                  lambda m, d: m.ones(2, 3, 4, 5, device=d)[:, :, ::2],
                                  lambda m, d: m.ones(4, 1, device=d).expand(4, 3),
                                  lambda m, d: m.ones(2, 3, 4, 5, device=d).permute(0, 2, 3, 1)],
                         ids=["transposed", "contiguous", "sliced", "expanded", "permuted"])
@pytest.mark.parametrize("fmt", ["preserve_format", "contiguous_format", "channels_last"])
def test_clone_lays_out_memory_like_torch(make, fmt, device):
    torch = pytest.importorskip("torch")
    theirs = make(torch, "cpu")
    if fmt == "channels_last" and theirs.ndim != 4:
        return
    ours = make(dg, device)
    expected = theirs.clone(memory_format=getattr(torch, fmt))
    got = ours.clone(memory_format=getattr(dg, fmt))
    np.testing.assert_array_equal(host(got), expected.numpy())
    assert strides_in_elements(got) == expected.stride()
    assert got.is_contiguous() == expected.is_contiguous()
    if got.ndim == 4:
        assert got.is_contiguous(memory_format=dg.channels_last) == \
            expected.is_contiguous(memory_format=torch.channels_last)


def test_contiguous_with_a_format_and_is_contiguous(device):
    x = dg.ones(2, 3, 4, 5, device=device)
    y = x.contiguous(memory_format=dg.channels_last)
    assert strides_in_elements(y) == (60, 1, 15, 3)
    assert y.contiguous(memory_format=dg.channels_last) is y
    assert y.contiguous().is_contiguous() and not y.is_contiguous()
    assert x.contiguous(memory_format=dg.preserve_format) is x
    with pytest.raises(RuntimeError, match="preserve memory format is unsupported by the contiguous operator"):
        x.transpose(0, 1).contiguous(memory_format=dg.preserve_format)
    assert not dg.ones(3).is_contiguous(memory_format=dg.channels_last)


def test_clone_stays_in_the_graph_in_any_format(device):
    x = random_leaf((2, 3, 2, 2), device)
    x.clone(memory_format=dg.channels_last).sum().backward()
    np.testing.assert_array_equal(host(x.grad), np.ones((2, 3, 2, 2)))


def test_format_errors_and_names():
    with pytest.raises(RuntimeError, match="required rank 4 tensor to use channels_last format"):
        dg.ones(2, 3).clone(memory_format=dg.channels_last)
    with pytest.raises(TypeError, match="memory_format must be a distgrad memory format"):
        dg.ones(2, 3).clone(memory_format="channels_last")
    assert repr(dg.channels_last) == "distgrad.channels_last"
    assert pickle.loads(pickle.dumps(dg.channels_last)) is dg.channels_last
    assert dg.ones(1, 2, 3, 4, 5).clone(memory_format=dg.channels_last_3d).is_contiguous(
        memory_format=dg.channels_last_3d)
