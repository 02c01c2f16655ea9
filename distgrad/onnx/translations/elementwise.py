"""Elementwise ops: arithmetic, math functions, activations, ``clamp``/``maximum``/``minimum``/``where``,
rounding divisions, ``lerp`` and dtype conversions.

Operands are cast to the op's result dtype first (distgrad promotes as PyTorch does; ONNX's elementwise
ops want one dtype), so every result has the dtype the trace recorded.
"""
from __future__ import annotations

import math

import numpy as np

from distgrad.ops import arithmetic as ar
from distgrad.ops import elementwise as el
from distgrad.ops import pointwise_activation as pa
from distgrad.ops import rounding as rd
from distgrad.ops.conversion import ToCopy
from distgrad.ops.lerp import Lerp
from distgrad.ops.shape import Clone
from distgrad.onnx.registry import translates

# --- arithmetic -----------------------------------------------------------------------------------
_BINARY = {ar.Add: "Add", ar.Sub: "Sub", ar.Mul: "Mul", ar.Div: "Div", ar.Pow: "Pow",
           el.Maximum: "Max", el.Minimum: "Min"}


@translates(*_BINARY)
def _binary(e):
    dtype = e.out_dtype()
    return e.add(_BINARY[e.op.op], [e.input(0, dtype), e.input(1, dtype)])


_WITH_SCALAR = {ar.AddScalar: ("Add", False), ar.RSubScalar: ("Sub", True), ar.MulScalar: ("Mul", False),
                ar.DivScalar: ("Div", False), ar.RDivScalar: ("Div", True), ar.RPowScalar: ("Pow", True)}


@translates(*_WITH_SCALAR, varying=(1,))
def _with_scalar(e):
    op_type, reflected = _WITH_SCALAR[e.op.op]
    dtype = e.out_dtype()
    operands = [e.input(0, dtype), e.number(1, dtype)]
    return e.add(op_type, operands[::-1] if reflected else operands)


@translates(ar.PowScalar)
def _pow_scalar(e):
    dtype, p = e.out_dtype(), e.args[1]
    x = e.input(0, dtype)
    if p == 2:  # exact, as distgrad's x * x
        return e.add("Mul", [x, x])
    return e.add("Pow", [x, e.scalar(p, dtype)])


@translates(ar.Neg)
def _neg(e):
    return e.add("Neg", [e.input(0)])


# --- rounding divisions ----------------------------------------------------------------------------
@translates(rd.FloorDivide, rd.DivFloor, rd.DivTrunc, rd.Remainder, rd.Fmod)
def _rounding_division(e):
    dtype = e.out_dtype()
    a, b = (e.name(v, dtype) for v in e.args[:2])
    integer = np.dtype(dtype).kind in "iu"
    op = e.op.op
    if op is rd.Fmod:
        return e.add("Mod", [a, b], fmod=1)
    if op is rd.Remainder:
        if integer:
            return e.add("Mod", [a, b], fmod=0)
        return e.add("Sub", [a, e.add("Mul", [b, e.add("Floor", [e.add("Div", [a, b])])])])
    if op is rd.DivTrunc:
        return e.add("Div", [a, b]) if integer else _trunc(e, e.add("Div", [a, b]))
    if integer:  # a - (a mod b) is a multiple of b, so the truncating Div is exact
        return e.add("Div", [e.add("Sub", [a, e.add("Mod", [a, b], fmod=0)]), b])
    return e.add("Floor", [e.add("Div", [a, b])])


def _trunc(e, x):
    return e.add("Where", [e.add("Less", [x, e.scalar(0, e.out_dtype())]), e.add("Ceil", [x]), e.add("Floor", [x])])


# --- unary math and activations ---------------------------------------------------------------------
_UNARY = {el.Exp: "Exp", el.Log: "Log", el.Sqrt: "Sqrt", el.Reciprocal: "Reciprocal", el.Sin: "Sin", el.Cos: "Cos",
          el.Tan: "Tan", el.Tanh: "Tanh", el.Abs: "Abs", el.Sign: "Sign", el.Relu: "Relu", el.Sigmoid: "Sigmoid",
          el.Erf: "Erf", pa.Hardswish: "HardSwish"}


@translates(*_UNARY)
def _unary(e):
    return e.add(_UNARY[e.op.op], [e.input(0, e.out_dtype())])


@translates(el.Floor, el.Ceil, el.Trunc, el.Round)
def _rounding(e):
    x = e.input(0, e.out_dtype())
    if np.dtype(e.out_dtype()).kind in "iub":  # rounding an integer leaves it as it is
        return e.add("Identity", [x])
    op = e.op.op
    if op is el.Trunc:
        return _trunc(e, x)
    if op is not el.Round:
        return e.add("Floor" if op is el.Floor else "Ceil", [x])
    decimals = e.args[1]
    if decimals == 0:
        return e.add("Round", [x])
    scale = e.scalar(10.0 ** decimals, e.out_dtype())
    return e.add("Div", [e.add("Round", [e.add("Mul", [x, scale])]), scale])


@translates(el.Log1p, el.Expm1, el.Rsqrt, el.Silu, pa.Logsigmoid)
def _composed(e):
    dtype, op = e.out_dtype(), e.op.op
    x = e.input(0, dtype)
    if op is el.Log1p:
        return e.add("Log", [e.add("Add", [x, e.scalar(1, dtype)])])
    if op is el.Expm1:
        return e.add("Sub", [e.add("Exp", [x]), e.scalar(1, dtype)])
    if op is el.Rsqrt:
        return e.add("Reciprocal", [e.add("Sqrt", [x])])
    if op is el.Silu:
        return e.add("Mul", [x, e.add("Sigmoid", [x])])
    return e.add("Neg", [e.add("Softplus", [e.add("Neg", [x])])])


@translates(el.LeakyRelu)
def _leaky_relu(e):
    return e.add("LeakyRelu", [e.input(0, e.out_dtype())], alpha=float(e.args[1]))


@translates(el.Softplus)
def _softplus(e):
    dtype, (beta, threshold) = e.out_dtype(), e.args[1:3]
    x = e.input(0, dtype)
    scaled = x if beta == 1 else e.add("Mul", [x, e.scalar(beta, dtype)])
    soft = e.add("Softplus", [scaled])
    if beta != 1:
        soft = e.add("Div", [soft, e.scalar(beta, dtype)])
    return e.add("Where", [e.add("Greater", [scaled, e.scalar(threshold, dtype)]), x, soft])


@translates(el.Gelu)
def _gelu(e):
    dtype, approximate = e.out_dtype(), e.args[1]
    x = e.input(0, dtype)
    if e.opset >= 20:
        return e.add("Gelu", [x], approximate=approximate)
    half = e.scalar(0.5, dtype)
    if approximate == "tanh":  # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        cube = e.add("Mul", [e.add("Mul", [x, x]), x])
        inner = e.add("Add", [x, e.add("Mul", [cube, e.scalar(0.044715, dtype)])])
        t = e.add("Tanh", [e.add("Mul", [inner, e.scalar(math.sqrt(2 / math.pi), dtype)])])
    else:  # 0.5 x (1 + erf(x / sqrt 2))
        t = e.add("Erf", [e.add("Mul", [x, e.scalar(math.sqrt(0.5), dtype)])])
    return e.add("Mul", [e.add("Mul", [x, half]), e.add("Add", [t, e.scalar(1, dtype)])])


@translates(pa.Elu)
def _elu(e):
    dtype, (alpha, scale, input_scale) = e.out_dtype(), e.args[1:4]
    x = e.input(0, dtype)
    if scale == 1 and input_scale == 1:
        return e.add("Elu", [x], alpha=float(alpha))
    inner = x if input_scale == 1 else e.add("Mul", [x, e.scalar(input_scale, dtype)])
    negative = e.add("Mul", [e.add("Sub", [e.add("Exp", [inner]), e.scalar(1, dtype)]), e.scalar(alpha * scale, dtype)])
    positive = x if scale == 1 else e.add("Mul", [x, e.scalar(scale, dtype)])
    return e.add("Where", [e.add("Greater", [x, e.scalar(0, dtype)]), positive, negative])


@translates(pa.Hardtanh)
def _hardtanh(e):
    dtype = e.out_dtype()
    return e.add("Clip", [e.input(0, dtype), e.scalar(e.args[1], dtype), e.scalar(e.args[2], dtype)])


@translates(pa.Hardsigmoid)
def _hardsigmoid(e):
    return e.add("HardSigmoid", [e.input(0, e.out_dtype())], alpha=1 / 6, beta=0.5)


@translates(pa.Mish)
def _mish(e):
    x = e.input(0, e.out_dtype())
    if e.opset >= 18:
        return e.add("Mish", [x])
    return e.add("Mul", [x, e.add("Tanh", [e.add("Softplus", [x])])])


@translates(pa.Threshold)
def _threshold(e):
    dtype = e.out_dtype()
    x = e.input(0, dtype)
    return e.add("Where", [e.add("Greater", [x, e.scalar(e.args[1], dtype)]), x, e.scalar(e.args[2], dtype)])


@translates(pa.Hardshrink, pa.Softshrink)
def _shrink(e):
    lambd = float(e.args[1])
    return e.add("Shrink", [e.input(0, e.out_dtype())], lambd=lambd, bias=lambd if e.op.op is pa.Softshrink else 0.0)


# --- clamp, where, lerp, conversions ----------------------------------------------------------------
@translates(el.Clamp)
def _clamp(e):
    dtype = e.out_dtype()
    out = e.input(0, dtype)
    for bound, op_type in ((e.args[1], "Max"), (e.args[2], "Min")):
        if bound is not None:
            out = e.add(op_type, [out, e.name(bound, dtype)])
    return out


@translates(el.Where)
def _where(e):
    dtype = e.out_dtype()
    return e.add("Where", [e.input(0), e.name(e.args[1], dtype), e.name(e.args[2], dtype)])


@translates(Lerp)
def _lerp(e):
    dtype = e.out_dtype()
    start, end = e.input(0, dtype), e.input(1, dtype)
    step = e.add("Mul", [e.name(e.args[2], dtype), e.add("Sub", [end, start])])
    return e.add("Add", [start, step])


@translates(ToCopy)
def _to(e):
    return e.input(0, e.out_dtype()) if e.op.args[0].dtype != e.out_dtype() else e.add("Identity", [e.input(0)])


@translates(Clone)
def _clone(e):
    return e.add("Identity", [e.input(0)])
