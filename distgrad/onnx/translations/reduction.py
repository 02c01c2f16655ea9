"""Reductions (``sum mean var std prod logsumexp norm amax amin``, ``max``/``min`` along a dim, ``cumsum``),
``softmax``/``log_softmax``, and the comparisons and logical ops (which distgrad runs without a Function).

From opset 18 every Reduce op takes its axes as an input; in opset 17 only ReduceSum does (``reduce``).
"""
from __future__ import annotations

import math

import numpy as np

from distgrad.ops import comparison as cm
from distgrad.ops import extremes as ex
from distgrad.ops import reduction as rd
from distgrad.ops.activation import LogSoftmax, Softmax
from distgrad.onnx.registry import translates
from distgrad.promotion import result_type


def reduce(e, op_type: str, x: str, axes, keepdims: bool) -> str:
    axes = list(axes)
    if e.opset >= 18 or op_type == "ReduceSum":
        return e.add(op_type, [x, e.ints(axes)], keepdims=int(keepdims))
    return e.add(op_type, [x], axes=axes, keepdims=int(keepdims))


def _count(e, x, axes) -> int:
    dims = e.dims(x)
    if not all(isinstance(dims[a], int) for a in axes):
        e.unsupported("a variance or norm over a dynamic axis")
    return math.prod(dims[a] for a in axes)


_REDUCE = {rd.Sum: "ReduceSum", rd.Mean: "ReduceMean", rd.Prod: "ReduceProd", rd.LogSumExp: "ReduceLogSumExp",
           ex.AMax: "ReduceMax", ex.AMin: "ReduceMin"}


@translates(*_REDUCE)
def _reduce(e):
    x, axes, keepdim = e.args
    name = e.input(0, e.out_dtype())
    if not axes:  # a 0-d tensor
        return e.add("Identity", [name])
    return reduce(e, _REDUCE[e.op.op], name, axes, keepdim)


@translates(rd.Var, rd.Std)
def _variance(e):
    x, axes, keepdim, correction = e.args
    dtype = e.out_dtype()
    name = e.input(0, dtype)
    centered = e.add("Sub", [name, reduce(e, "ReduceMean", name, axes, True)])
    total = reduce(e, "ReduceSum", e.add("Mul", [centered, centered]), axes, keepdim)
    var = e.add("Div", [total, e.scalar(max(_count(e, x, axes) - correction, 0), dtype)])
    return e.add("Sqrt", [var]) if e.op.op is rd.Std else var


@translates(rd.Norm)
def _norm(e):
    x, p, axes, keepdim = e.args
    dtype = e.out_dtype()
    name = e.input(0, dtype)
    if p == 2:
        return reduce(e, "ReduceL2", name, axes, keepdim)
    if p == 1:
        return reduce(e, "ReduceL1", name, axes, keepdim)
    if math.isinf(p):
        return reduce(e, "ReduceMax" if p > 0 else "ReduceMin", e.add("Abs", [name]), axes, keepdim)
    if p == 0:
        nonzero = e.cast(e.add("Not", [e.add("Equal", [name, e.scalar(0, dtype)])]), dtype)
        return reduce(e, "ReduceSum", nonzero, axes, keepdim)
    powered = e.add("Pow", [e.add("Abs", [name]), e.scalar(p, dtype)])
    return e.add("Pow", [reduce(e, "ReduceSum", powered, axes, keepdim), e.scalar(1 / p, dtype)])


@translates(rd.Cumsum)
def _cumsum(e):
    return e.add("CumSum", [e.input(0, e.out_dtype()), e.scalar(e.args[1], np.int64)])


@translates(ex.MaxAlongDim, ex.MinAlongDim)
def _extreme_along_dim(e):
    x, axis, keepdim = e.args
    name = e.input(0)
    if x.ndim == 0:
        return e.add("Identity", [name]), e.scalar(0, np.int64)
    is_max = e.op.op is ex.MaxAlongDim
    values = reduce(e, "ReduceMax" if is_max else "ReduceMin", name, [axis], keepdim)
    indices = e.add("ArgMax" if is_max else "ArgMin", [name], axis=axis, keepdims=int(keepdim))
    return values, indices


@translates(ex.argmax, ex.argmin)
def _arg_extreme(e):
    x, dim, keepdim = e.args
    op_type = "ArgMax" if e.op.op is ex.argmax else "ArgMin"
    if x.ndim == 0:
        return e.add("Identity", [e.const(np.zeros((), np.int64), "zero")])
    if dim is None:
        index = e.add(op_type, [e.add("Reshape", [e.input(0), e.ints([-1])])], axis=0, keepdims=0)
        return e.add("Reshape", [index, e.ints([1] * x.ndim)]) if keepdim else index
    return e.add(op_type, [e.input(0)], axis=dim % x.ndim, keepdims=int(keepdim))


@translates(Softmax, LogSoftmax)
def _softmax(e):
    x, dim = e.args
    op_type = "Softmax" if e.op.op is Softmax else "LogSoftmax"
    if x.ndim == 0:
        unsqueezed = e.add("Unsqueeze", [e.input(0), e.ints([0])])
        return e.add("Squeeze", [e.add(op_type, [unsqueezed], axis=0), e.ints([0])])
    return e.add(op_type, [e.input(0)], axis=dim)


# --- comparisons and logical ops ----------------------------------------------------------------------
_COMPARE = {cm.eq: "Equal", cm.lt: "Less", cm.le: "LessOrEqual", cm.gt: "Greater", cm.ge: "GreaterOrEqual"}


@translates(*_COMPARE, cm.ne)
def _compare(e):
    a, b = e.args
    dtype = result_type(a, b)
    operands = [e.name(a, dtype), e.name(b, dtype)]
    if e.op.op is cm.ne:
        return e.add("Not", [e.add("Equal", operands)])
    return e.add(_COMPARE[e.op.op], operands)


_LOGICAL = {cm.logical_and: "And", cm.logical_or: "Or", cm.logical_xor: "Xor"}
_BITWISE = {cm.bitwise_and: ("And", "BitwiseAnd"), cm.bitwise_or: ("Or", "BitwiseOr"),
            cm.bitwise_xor: ("Xor", "BitwiseXor")}


@translates(*_LOGICAL)
def _logical(e):
    return e.add(_LOGICAL[e.op.op], [e.name(v, np.bool_) for v in e.args])


@translates(cm.logical_not)
def _logical_not(e):
    return e.add("Not", [e.input(0, np.bool_)])


@translates(*_BITWISE)
def _bitwise(e):
    dtype = e.out_dtype()
    logical, bitwise = _BITWISE[e.op.op]
    return e.add(logical if dtype == np.bool_ else bitwise, [e.name(v, dtype) for v in e.args])


@translates(cm.bitwise_not)
def _bitwise_not(e):
    return e.add("Not" if e.out_dtype() == np.bool_ else "BitwiseNot", [e.input(0)])
