"""Losses that are one Function in distgrad: ``cross_entropy`` and ``nll_loss`` with class-index targets (ONNX
has an op for each), and the binary cross entropies (written out); the other losses are built from
elementwise ops and reductions, which translate one by one."""
from __future__ import annotations

import numpy as np

from distgrad.ops.loss import CrossEntropy, NLLLoss
from distgrad.ops.pointwise_loss import BinaryCrossEntropy, BinaryCrossEntropyWithLogits
from distgrad.onnx.registry import translates


@translates(CrossEntropy, NLLLoss)
def _class_index_loss(e):
    input, target, weight, ignore_index, reduction = e.args[:5]
    if input.ndim < 2:
        e.unsupported("an input without a batch dim (C,)")
    if target.dtype.kind not in "iu":
        e.unsupported("class-probability targets")
    if e.op.op is CrossEntropy and e.args[5]:
        e.unsupported("label_smoothing")
    inputs = [e.input(0), e.input(1, np.int64)] + ([e.input(2, input.dtype)] if weight is not None else [])
    op_type = "SoftmaxCrossEntropyLoss" if e.op.op is CrossEntropy else "NegativeLogLikelihoodLoss"
    return e.add(op_type, inputs, reduction=reduction, ignore_index=int(ignore_index))


def _reduced(e, loss: str, reduction: str) -> str:
    if reduction == "none":
        return loss
    return e.add("ReduceSum" if reduction == "sum" else "ReduceMean", [loss], keepdims=0)


@translates(BinaryCrossEntropyWithLogits)
def _bce_with_logits(e):
    _, target, weight, pos_weight, reduction = e.args
    dtype = e.out_dtype()
    x, y = e.input(0, dtype), e.input(1, dtype)
    one = e.scalar(1, dtype)
    # softplus(-x) = max(-x, 0) + log(1 + exp(-|x|)): no overflow
    softplus = e.add("Add", [e.add("Relu", [e.add("Neg", [x])]),
                             e.add("Log", [e.add("Add", [one, e.add("Exp", [e.add("Neg", [e.add("Abs", [x])])])])])])
    if pos_weight is not None:
        log_weight = e.add("Add", [one, e.add("Mul", [e.add("Sub", [e.input(3, dtype), one]), y])])
        softplus = e.add("Mul", [log_weight, softplus])
    loss = e.add("Add", [e.add("Mul", [e.add("Sub", [one, y]), x]), softplus])
    if weight is not None:
        loss = e.add("Mul", [loss, e.input(2, dtype)])
    return _reduced(e, loss, reduction)


@translates(BinaryCrossEntropy)
def _bce(e):
    _, target, weight, reduction = e.args
    dtype = e.out_dtype()
    x, y = e.input(0, dtype), e.input(1, dtype)
    one, floor = e.scalar(1, dtype), e.scalar(-100, dtype)
    log_x = e.add("Max", [e.add("Log", [x]), floor])
    log_rest = e.add("Max", [e.add("Log", [e.add("Sub", [one, x])]), floor])
    loss = e.add("Neg", [e.add("Add", [e.add("Mul", [y, log_x]), e.add("Mul", [e.add("Sub", [one, y]), log_rest])])])
    if weight is not None:
        loss = e.add("Mul", [loss, e.input(2, dtype)])
    return _reduced(e, loss, reduction)
