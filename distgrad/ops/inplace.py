"""In-place ops: ``add_ sub_ mul_ div_ pow_ clamp_ zero_ fill_ copy_ exp_ ...`` and ``+= -= *= /=`` (the random
fills ``uniform_ normal_ ...`` live in ``sampling.py``).

Each writes into ``self.array`` (the array object stays the same, so views and DDP bucket views see
the write), bumps the version counter shared with views, and returns ``self``.

Two paths. With grad mode off, or when no operand requires grad, it is one array update with
``out=self.array``: the optimizer's path, with no Tensor temporaries. Otherwise the op is recorded:
the out-of-place op runs on an alias of ``self`` holding a copy of its data (so tensors saved for
backward stay valid), the result is written into ``self.array``, and ``self`` takes the result's
history (``grad_fn``). Tensors saved earlier whose data changed make backward raise the engine's
"modified by an inplace operation" error, through the version counter.

The result dtype is PyTorch's (``promotion.result_type`` of ``self`` and the operands); it may be
narrower than it but of no higher category (``int_tensor.add_(1.5)`` raises "result type Float can't
be cast to the desired output type Long"), checked before anything is written.

Not supported (raises): an in-place op on a leaf that requires grad while grad mode is on (as in
PyTorch), and a recorded in-place op on a *view* of a tensor in the graph, because distgrad cannot
rewrite the history of the view's base; write ``base = base.op(...)`` or clone the view first.
"""
from __future__ import annotations

import numpy as np

from distgrad import backend
from distgrad.autograd.function import Function
from distgrad.autograd.grad_mode import state as _grad_state
from distgrad.autograd.node import AccumulateGrad, increment_version
from distgrad.dtypes import LOW_PRECISION, bool_, get_default_dtype
from distgrad.ops.arithmetic import add, refuse_bool_subtraction, sub
from distgrad.ops.broadcast import sum_to
from distgrad.ops.conversion import to
from distgrad.ops.rounding import floor_divide, fmod, remainder
from distgrad.promotion import cast, check_in_place, result_type
from distgrad.tensor import Tensor, bind_methods

__all__ = []  # in-place ops are Tensor methods only, as in PyTorch

LEAF_MESSAGE = "a leaf Variable that requires grad is being used in an in-place operation."


# --- the two paths -----------------------------------------------------------------------------
def needs_recording(self: Tensor, *others) -> bool:
    """True when an in-place op on ``self`` with ``others`` must be recorded for autograd."""
    if not _grad_state.enabled:
        return False
    if self.requires_grad:
        return True
    for o in others:
        if isinstance(o, Tensor) and o.requires_grad:
            return True
    return False


def record_inplace(self: Tensor, op: str, compute) -> Tensor:
    """Runs ``compute(alias)`` (the out-of-place op) and makes ``self`` its result, data and history."""
    node = self.grad_fn
    if self.requires_grad and node is None:
        raise RuntimeError(LEAF_MESSAGE)
    if node is not None and getattr(node, "is_view", False):
        base_node = node.next_functions[0][0] if node.next_functions[0] else None
        if type(base_node) is AccumulateGrad:
            raise RuntimeError("a view of a leaf Variable that requires grad is being used in an in-place operation.")
        raise RuntimeError(f"{op}: in-place operation on a view (shape {list(self.shape)}, made by {node.name}) of a "
                           "tensor that is part of the autograd graph is not supported by distgrad, since the "
                           "history of the view's base cannot be rewritten; use the out-of-place op instead")
    check_writable(self, op)
    alias = Tensor(self.array.copy())
    alias.requires_grad, alias.grad_fn, alias.output_nr = self.requires_grad, node, self.output_nr
    out = compute(alias)
    try:
        self._xp.copyto(self.array, out.array, casting="unsafe")  # the dtypes were checked up front
    except (TypeError, ValueError) as exc:
        raise_update_error(self, op, exc, out)
    increment_version(self)
    self.grad_fn, self.output_nr, self.requires_grad = out.grad_fn, out.output_nr, out.requires_grad
    return self


def check_writable(t: Tensor, op: str) -> None:
    """Raises when elements of ``t`` share memory (a broadcast view), which a write would corrupt."""
    strides = t.array.strides
    if 0 in strides and any(s == 0 and n > 1 for s, n in zip(strides, t.array.shape)):
        raise RuntimeError(f"{op}: unsupported operation: more than one element of the written-to tensor "
                           f"(shape {list(t.shape)}, a broadcast view) refers to a single memory location. "
                           "Please clone() the tensor before performing the operation.")


def raise_update_error(self: Tensor, op: str, exc: Exception, *operands):
    """Turns a NumPy/CuPy error from an in-place array update of ``self`` into a PyTorch-style one."""
    operands = [o for o in operands if o is not None]
    for o in operands:
        if isinstance(o, Tensor) and o.device != self.device:
            raise RuntimeError(f"Expected all tensors to be on the same device, but found at least two devices, "
                               f"{self.device} and {o.device}! (when checking arguments for {op})") from exc
    shapes = [tuple(getattr(o, "shape", ())) for o in operands]
    try:
        broadcast = np.broadcast_shapes(self.shape, *shapes)
    except ValueError:
        raise RuntimeError(f"{op}: the shapes {', '.join(str(list(s)) for s in [self.shape] + shapes)} do not "
                           "broadcast together") from exc
    if broadcast != self.shape:
        raise RuntimeError(f"{op}: output with shape {list(self.shape)} doesn't match the broadcast shape "
                           f"{list(broadcast)}") from exc
    if "read-only" in str(exc):
        raise RuntimeError(f"{op}: the tensor of shape {list(self.shape)} is read-only (its memory was "
                           "shared read-only, e.g. by a broadcast); clone() it before writing") from exc
    raise exc


def _scaled(arr, value):
    return arr if value == 1 else arr * value


def _promoted(op: str, self: Tensor, *others) -> list:
    """``others`` as arrays (or numbers) in the result dtype, which must fit ``self``'s dtype."""
    dtype = result_type(self, *others)
    check_in_place(op, dtype, self.dtype)
    return [cast(o, dtype) for o in others]


def update_in_place(self: Tensor, op: str, update, *operands) -> Tensor:
    """The plain path: runs ``update(xp, self.array)``, which writes with ``out=``, and bumps the version."""
    check_writable(self, op)
    try:
        update(self._xp, self.array)
    except (TypeError, ValueError) as exc:
        raise_update_error(self, op, exc, *operands)
    increment_version(self)
    return self


# --- arithmetic ----------------------------------------------------------------------------------
def add_(self: Tensor, other, *, alpha=1) -> Tensor:
    """``self += alpha * other``."""
    (value,) = _promoted("add_", self, other)
    if needs_recording(self, other):
        return record_inplace(self, "add_", lambda alias: add(alias, other, alpha=alpha))
    return update_in_place(self, "add_", lambda xp, a: xp.add(a, _scaled(value, alpha), out=a, casting="unsafe"),
                           other)


def sub_(self: Tensor, other, *, alpha=1) -> Tensor:
    """``self -= alpha * other``."""
    refuse_bool_subtraction(self, other)
    (value,) = _promoted("sub_", self, other)
    if needs_recording(self, other):
        return record_inplace(self, "sub_", lambda alias: sub(alias, other, alpha=alpha))
    return update_in_place(
        self, "sub_", lambda xp, a: xp.subtract(a, _scaled(value, alpha), out=a, casting="unsafe"), other)


def _binary_inplace(op: str, ufunc: str, out_of_place):
    def method(self: Tensor, other) -> Tensor:
        (value,) = _promoted(op, self, other)
        if op == "div_":  # true division: integers are refused above, as their quotient is a float
            check_in_place(op, get_default_dtype(), self.dtype)
        if needs_recording(self, other):
            return record_inplace(self, op, lambda alias: out_of_place(alias, other))
        return update_in_place(self, op, lambda xp, a: getattr(xp, ufunc)(a, value, out=a, casting="unsafe"), other)
    method.__name__ = op
    method.__doc__ = f"In-place ``{ufunc}``: writes into ``self`` and returns it."
    return method


def _mul(a, b):
    return a * b


def _div(a, b):
    return a / b


mul_ = _binary_inplace("mul_", "multiply", _mul)
div_ = _binary_inplace("div_", "true_divide", _div)
pow_ = _binary_inplace("pow_", "power", lambda a, b: a ** b)


def _rounding_inplace(op: str, out_of_place):
    """An in-place rounding division: computed by the out-of-place op (its checks: integer division by zero,
    bool operands) and written into ``self``."""
    def method(self: Tensor, other) -> Tensor:
        _promoted(op, self, other)
        if needs_recording(self, other):
            return record_inplace(self, op, lambda alias: out_of_place(alias, other))
        return update_in_place(
            self, op, lambda xp, a: xp.copyto(a, out_of_place(Tensor(a), other).array, casting="unsafe"), other)
    method.__name__ = op
    method.__doc__ = f"In-place ``{out_of_place.__name__}``: writes into ``self`` and returns it."
    return method


floor_divide_ = _rounding_inplace("floor_divide_", floor_divide)
remainder_ = _rounding_inplace("remainder_", remainder)
fmod_ = _rounding_inplace("fmod_", fmod)


def _addc_inplace(op: str, combine):
    def method(self: Tensor, tensor1, tensor2, *, value=1) -> Tensor:
        first, second = _promoted(op, self, tensor1, tensor2)
        if needs_recording(self, tensor1, tensor2):
            return record_inplace(self, op, lambda alias: alias + value * combine(tensor1, tensor2))
        return update_in_place(
            self, op, lambda xp, a: xp.add(a, _scaled(combine(first, second), value), out=a, casting="unsafe"),
            tensor1, tensor2)
    method.__name__ = op
    method.__doc__ = f"``self += value * tensor1 {'*' if combine is _mul else '/'} tensor2`` in place."
    return method


addcmul_ = _addc_inplace("addcmul_", _mul)
addcdiv_ = _addc_inplace("addcdiv_", _div)


def lerp_(self: Tensor, end, weight) -> Tensor:
    """``self += weight * (end - self)``; ``end`` (and a tensor ``weight``) have ``self``'s dtype, as in PyTorch."""
    for name, other in (("end", end), ("weight", weight)):
        if isinstance(other, Tensor) and other.dtype != self.dtype:
            raise RuntimeError(f"lerp_: expected dtype {self.dtype.name} for `{name}` but got dtype {other.dtype.name}")
    if needs_recording(self, end, weight):
        return record_inplace(self, "lerp_", lambda alias: alias + weight * (end - alias))
    end_array, weight_value = (cast(x, self.dtype) for x in (end, weight))
    return update_in_place(self, "lerp_", lambda xp, a: xp.add(a, (end_array - a) * weight_value, out=a),
                           end, weight)


# --- elementwise functions -----------------------------------------------------------------------
def _sigmoid_in_place(xp, a):
    """sigmoid(x) = (1 + tanh(x / 2)) / 2, which cannot overflow."""
    xp.multiply(a, 0.5, out=a)
    xp.tanh(a, out=a)
    xp.add(a, 1, out=a)
    xp.multiply(a, 0.5, out=a)


_UNARY = {  # in-place op: (array update, out-of-place Tensor method used when recording)
    "exp_": (lambda xp, a: xp.exp(a, out=a), "exp"),
    "log_": (lambda xp, a: xp.log(a, out=a), "log"),
    "sqrt_": (lambda xp, a: xp.sqrt(a, out=a), "sqrt"),
    "tanh_": (lambda xp, a: xp.tanh(a, out=a), "tanh"),
    "abs_": (lambda xp, a: xp.abs(a, out=a), "abs"),
    "neg_": (lambda xp, a: xp.negative(a, out=a), "neg"),
    "reciprocal_": (lambda xp, a: xp.true_divide(1, a, out=a), "reciprocal"),
    "sigmoid_": (_sigmoid_in_place, "sigmoid"),
    "relu_": (lambda xp, a: xp.maximum(a, 0, out=a), "relu"),
}


_KEEPS_DTYPE = ("abs_", "neg_", "relu_")  # the others give floats, which integer tensors cannot hold


def _unary_inplace(op: str, update, method_name: str):
    def method(self: Tensor) -> Tensor:
        if op not in _KEEPS_DTYPE:
            check_in_place(op, get_default_dtype(), self.dtype)
        elif op == "neg_" and self.dtype == bool_:
            raise RuntimeError("Negation, the `-` operator, on a bool tensor is not supported. If you are trying to "
                               "invert a mask, use the `~` or `logical_not()` operator instead.")
        if needs_recording(self):
            return record_inplace(self, op, lambda alias: getattr(alias, method_name)())
        if self.dtype in LOW_PRECISION:  # computed in float32 and rounded once, as the out-of-place op
            update_low = lambda xp, a: xp.copyto(a, getattr(Tensor(a), method_name)().array)  # noqa: E731
            return update_in_place(self, op, update_low)
        return update_in_place(self, op, update)
    method.__name__ = op
    method.__doc__ = f"In-place ``{method_name}``: writes into ``self`` and returns it."
    return method


def clamp_(self: Tensor, min=None, max=None) -> Tensor:
    """Clips ``self`` into ``[min, max]`` in place (either bound may be None)."""
    if min is None and max is None:
        raise RuntimeError("clamp_: At least one of 'min' or 'max' must not be None")
    _promoted("clamp_", self, min, max)
    if needs_recording(self, min, max):
        return record_inplace(self, "clamp_", lambda alias: alias.clamp(min, max))
    return update_in_place(
        self, "clamp_", lambda xp, a: xp.copyto(a, Tensor(a).clamp(min, max).array, casting="unsafe"), min, max)


# --- overwriting -----------------------------------------------------------------------------------
class Overwrite(Function):
    """``src`` broadcast to ``x``'s shape: ``x``'s old values get a zero gradient, ``src`` the sum."""

    @staticmethod
    def forward(ctx, x, src):
        ctx.src_shape = src.shape
        out = x._xp.empty_like(x.array)
        out[...] = src.array
        return out

    @staticmethod
    def backward(ctx, grad):
        gx = Tensor(grad._xp.zeros_like(grad.array)) if ctx.needs_input_grad[0] else None
        gsrc = sum_to(grad, ctx.src_shape) if ctx.needs_input_grad[1] else None
        return gx, gsrc


def overwrite(self: Tensor, op: str, values, src: Tensor | None = None) -> Tensor:
    """Writes ``values()`` (an array or a scalar, broadcast) into ``self``; ``src`` is the Tensor it came from."""
    if needs_recording(self, src):
        if src is None:
            src = Tensor(self._xp.asarray(values(), dtype=self.dtype))
        moved = to(src, device=self.device, dtype=self.dtype)
        return record_inplace(self, op, lambda alias: Overwrite.apply(alias, moved))
    return update_in_place(self, op, lambda xp, a: xp.copyto(a, values(), casting="unsafe"), src)


def zero_(self: Tensor) -> Tensor:
    """Fills ``self`` with zeros."""
    return overwrite(self, "zero_", lambda: 0)


def fill_(self: Tensor, value) -> Tensor:
    """Fills ``self`` with ``value`` (a number or a 0-d Tensor)."""
    if isinstance(value, Tensor):
        if value.ndim != 0:
            raise RuntimeError(f"fill_ only supports 0-dimension value tensor but got tensor with {value.ndim} "
                               "dimensions.")
        return overwrite(self, "fill_", lambda: backend.to_device(value.array, self.device), value)
    return overwrite(self, "fill_", lambda: value)


def copy_(self: Tensor, src, non_blocking: bool = False) -> Tensor:
    """Copies ``src`` (broadcast, converted to ``self``'s dtype and device) into ``self``; ``non_blocking`` is
    accepted for compatibility."""
    if not isinstance(src, Tensor):
        raise TypeError(f"copy_(): argument 'src' must be Tensor, not {type(src).__name__}")
    try:
        fits = np.broadcast_shapes(src.shape, self.shape) == self.shape
    except ValueError:
        fits = False
    if not fits:
        raise RuntimeError(f"copy_: the source of shape {list(src.shape)} cannot be broadcast to the destination "
                           f"of shape {list(self.shape)}")
    return overwrite(self, "copy_", lambda: backend.to_device(src.array, self.device), src)


bind_methods(
    add_=add_, sub_=sub_, mul_=mul_, div_=div_, pow_=pow_, subtract_=sub_, multiply_=mul_, divide_=div_,
    true_divide_=div_, addcmul_=addcmul_, addcdiv_=addcdiv_, lerp_=lerp_, clamp_=clamp_, clip_=clamp_,
    zero_=zero_, fill_=fill_, copy_=copy_,
    floor_divide_=floor_divide_, remainder_=remainder_, fmod_=fmod_,
    __iadd__=add_, __isub__=sub_, __imul__=mul_, __itruediv__=div_, __ipow__=pow_, __ifloordiv__=floor_divide_,
    __imod__=remainder_,
    **{op: _unary_inplace(op, update, name) for op, (update, name) in _UNARY.items()},
)
