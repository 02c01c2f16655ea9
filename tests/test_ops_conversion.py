"""Conversions: ``Tensor.to`` and its shorthands, and sharing memory through DLPack."""
import numpy as np
import pytest

import distgrad as dg
from distgrad import backend
from distgrad.autograd import gradcheck
from helpers import host

CUDA = backend.cuda_is_available()

VALUES = np.array([[1.5, -2.25, 3.0], [0.0, 7.75, -1.0]])


def test_to_a_dtype_casts_and_the_same_dtype_returns_self(device):
    t = dg.tensor(VALUES, device=device)
    out = t.to(dg.float32)
    assert out.dtype == np.float32 and out.device == t.device
    np.testing.assert_array_equal(host(out), VALUES.astype(np.float32))
    assert t.to(dg.float64) is t and t.to(device) is t and t.to(device, dg.float64) is t


def test_copy_true_returns_a_new_tensor_with_its_own_memory(device):
    t = dg.tensor(VALUES, device=device)
    out = t.to(dg.float64, copy=True)
    assert out is not t and out.array is not t.array
    out.array[0, 0] = 100.0
    assert host(t)[0, 0] == 1.5


@pytest.mark.parametrize("call", [
    lambda t, d: t.to(d, dg.float32), lambda t, d: t.to(device=d, dtype=dg.float32),
    lambda t, d: t.to(dg.zeros(1, dtype=dg.float32, device=d)), lambda t, d: t.to(d, np.float32),
    lambda t, d: t.to(dtype="float32", device=d),
], ids=["device-dtype", "keywords", "other", "numpy-type", "dtype-string"])
def test_to_overloads(device, call):
    out = call(dg.tensor(VALUES, device="cpu"), device)
    assert out.dtype == np.float32 and out.device == dg.device(device)
    np.testing.assert_array_equal(host(out), VALUES.astype(np.float32))


def test_to_is_differentiable_and_sends_the_gradient_back_in_the_input_dtype(device):
    x = dg.tensor(VALUES, device=device, requires_grad=True)
    y = x.to(dg.float32)
    assert y.requires_grad and y.grad_fn.name == "ToCopyBackward"
    y.backward(dg.ones(2, 3, device=device))
    assert x.grad.dtype == np.float64
    np.testing.assert_array_equal(host(x.grad), np.ones((2, 3)))
    assert gradcheck(lambda x: x.to(device, copy=True) * x.to("cpu").to(device), [x])


def test_integer_and_bool_results_do_not_require_grad(device):
    x = dg.tensor(VALUES, device=device, requires_grad=True)
    for out in (x.long(), x.bool(), x.to(dg.int32)):
        assert not out.requires_grad and out.grad_fn is None
    np.testing.assert_array_equal(host(x.long()), VALUES.astype(np.int64))


@pytest.mark.parametrize("method, dtype", [("float", np.float32), ("double", np.float64), ("half", np.float16),
                                           ("long", np.int64), ("int", np.int32), ("short", np.int16),
                                           ("char", np.int8), ("byte", np.uint8), ("bool", np.bool_)])
def test_dtype_shorthands(device, method, dtype):
    values = np.abs(VALUES)  # casting negative floats to unsigned integers is undefined
    out = getattr(dg.tensor(values, device=device), method)()
    assert out.dtype == dtype
    np.testing.assert_array_equal(host(out), values.astype(dtype))


def test_type_names_and_conversions(device):
    t = dg.tensor(VALUES, device=device)
    prefix = "distgrad.cuda." if device == "cuda" else "distgrad."
    assert t.type() == prefix + "DoubleTensor" and t.long().type() == prefix + "LongTensor"
    assert t.type(dg.float32).dtype == np.float32
    assert t.type("torch.IntTensor").dtype == np.int32 and t.type("torch.IntTensor").device == dg.device("cpu")
    assert t.type_as(dg.zeros(1, dtype=dg.float16)).dtype == np.float16
    with pytest.raises(ValueError, match="invalid type: 'distgrad.NoSuchTensor'"):
        t.type("distgrad.NoSuchTensor")


def test_cpu_moves_to_host_memory(device):
    t = dg.tensor(VALUES, device=device)
    out = t.cpu()
    assert isinstance(out.array, np.ndarray) and out.device == dg.device("cpu")
    assert (out is t) == (device == "cpu")


@pytest.mark.cuda
def test_cuda_with_an_index_and_back(device):
    if device == "cpu":
        pytest.skip("moves between devices")
    t = dg.tensor(VALUES)
    for on_gpu in (t.cuda(), t.cuda(0), t.to(0), t.to("cuda:0")):
        assert on_gpu.is_cuda and on_gpu.device == dg.device("cuda", 0)
        np.testing.assert_array_equal(on_gpu.cpu().numpy(), VALUES)


@pytest.mark.skipif(CUDA, reason="checks the error raised without a GPU")
def test_cuda_without_cupy_or_a_gpu_gives_a_clear_error():
    t = dg.tensor(VALUES, requires_grad=True)
    for move in (t.cuda, lambda: t.to("cuda:0"), lambda: t.to("cuda", dg.float32)):
        with pytest.raises(RuntimeError, match="device 'cuda' needs CuPy|device cuda:0 is not available"):
            move()


@pytest.mark.parametrize("args, kwargs, error, message", [
    (("float32",), {}, ValueError, "unknown device type 'float32'"),
    ((dg.float32, "cpu"), {}, TypeError, "to\\(\\) received an invalid combination of arguments"),
    (("cuda:x",), {}, ValueError, "invalid device string"),
], ids=["dtype-string-as-device", "wrong-order", "bad-index"])
def test_to_errors(args, kwargs, error, message):
    with pytest.raises(error, match=message):
        dg.tensor(VALUES).to(*args, **kwargs)


# --- DLPack ---------------------------------------------------------------------------------------
def test_from_dlpack_of_a_numpy_array_shares_memory():
    arr = VALUES.copy()
    t = dg.from_dlpack(arr)
    arr[0, 0] = 42.0
    assert t.array[0, 0] == 42.0
    t.add_(1.0)
    assert arr[1, 1] == VALUES[1, 1] + 1.0


def test_numpy_from_dlpack_of_a_tensor_shares_memory():
    t = dg.tensor(VALUES)
    arr = np.from_dlpack(t)
    t.mul_(2.0)
    np.testing.assert_array_equal(arr, 2 * VALUES)


def test_from_dlpack_of_a_tensor_shares_memory_on_its_device(device):
    t = dg.tensor(VALUES, device=device)
    other = dg.from_dlpack(t)
    assert other.device == t.device
    t.zero_()
    np.testing.assert_array_equal(host(other), np.zeros_like(VALUES))


def test_dlpack_with_torch_both_ways_shares_memory():
    torch = pytest.importorskip("torch")
    tt = torch.tensor(VALUES)
    t = dg.from_dlpack(tt)
    tt[0, 0] = -5.0
    assert t.array[0, 0] == -5.0
    back = torch.from_dlpack(t)
    t.fill_(3.0)
    assert torch.equal(back, torch.full((2, 3), 3.0, dtype=torch.float64))
