"""The ops' autocast hook: ``@autocast_op`` on an op's public function applies PyTorch's autocast policy.

With autocast off, the wrapper reads one attribute (``state.active``) and calls the op. With autocast
on for the device type of the op's tensors, it looks the op up in ``distgrad/amp/policy.py``, casts
the floating tensor arguments (float64 never) through recorded ``ToCopy`` nodes, so that backward
returns each gradient in its input's dtype (a float32 parameter gets a float32 ``.grad``), and runs
the op with autocast off for that device type: the ops it is built from run in the dtypes it chose,
as a PyTorch kernel runs below its autocast layer. An op the policy does not list runs as given.

Which functions carry the decorator: every op named in the policy (for any device type), and ops
that PyTorch computes as one kernel but distgrad builds from listed ones (``mv`` from ``matmul``, the
LSTM and GRU cells from ``linear``). An op that PyTorch, too, composes of listed ops stays undecorated,
so that its pieces follow the policy (``rnn_tanh_cell``, ``outer``, ``multi_head_attention_forward``).
Ops with an explicit ``dtype=`` keyword are left alone, as PyTorch's are.
"""
from __future__ import annotations

import functools

from distgrad.amp.autocast_mode import state
from distgrad.amp.policy import BANNED, FP32, FP32_APPEND_DTYPE, FP32_SET_OPT_DTYPE, LOWER, PROMOTE, category
from distgrad.autograd.grad_mode import state as _grad_state
from distgrad.backend import is_device_array
from distgrad.dtypes import bfloat16, float16, float32
from distgrad.ops.conversion import ToCopy
from distgrad.promotion import promote_types
from distgrad.tensor import Tensor

_ELIGIBLE = frozenset({float16, bfloat16, float32})  # float64 and non-floating tensors are never cast

BANNED_MESSAGE = (
    "distgrad.nn.functional.binary_cross_entropy and distgrad.nn.BCELoss are unsafe to autocast.\n"
    "Many models use a sigmoid layer right before the binary cross entropy layer.\n"
    "In this case, combine the two layers using distgrad.nn.functional.binary_cross_entropy_with_logits\n"
    "or distgrad.nn.BCEWithLogitsLoss.  binary_cross_entropy_with_logits and BCEWithLogits are\n"
    "safe to autocast."
)


def autocast_op(name: str | None = None):
    """Decorates an op's public function: ``name`` (default: the function's) is its name in the policy."""
    def decorate(fn):
        op = name or fn.__name__

        @functools.wraps(fn)
        def op_under_autocast(*args, **kwargs):
            if state.active:
                return _run(op, fn, args, kwargs)
            return fn(*args, **kwargs)
        op_under_autocast.autocast_name = op
        return op_under_autocast
    return decorate


def _run(op: str, fn, args: tuple, kwargs: dict):
    device = _device_type(args, kwargs)
    if device is None or not state.enabled[device]:
        return fn(*args, **kwargs)
    policy = category(device, op)
    if policy is not None and kwargs.get("dtype") is None:
        args, kwargs = _cast_arguments(policy, device, args, kwargs)
    state.set_enabled(device, False)
    try:
        return fn(*args, **kwargs)
    finally:
        state.set_enabled(device, True)


def _tensors(args: tuple, kwargs: dict):
    """The Tensor arguments, including those inside a list or tuple argument (``cat``'s)."""
    for a in (*args, *kwargs.values()):
        if isinstance(a, Tensor):
            yield a
        elif isinstance(a, (list, tuple)):
            yield from (t for t in a if isinstance(t, Tensor))


def _device_type(args: tuple, kwargs: dict) -> str | None:
    for t in _tensors(args, kwargs):
        return "cuda" if is_device_array(t.array) else "cpu"
    return None


def _eligible(t, device: str) -> bool:
    return (isinstance(t, Tensor) and t.array.dtype in _ELIGIBLE
            and ("cuda" if is_device_array(t.array) else "cpu") == device)


def _cast_arguments(policy: str, device: str, args: tuple, kwargs: dict) -> tuple:
    if policy == LOWER:
        return _cast_all(args, kwargs, state.dtype[device], device)
    if policy == FP32:
        return _cast_all(args, kwargs, float32, device)
    if policy in (FP32_SET_OPT_DTYPE, FP32_APPEND_DTYPE):  # the first input decides, and alone is cast
        if args and _eligible(args[0], device):
            args = (_cast(args[0], float32, device),) + args[1:]
        return args, kwargs
    if policy == PROMOTE:
        dtype = state.dtype[device]
        for t in _tensors(args, kwargs):
            if _eligible(t, device):
                dtype = promote_types(dtype, t.array.dtype)
        return _cast_all(args, kwargs, dtype, device)
    if policy == BANNED:
        raise RuntimeError(BANNED_MESSAGE)
    raise AssertionError(f"unknown autocast policy {policy!r}")


def _cast_all(args: tuple, kwargs: dict, dtype, device: str) -> tuple:
    def one(a):
        if isinstance(a, Tensor):
            return _cast(a, dtype, device)
        if isinstance(a, (list, tuple)) and any(isinstance(t, Tensor) for t in a):
            return type(a)(_cast(t, dtype, device) if isinstance(t, Tensor) else t for t in a)
        return a
    return tuple(one(a) for a in args), {k: one(v) for k, v in kwargs.items()}


def _cast(t: Tensor, dtype, device: str) -> Tensor:
    """``t`` in ``dtype`` when it is eligible (a float16/bfloat16/float32 tensor on ``device``), through the
    cache for parameters (float32 leaves that require grad) cast to the autocast dtype."""
    if t.array.dtype == dtype or not _eligible(t, device):
        return t
    if (dtype == state.dtype[device] and t.array.dtype == float32 and t.requires_grad and t.grad_fn is None
            and state.cache_enabled and _grad_state.enabled):
        hit = state.cache.get(id(t))
        if hit is not None and hit[0] is t and hit[1] == t._version[0]:
            return hit[2]
        copy = ToCopy.apply(t, dtype, t.device)
        state.cache[id(t)] = (t, t._version[0], copy)
        return copy
    return ToCopy.apply(t, dtype, t.device)
