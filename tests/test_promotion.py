"""Type promotion equals PyTorch's, table by table: every pair of dtypes, every kind of operand (a
tensor with dimensions, a 0-d tensor, a Python int, float or bool), for the binary ops, comparisons,
``where``, ``clamp`` and the in-place forms; the result dtype, the values, and the errors.

Each table test walks all its cases and reports every mismatch at once.
"""
import math

import numpy as np
import pytest
from helpers import from_torch, host, to_torch

import distgrad as dg

torch = pytest.importorskip("torch")

DTYPES = ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "bfloat16", "float32", "float64"]
TENSOR_KINDS = ["tensor", "0-d"]
NUMBER_KINDS = ["int", "float", "bool"]


def _operand(kind: str, dtype: str | None, device: str = "cpu"):
    """The same operand for distgrad and for torch: (distgrad value, torch value, label)."""
    if kind in NUMBER_KINDS:
        value = {"int": 2, "float": 1.5, "bool": True}[kind]
        return value, value, f"{kind} {value}"
    # no zeros, so that integer division and remainder are defined; no bool False for the same reason
    values = [True, True, True] if dtype == "bool" else [1, 2, 3]
    if kind == "0-d":
        values = values[1]
    t = dg.tensor(np.array(values), dtype=getattr(dg, dtype), device=device)
    return t, to_torch(t), f"{kind} {dtype}"


def _tolerance(dtype) -> float:
    return {torch.bfloat16: 1e-2, torch.float16: 1e-3}.get(dtype, 1e-6)


def _compare(label: str, ours, theirs, mismatches: list) -> None:
    """Records a mismatch of outcome (error or not), dtype or values between distgrad and torch."""
    if isinstance(theirs, NotImplementedError):
        return  # torch has no kernel for this dtype (e.g. bool floor division); distgrad may have one
    if isinstance(theirs, Exception):
        if not isinstance(ours, Exception):
            mismatches.append(f"{label}: torch raises {theirs!r}, distgrad gives {ours.dtype}")
        return
    if isinstance(ours, Exception):
        mismatches.append(f"{label}: torch gives {theirs.dtype}, distgrad raises {ours!r}")
        return
    expected = str(theirs.dtype).replace("torch.", "")
    if ours.dtype.name != expected:
        mismatches.append(f"{label}: torch gives {expected}, distgrad {ours.dtype.name}")
        return
    got = host(ours).astype(np.float64)
    want = from_torch(theirs).astype(np.float64)
    if got.shape != want.shape or not np.allclose(got, want, rtol=_tolerance(theirs.dtype), equal_nan=True):
        mismatches.append(f"{label}: values {got.tolist()} != torch's {want.tolist()}")


def _outcome(fn, *args):
    try:
        with np.errstate(all="ignore"):
            return fn(*args)
    except Exception as exc:  # noqa: BLE001 (the error is the outcome compared)
        return exc


def _run_table(fn, cases) -> list:
    mismatches = []
    for label, ours, theirs in cases:
        _compare(label, _outcome(fn, *ours), _outcome(fn, *theirs), mismatches)
    return mismatches


def _binary_cases(left_kinds=TENSOR_KINDS, right_numbers=True, numbers_on_the_left=True, device="cpu"):
    """(label, distgrad operands, torch operands) for every dtype pair and operand kind."""
    cases = []
    right = [(k, d) for k in TENSOR_KINDS for d in DTYPES] + ([(k, None) for k in NUMBER_KINDS] if right_numbers else [])
    for lk in left_kinds:
        for ld in DTYPES:
            a, ta, la = _operand(lk, ld, device)
            for rk, rd in right:
                b, tb, lb = _operand(rk, rd, device)
                cases.append((f"{la} with {lb}", (a, b), (ta, tb)))
                if numbers_on_the_left and rk in NUMBER_KINDS:
                    cases.append((f"{lb} with {la}", (b, a), (tb, ta)))
    return cases


BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "floor_divide": lambda a, b: a // b,
    "remainder": lambda a, b: a % b,
    "pow": lambda a, b: a ** b,
    "lt": lambda a, b: a < b,
    "eq": lambda a, b: a == b,
    "ge": lambda a, b: a >= b,
    "bitwise_and": lambda a, b: a & b,
    "bitwise_xor": lambda a, b: a ^ b,
}


@pytest.mark.parametrize("op", list(BINARY))
def test_binary_ops_promote_every_dtype_pair_and_operand_kind_as_pytorch(op, device):
    assert _run_table(BINARY[op], _binary_cases(device=device)) == []


@pytest.mark.parametrize("op", ["maximum", "minimum"])
def test_maximum_and_minimum_promote_tensor_pairs_as_pytorch(op):
    cases = _binary_cases(right_numbers=False)
    fn = lambda a, b: getattr(dg if isinstance(a, dg.Tensor) else torch, op)(a, b)  # noqa: E731
    assert _run_table(fn, cases) == []


@pytest.mark.parametrize("op", ["cat", "stack"])
def test_cat_and_stack_promote_their_tensors_as_pytorch(op):
    cases = _binary_cases(left_kinds=["tensor"], right_numbers=False)
    cases = [(label, ours, theirs) for label, ours, theirs in cases if "0-d" not in label]
    fn = lambda a, b: getattr(dg if isinstance(a, dg.Tensor) else torch, op)([a, b])  # noqa: E731
    assert _run_table(fn, cases) == []


def test_where_promotes_its_two_values_as_pytorch_whatever_their_kinds():
    condition = dg.tensor([True, False, True])
    kinds = [(k, d) for k in TENSOR_KINDS for d in DTYPES] + [(k, None) for k in NUMBER_KINDS]
    cases = []
    for ak, ad in kinds:
        a, ta, la = _operand(ak, ad)
        for bk, bd in kinds:
            b, tb, lb = _operand(bk, bd)
            cases.append((f"where({la}, {lb})", (condition, a, b), (to_torch(condition), ta, tb)))
    fn = lambda c, a, b: (dg if isinstance(c, dg.Tensor) else torch).where(c, a, b)  # noqa: E731
    assert _run_table(fn, cases) == []


@pytest.mark.parametrize("bounds", ["min", "max", "both"])
def test_clamp_promotes_with_tensor_and_number_bounds_as_pytorch(bounds):
    def clamp(a, b):
        lib = dg if isinstance(a, dg.Tensor) else torch
        lo = b if bounds in ("min", "both") else None
        hi = b if bounds in ("max", "both") else None
        return lib.clamp(a, lo, hi)
    assert _run_table(clamp, _binary_cases(numbers_on_the_left=False)) == []


INPLACE = {
    "add_": lambda a, b: a.clone().add_(b),
    "sub_": lambda a, b: a.clone().sub_(b),
    "mul_": lambda a, b: a.clone().mul_(b),
    "div_": lambda a, b: a.clone().div_(b),
    "pow_": lambda a, b: a.clone().pow_(b),
    "clamp_": lambda a, b: a.clone().clamp_(min=b),
    "+=": lambda a, b: _iadd(a.clone(), b),
}


def _iadd(a, b):
    a += b
    return a


@pytest.mark.parametrize("op", list(INPLACE))
def test_in_place_ops_keep_their_dtype_and_refuse_what_pytorch_refuses(op, device):
    assert _run_table(INPLACE[op], _binary_cases(numbers_on_the_left=False, device=device)) == []


def test_in_place_refusal_names_the_types_as_pytorch_does():
    with pytest.raises(RuntimeError, match="add_: result type Float can't be cast to the desired output type Long"):
        dg.tensor([1, 2]).add_(dg.tensor([0.5, 0.5]))
    with pytest.raises(RuntimeError, match="result type Long can't be cast to the desired output type Bool"):
        dg.tensor([True]).add_(1)
    with pytest.raises(RuntimeError, match="result type Float can't be cast to the desired output type Int"):
        dg.tensor([1], dtype=dg.int32).div_(2)


def test_a_refused_in_place_op_leaves_the_tensor_unchanged():
    t = dg.tensor([1, 2])
    with pytest.raises(RuntimeError):
        t.mul_(2.5)
    assert t.tolist() == [1, 2] and t._version[0] == 0


# --- the public functions ----------------------------------------------------------------------------
def _torch_dtype(name: str):
    return getattr(torch, name)


def test_promote_types_matches_pytorch_for_every_pair():
    for a in DTYPES:
        for b in DTYPES:
            expected = str(torch.promote_types(_torch_dtype(a), _torch_dtype(b))).replace("torch.", "")
            assert dg.promote_types(getattr(dg, a), getattr(dg, b)).name == expected, (a, b)


def test_can_cast_matches_pytorch_for_every_pair():
    for a in DTYPES:
        for b in DTYPES:
            assert dg.can_cast(getattr(dg, a), getattr(dg, b)) == torch.can_cast(_torch_dtype(a), _torch_dtype(b)), \
                (a, b)


def test_result_type_of_numbers_and_tensors_matches_pytorch():
    numbers = [True, 3, 2.5]
    for x in numbers:
        for y in numbers:
            assert dg.result_type(x, y).name == str(torch.result_type(x, y)).replace("torch.", "")
    for d in DTYPES:
        for kind in TENSOR_KINDS:
            t, tt, _ = _operand(kind, d)
            for x in numbers:
                assert dg.result_type(t, x).name == str(torch.result_type(tt, x)).replace("torch.", ""), (kind, d, x)


def test_the_examples_of_the_issue():
    f32, i64 = dg.ones(3), dg.ones(3, dtype=dg.int64)
    assert (f32 ** i64).dtype == dg.float32
    assert (i64 + 2.5).dtype == dg.float32
    assert (dg.ones(3, dtype=dg.float16) + i64).dtype == dg.float16
    assert (f32 * dg.tensor(2.0, dtype=dg.float64)).dtype == dg.float32
    assert (dg.ones(2, dtype=dg.bfloat16) + dg.ones(2, dtype=dg.float16)).dtype == dg.float32
    assert (dg.ones(2, dtype=dg.bfloat16) + i64[:2]).dtype == dg.bfloat16


def test_an_int_tensor_with_a_float_number_takes_the_default_dtype():
    dg.set_default_dtype(dg.float64)
    try:
        assert (dg.tensor([1, 2]) * 0.5).dtype == dg.float64
        assert (dg.tensor([1.0], dtype=dg.float32) * 0.5).dtype == dg.float32
    finally:
        dg.set_default_dtype(dg.float32)


def test_numbers_outside_a_small_integer_dtype_wrap_as_in_pytorch():
    int8 = dg.tensor([1, 2, 3], dtype=dg.int8)
    uint8 = dg.tensor([1, 2, 3], dtype=dg.uint8)
    assert (int8 + 1000).tolist() == (to_torch(int8) + 1000).tolist()
    assert (uint8 - 5).tolist() == (to_torch(uint8) - 5).tolist()


def test_errors_that_pytorch_raises_for_bools_and_negative_integer_powers():
    mask = dg.tensor([True, False])
    with pytest.raises(RuntimeError, match="Subtraction, the `-` operator, with two bool tensors is not supported"):
        mask - mask
    with pytest.raises(RuntimeError, match="Negation, the `-` operator, on a bool tensor is not supported"):
        -mask
    with pytest.raises(RuntimeError, match="Integers to negative integer powers are not allowed"):
        dg.tensor([2]) ** -1


# --- gradients -------------------------------------------------------------------------------------------
FLOATS = ["float16", "bfloat16", "float32", "float64"]
GRAD_OPS = {
    "add": lambda a, b: a + b, "mul": lambda a, b: a * b, "div": lambda a, b: a / b,
    "pow": lambda a, b: a.abs() ** b, "remainder": lambda a, b: a % b,
    "maximum": lambda a, b: (dg if isinstance(a, dg.Tensor) else torch).maximum(a, b),
    "where": lambda a, b: (dg if isinstance(a, dg.Tensor) else torch).where(a > 0, a, b),
    "clamp": lambda a, b: (dg if isinstance(a, dg.Tensor) else torch).clamp(a, max=b),
}


@pytest.mark.parametrize("op", list(GRAD_OPS))
def test_gradients_come_back_in_each_inputs_dtype(op):
    rng = np.random.default_rng(0)
    fn = GRAD_OPS[op]
    for da in FLOATS:
        for db in FLOATS:
            for b_shape in [(3,), ()]:  # a dimensioned or a 0-d second operand
                a = dg.tensor(rng.uniform(0.5, 2, 3), dtype=getattr(dg, da), requires_grad=True)
                b = dg.tensor(rng.uniform(0.5, 2, b_shape), dtype=getattr(dg, db), requires_grad=True)
                ta, tb = to_torch(a).requires_grad_(), to_torch(b).requires_grad_()
                out, t_out = fn(a, b), fn(ta, tb)
                assert out.dtype.name == str(t_out.dtype).replace("torch.", ""), (op, da, db, b_shape)
                out.sum().backward()
                t_out.sum().backward()
                for ours, theirs in ((a.grad, ta.grad), (b.grad, tb.grad)):
                    assert ours.dtype.name == str(theirs.dtype).replace("torch.", ""), (op, da, db, b_shape)
                    tol = max(_tolerance(theirs.dtype), _tolerance(t_out.dtype)) * 4
                    np.testing.assert_allclose(host(ours).astype(np.float64), from_torch(theirs).astype(np.float64),
                                               rtol=tol, atol=tol, err_msg=f"{op} {da} {db} {b_shape}")


def test_gradients_through_a_promoting_op_are_cast_in_double_backward_too():
    a = dg.tensor([1.0, 2.0], dtype=dg.float32, requires_grad=True)
    b = dg.tensor(3.0, dtype=dg.float64, requires_grad=True)
    (ga,) = dg.autograd.grad((a * a * b).sum(), [a], create_graph=True)
    assert ga.dtype == dg.float32
    (gb,) = dg.autograd.grad(ga.sum(), [b])
    assert gb.dtype == dg.float64 and math.isclose(gb.item(), 6.0)


# --- finfo, iinfo ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", FLOATS)
def test_finfo_has_pytorchs_fields_and_values(name):
    ours, theirs = dg.finfo(getattr(dg, name)), torch.finfo(_torch_dtype(name))
    for field in ("bits", "eps", "max", "min", "tiny", "smallest_normal", "resolution", "dtype"):
        assert getattr(ours, field) == getattr(theirs, field), field
    assert repr(ours) == repr(theirs)


@pytest.mark.parametrize("name", ["uint8", "int8", "int16", "int32", "int64"])
def test_iinfo_has_pytorchs_fields_and_values(name):
    ours, theirs = dg.iinfo(getattr(dg, name)), torch.iinfo(_torch_dtype(name))
    for field in ("bits", "max", "min", "dtype"):
        assert getattr(ours, field) == getattr(theirs, field), field
    assert repr(ours) == repr(theirs)


def test_finfo_without_a_dtype_is_the_default_dtypes_and_refuses_integers():
    assert dg.finfo().dtype == "float32"
    with pytest.raises(TypeError, match="floating point"):
        dg.finfo(dg.int32)
    with pytest.raises(TypeError, match="iinfo"):
        dg.iinfo(dg.float32)
