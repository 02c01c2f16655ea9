"""Everyday PyTorch idioms on distgrad: formatting, the Tensor and typed constructors, new_*, comparisons of
whole tensors, rounding divisions, Module.to's forms, the default device, and the import paths."""
import importlib

import numpy as np
import pytest

import distgrad as dg
from distgrad import backend
from helpers import assert_matches_torch, assert_raises_like_torch, from_torch, host, to_torch


# --- formatting ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", ["", ".4f", "8.2e", "+.1%"])
def test_a_0d_tensor_formats_as_its_number_like_torch(spec):
    torch = pytest.importorskip("torch")
    assert format(dg.tensor(2.71828), spec) == format(torch.tensor(2.71828), spec)
    assert f"{dg.tensor(3.5, dtype=dg.float64):.3f}" == "3.500"


def test_an_integer_0d_tensor_takes_integer_specs():
    assert f"{dg.tensor(42):>5d}" == "   42"


def test_a_tensor_with_dimensions_refuses_a_format_spec_but_prints_without_one():
    x = dg.ones(2)
    assert f"{x}" == str(x)
    with pytest.raises(TypeError, match="unsupported format string"):
        f"{x:.3f}"


# --- the Tensor constructor --------------------------------------------------------------------------
def test_tensor_of_python_data_is_a_float_tensor_of_the_default_dtype_like_torch():
    torch = pytest.importorskip("torch")
    for data in ([1, 2, 3], [[1, 2], [3, 4]], (1, 2), [True, False], range(3), [], [[]]):
        ours, theirs = dg.Tensor(data), torch.Tensor(data)
        assert ours.dtype == np.float32 and ours.shape == tuple(theirs.shape)
        np.testing.assert_array_equal(host(ours), theirs.numpy())
    assert dg.Tensor([dg.tensor(1.5), dg.tensor(2.5)]).tolist() == [1.5, 2.5]


def test_tensor_of_sizes_makes_a_zero_filled_tensor_of_that_shape():
    t = dg.Tensor(2, 3)
    assert t.shape == (2, 3) and t.dtype == np.float32 and not t.array.any()
    assert dg.Tensor().shape == (0,)


def test_tensor_of_an_array_wraps_it_without_a_copy():
    a = np.arange(3)
    t = dg.Tensor(a)
    assert t.array is a and t.dtype == np.int64


def test_tensor_of_a_tensor_shares_its_storage():
    src = dg.tensor([1.0, 2.0])
    alias = dg.Tensor(src)
    alias.array[0] = 5
    assert src.tolist() == [5.0, 2.0]


@pytest.mark.parametrize("args,error,message", [
    ((2.5,), TypeError, "data must be a sequence"),
    (("ab",), TypeError, "data must be a sequence"),
    ((2, "3"), TypeError, "sizes must all be integers"),
    ((2, -1), ValueError, "non-negative"),
    ((np.zeros(2), 3), TypeError, "an array alone"),
])
def test_tensor_constructor_errors(args, error, message):
    with pytest.raises(error, match=message):
        dg.Tensor(*args)


# --- typed constructors ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["FloatTensor", "DoubleTensor", "HalfTensor", "LongTensor", "IntTensor",
                                  "ShortTensor", "CharTensor", "ByteTensor", "BoolTensor"])
def test_typed_constructors_match_torch(name):
    torch = pytest.importorskip("torch")
    ours, theirs = getattr(dg, name), getattr(torch, name)
    for args in (([1, 0, 1],), ([[1, 2]],), (2, 3), ()):
        a, b = ours(*args), theirs(*args)
        assert a.dtype.name == str(b.dtype).replace("torch.", "") and a.shape == tuple(b.shape)
        if args and isinstance(args[0], list):
            np.testing.assert_array_equal(host(a), b.numpy())
    assert isinstance(ours([1]), ours) and not isinstance(dg.tensor([1], dtype=dg.float64 if name != "DoubleTensor"
                                                                     else dg.float32), ours)
    assert repr(ours) == f"<class 'distgrad.{name}'>"


def test_typed_constructors_convert_arrays_and_check_tensors():
    assert dg.FloatTensor(np.arange(3)).dtype == np.float32
    t = dg.tensor([1.0, 2.0])
    assert dg.FloatTensor(t).array is t.array
    with pytest.raises(TypeError, match=r"expected distgrad.LongTensor \(got distgrad.FloatTensor\)"):
        dg.LongTensor(t)
    with pytest.raises(TypeError, match="data must be a sequence"):
        dg.FloatTensor(2.5)


def test_type_takes_a_typed_constructor():
    x = dg.tensor([1.7, -2.2])
    assert x.type(dg.LongTensor).tolist() == [1, -2]
    assert x.type(dg.DoubleTensor).dtype == np.float64


def test_cuda_typed_constructors_make_gpu_tensors(device):
    if device == "cpu":
        assert not isinstance(dg.zeros(2), dg.cuda.FloatTensor)
        return
    t = dg.cuda.FloatTensor([1, 2])
    assert t.is_cuda and t.dtype == np.float32 and isinstance(t, dg.cuda.FloatTensor)
    assert not isinstance(t, dg.FloatTensor)
    assert dg.zeros(2).type(dg.cuda.LongTensor).is_cuda


# --- new_* -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [dg.float64, dg.int32])
def test_new_methods_take_the_tensor_dtype_and_device_like_torch(dtype, device):
    torch = pytest.importorskip("torch")
    x = dg.zeros(2, 3, dtype=dtype, device=device)
    tx = torch.zeros(2, 3, dtype=getattr(torch, dtype.name))
    cases = [("new_zeros", (4,)), ("new_ones", ((2, 2),)), ("new_full", ((2,), 3)), ("new_empty", (5,)),
             ("new_tensor", ([1.5, 2.0],)), ("new", (2, 2)), ("new", ([1, 2],)), ("new", ())]
    for name, args in cases:
        ours, theirs = getattr(x, name)(*args), getattr(tx, name)(*args)
        assert (ours.dtype.name, ours.shape) == (str(theirs.dtype)[6:], tuple(theirs.shape)), name
        assert ours.device == x.device
        if name not in ("new_empty", "new") or args and isinstance(args[0], list):
            np.testing.assert_array_equal(host(ours), theirs.numpy())


def test_new_methods_accept_dtype_device_and_requires_grad():
    x = dg.zeros(2)
    y = x.new_ones(3, dtype=dg.float64, requires_grad=True)
    assert y.dtype == np.float64 and y.requires_grad and y.device == backend.CPU


# --- whole-tensor comparisons and small queries ------------------------------------------------------
def test_isclose_allclose_and_equal_match_torch():
    torch = pytest.importorskip("torch")
    nan, inf = float("nan"), float("inf")
    a = [1.0, 1.0 + 1e-6, 2.0, nan, inf, -inf, 0.0]
    b = [1.0, 1.0, 2.1, nan, inf, inf, 1e-9]
    for kwargs in ({}, {"equal_nan": True}, {"rtol": 0.1, "atol": 0.0}, {"atol": 1e-3}):
        ours = dg.isclose(dg.tensor(a), dg.tensor(b), **kwargs)
        theirs = torch.isclose(torch.tensor(a), torch.tensor(b), **kwargs)
        np.testing.assert_array_equal(host(ours), theirs.numpy())
        assert dg.allclose(dg.tensor(a[:3]), dg.tensor(b[:3]), **kwargs) == \
            torch.allclose(torch.tensor(a[:3]), torch.tensor(b[:3]), **kwargs)
    assert dg.ones(2).allclose(dg.ones(1)) and dg.ones(2).isclose(dg.ones(2)).all()
    for x, y in (([1, 2], [1, 2]), ([1, 2], [1, 3]), ([1, 2], [1, 2, 3]), ([nan], [nan])):
        assert dg.equal(dg.tensor(x), dg.tensor(y)) == torch.equal(torch.tensor(x), torch.tensor(y))
    assert dg.ones(2).equal(dg.ones(2))


def test_isclose_needs_tensors_of_one_dtype_like_torch():
    with pytest.raises(RuntimeError, match="Float did not match Double"):
        dg.isclose(dg.ones(2), dg.ones(2, dtype=dg.float64))
    with pytest.raises(TypeError, match="argument 'other' \\(position 2\\) must be Tensor, not float"):
        dg.isclose(dg.ones(2), 1.0)
    with pytest.raises(RuntimeError, match="do not broadcast"):
        dg.allclose(dg.ones(2), dg.ones(3))


def test_small_queries():
    x = dg.zeros(2, 3)
    assert dg.is_tensor(x) and dg.is_tensor(dg.nn.Parameter(x)) and not dg.is_tensor(np.zeros(2))
    assert dg.numel(x) == x.nelement() == 6 and x.ndimension() == 2
    assert x.is_floating_point() and dg.is_floating_point(x)
    assert not dg.zeros(2, dtype=dg.int64).is_floating_point() and not x.is_complex()


# --- rounding divisions ------------------------------------------------------------------------------------
DIVISION_OPERANDS = [
    ([-7, 7, 5, -5], 2), ([-7, 7, 5, -5], -3), ([-7.5, 7.5, 0.25], 2), ([-7.5, 7.5, 0.25], -0.5),
    ([7, -7], 2.5), ([-7, 7, 9], [2, -3, 4]), ([-7.5, 7.5], [2.0, -3.0]), ([[1, -2], [3, 4]], [3, -3]),
]


@pytest.mark.parametrize("a,b", DIVISION_OPERANDS)
def test_floor_division_remainder_and_fmod_match_torch(a, b):
    torch = pytest.importorskip("torch")
    ta = dg.tensor(a)
    tb = dg.tensor(b) if isinstance(b, list) else b
    pa = torch.tensor(a)
    pb = torch.tensor(b) if isinstance(b, list) else b
    cases = [(lambda x, y: x // y), (lambda x, y: x % y), (lambda x, y: dg.fmod(x, y) if isinstance(x, dg.Tensor)
                                                          else torch.fmod(x, y)),
             (lambda x, y: x.div(y, rounding_mode="floor")), (lambda x, y: x.div(y, rounding_mode="trunc"))]
    for fn in cases:
        ours, theirs = fn(ta, tb), fn(pa, pb)
        assert ours.dtype.name == str(theirs.dtype)[6:]
        np.testing.assert_array_equal(host(ours), theirs.numpy())


def test_a_number_on_the_left_of_floor_division_and_remainder():
    torch = pytest.importorskip("torch")
    for number in (7, -7, 7.5):
        for ours, theirs in ((number // dg.tensor([2, -3]), number // torch.tensor([2, -3])),
                             (number % dg.tensor([2.0, -3.0]), number % torch.tensor([2.0, -3.0]))):
            assert ours.dtype.name == str(theirs.dtype)[6:]
            np.testing.assert_array_equal(host(ours), theirs.numpy())


def test_in_place_rounding_divisions():
    x = dg.tensor([7, -7])
    x //= 2
    assert x.tolist() == [3, -4]
    x %= 3
    assert x.tolist() == [0, 2]
    assert dg.tensor([5.0, -5.0]).fmod_(3).tolist() == [2.0, -2.0]


def test_integer_division_by_zero_raises_like_torch():
    for op in (lambda: dg.tensor([5]) // 0, lambda: dg.tensor([5]) % dg.tensor([0])):
        with pytest.raises(RuntimeError, match="ZeroDivisionError"):
            op()
    for call in (lambda m: m.fmod(m.tensor([5, 3]), m.tensor([1, 0])),
                 lambda m: m.div(m.tensor([5]), 0, rounding_mode="trunc"),
                 lambda m: m.tensor([5], dtype=m.uint8).remainder_(0)):
        assert_raises_like_torch(call, "ZeroDivisionError")
    assert dg.tensor([5.0]).floor_divide(0.0).tolist() == [float("inf")]


@pytest.mark.parametrize("op", ["floor_divide", "remainder", "fmod"])
def test_rounding_divisions_refuse_bool_operands_as_torch(op):
    assert_raises_like_torch(lambda m: getattr(m, op)(m.tensor([True]), m.tensor([True])), "not implemented for 'Bool'",
                             NotImplementedError)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_rounding_divisions_of_16_bit_floats_match_torch(dtype):
    pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    a = dg.tensor(rng.uniform(-50, 50, 200), dtype=getattr(dg, dtype))
    b = dg.tensor(rng.uniform(0.1, 3, 200) * rng.choice([-1, 1], 200), dtype=getattr(dg, dtype))
    ta, tb = to_torch(a), to_torch(b)
    for fn in (lambda x, y: x // y, lambda x, y: x % y, lambda x, y: x.fmod(y),
               lambda x, y: x.div(y, rounding_mode="trunc"), lambda x, y: x.div(2.5, rounding_mode="floor")):
        ours, theirs = fn(a, b), fn(ta, tb)
        assert ours.dtype.name == dtype
        np.testing.assert_array_equal(host(ours).astype(np.float64), from_torch(theirs).astype(np.float64))


def test_div_refuses_an_unknown_rounding_mode():
    with pytest.raises(ValueError, match="rounding_mode to be one of None, 'trunc', or 'floor'"):
        dg.ones(2).div(2, rounding_mode="round")


def test_remainder_and_fmod_gradients_match_torch_and_gradcheck(device):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    a, b = rng.uniform(-5, 5, (3, 4)), rng.uniform(0.5, 2, (4,)) * rng.choice([-1, 1], 4)
    for name in ("remainder", "fmod"):
        x = dg.tensor(a, device=device, requires_grad=True)
        y = dg.tensor(b, device=device, requires_grad=True)
        tx, ty = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
        getattr(dg, name)(x, y).sum().backward()
        getattr(torch, name)(tx, ty).sum().backward()
        np.testing.assert_allclose(host(x.grad), tx.grad.numpy())
        np.testing.assert_allclose(host(y.grad), ty.grad.numpy())
        assert dg.gradcheck(getattr(dg, name), (x, y))


def test_rounded_quotients_have_zero_gradients_and_floor_divide_none_as_in_torch():
    torch = pytest.importorskip("torch")
    values = np.random.default_rng(0).standard_normal(3)
    for mode in ("floor", "trunc"):
        assert_matches_torch(lambda m, x, y: m.div(x, y, rounding_mode=mode) + m.div(x, 3, rounding_mode=mode),
                             [values, values + 2.5], "cpu")
    for lib in (dg, torch):
        x = lib.tensor(values, requires_grad=True)
        with pytest.raises(RuntimeError, match="derivative for aten::floor_divide is not implemented"):
            (x // 2).sum().backward()


# --- Module.to, devices ------------------------------------------------------------------------------
@pytest.mark.parametrize("args,kwargs", [
    ((dg.float64,), {}), (("cpu", dg.float64), {}), ((dg.zeros(1, dtype=dg.float64),), {}),
    ((), {"device": "cpu", "dtype": dg.float64}), ((dg.device("cpu"), dg.float64, True), {}),
    ((), {"dtype": dg.float64, "non_blocking": True}),
])
def test_module_to_accepts_torch_forms(args, kwargs):
    m = dg.nn.Linear(2, 2)
    assert m.to(*args, **kwargs) is m and m.weight.dtype == np.float64 and m.weight.device == backend.CPU


def test_module_to_reads_an_index_or_a_cuda_string_as_a_gpu():
    from distgrad.ops.conversion import parse_to
    assert parse_to(0)[0] == dg.device("cuda", 0)
    assert parse_to("cuda:1", dg.float16)[:2] == (dg.device("cuda", 1), np.float16)
    with pytest.raises(TypeError, match="only accepts floating point"):
        dg.nn.Linear(2, 2).to(dg.int64)


def test_module_to_an_index_moves_to_that_gpu(device):
    if device == "cpu":
        pytest.skip("needs a GPU")
    m = dg.nn.Linear(2, 2).to(0)
    assert m.weight.device == dg.device("cuda", 0)


def test_the_default_device_is_where_factories_put_tensors():
    assert dg.get_default_device() == backend.CPU
    try:
        dg.set_default_device("cpu")
        assert dg.zeros(2).device == backend.CPU
        dg.set_default_device(None)
        assert dg.get_default_device() == backend.CPU
    finally:
        dg.set_default_device(None)


def test_factories_follow_a_gpu_default_device(device):
    if device == "cpu":
        pytest.skip("needs a GPU")
    try:
        dg.set_default_device(device)
        for t in (dg.zeros(2), dg.randn(2), dg.tensor([1, 2]), dg.Tensor([1.0]), dg.nn.Linear(2, 2).weight,
                  dg.arange(3)):
            assert t.is_cuda
        assert not dg.tensor(dg.zeros(2, device="cpu")).is_cuda  # a tensor's data keeps its device
        assert not dg.from_numpy(np.zeros(2)).is_cuda
    finally:
        dg.set_default_device(None)


# --- import paths and flags ----------------------------------------------------------------------------
def test_utils_data_holds_the_objects_of_data():
    import distgrad.utils.data as data
    from distgrad.utils.data import DataLoader, TensorDataset
    from distgrad.utils.data.distributed import DistributedSampler
    assert DataLoader is dg.data.DataLoader and TensorDataset is dg.data.TensorDataset
    assert DistributedSampler is dg.distributed.DistributedSampler
    assert set(data.__all__) == set(dg.data.__all__) and dg.utils.data is data


def test_backends_flags_are_stored_and_read_back():
    import distgrad.backends.cudnn as cudnn
    saved = cudnn.benchmark, cudnn.deterministic
    try:
        dg.backends.cudnn.benchmark = True
        cudnn.deterministic = True
        assert cudnn.benchmark and dg.backends.cudnn.deterministic
    finally:
        cudnn.benchmark, cudnn.deterministic = saved
    import importlib.util
    assert dg.backends.cudnn.is_available() == (backend.cuda_is_available() and importlib.util.find_spec("cudnn") is not None)
    assert not dg.backends.mps.is_available()
    assert not dg.backends.mps.is_built() and dg.backends.cuda.is_built() == backend.cupy_importable()


def test_tf32_matmul_flag_and_matmul_precision_are_one_switch():
    assert dg.backends.cuda.matmul.allow_tf32 is False and dg.get_float32_matmul_precision() == "highest"
    try:
        dg.set_float32_matmul_precision("high")
        assert dg.backends.cuda.matmul.allow_tf32 is True
        dg.backends.cuda.matmul.allow_tf32 = False
        assert dg.get_float32_matmul_precision() == "highest"
    finally:
        dg.backends.cuda.matmul.allow_tf32 = False
    with pytest.raises(RuntimeError, match="Invalid precision"):
        dg.set_float32_matmul_precision("low")


def test_deterministic_algorithms_make_the_gpu_scatter_add_raise_or_warn():
    assert not dg.are_deterministic_algorithms_enabled()
    backend.alert_not_deterministic("scatter_add")  # off: nothing happens
    try:
        dg.use_deterministic_algorithms(True)
        with pytest.raises(RuntimeError, match="scatter_add does not have a deterministic implementation"):
            backend.alert_not_deterministic("scatter_add")
        dg.use_deterministic_algorithms(True, warn_only=True)
        assert dg.is_deterministic_algorithms_warn_only_enabled()
        with pytest.warns(UserWarning, match="deterministic"):
            backend.alert_not_deterministic("scatter_add")
        x = dg.zeros(3, requires_grad=True)  # the CPU scatter-add is deterministic: no alert
        x[dg.tensor([0, 0])].sum().backward()
    finally:
        dg.use_deterministic_algorithms(False)


def test_cuda_seeding_leaves_the_cpu_stream_alone_and_needs_no_gpu():
    dg.manual_seed(3)
    first = dg.rand(3).tolist()
    dg.manual_seed(3)
    dg.cuda.manual_seed_all(99)
    dg.cuda.manual_seed(98)
    assert dg.rand(3).tolist() == first and dg.cuda.initial_seed() == 98
    dg.cuda.empty_cache()


def test_cuda_seeding_repeats_gpu_draws(device):
    if device == "cpu":
        pytest.skip("needs a GPU")
    dg.cuda.manual_seed_all(5)
    a = host(dg.randn(4, device=device))
    dg.cuda.manual_seed_all(5)
    np.testing.assert_array_equal(host(dg.randn(4, device=device)), a)
    assert isinstance(dg.cuda.get_device_name(), str)


@pytest.mark.parametrize("path", ["distgrad.backends", "distgrad.backends.cudnn", "distgrad.utils.data.distributed"])
def test_new_packages_import_on_their_own(path):
    assert importlib.import_module(path)


@pytest.mark.parametrize("name", ["rand", "randn"])
def test_random_floats_refuse_an_integer_dtype_as_torch(name):
    assert_raises_like_torch(lambda m: getattr(m, name)(2, dtype=m.int64), "not implemented for 'Long'",
                             NotImplementedError)
