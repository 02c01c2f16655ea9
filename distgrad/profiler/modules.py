"""Forward and backward of every module on the timeline, through global module hooks.

**Forward** is the time between the global forward pre-hook and forward hook of a module call.

**Backward** is timed the way PyTorch's full backward hooks see it: the outputs of the call pass
through an identity op (``_Mark``) whose backward notes the *begin* (the gradient of the outputs
has arrived), and the inputs that require a gradient through another whose backward notes an
*end* (the gradient of the inputs is complete). A module whose inputs need no gradient (the first
layer) ends with the last gradient accumulated into its parameters (a hook on each parameter's
``AccumulateGrad`` node). The identity ops return their input's array and share its version
counter, so values, gradients, in-place ops and their checks are unchanged. The spans of one backward pass are
written when it ends (an engine callback), from the earliest begin to the latest end of each call.
"""
from __future__ import annotations

import threading
import weakref

from distgrad.autograd.engine import queue_callback
from distgrad.autograd.function import Function
from distgrad.autograd.grad_mode import is_grad_enabled
from distgrad.autograd.node import grad_accumulator
from distgrad.nn import module as nn_module
from distgrad.profiler import recorder
from distgrad.tensor import Tensor

__all__ = ["ModuleTimer"]

_PENDING_PER_PARAMETER = 64  # calls awaiting backward per parameter: forwards never backpropagated drop out


class _Mark(Function):
    """The identity, with ``mark()`` called when its gradient passes. Not a view: in-place ops on a
    module's output (``ReLU(inplace=True)``) work as without the timeline (``_marked`` shares the
    version counter, so that a change through it still fails the checks of tensors saved for backward)."""

    arithmetic_backward = True

    @staticmethod
    def forward(ctx, x, mark):
        ctx.mark = mark
        return x.array

    @staticmethod
    def backward(ctx, grad):
        ctx.mark()
        return grad, None


class _Call:
    """One call of a module: its name and, once its backward has run, when it began and ended."""

    __slots__ = ("name", "args", "begin", "end")

    def __init__(self, name: str, module):
        self.name = name
        self.args = {"module": type(module).__name__, "leaf": not module._modules}
        self.begin = self.end = None

    def began(self) -> None:
        active = recorder.ACTIVE
        if active is None:
            return
        self.begin = active.now_us()
        if _TIMER is not None:
            _TIMER.backward_began(self)

    def ended(self) -> None:
        active = recorder.ACTIVE
        if active is not None and self.begin is not None:
            now = active.now_us()
            self.end = now if self.end is None else max(self.end, now)


def _marked(value, mark):
    """``value`` with every Tensor in it that requires a gradient passed through ``_Mark``."""
    if isinstance(value, Tensor):
        if not value.requires_grad:
            return value
        marked = _Mark.apply(value, mark)
        marked._version = value._version  # one array, one version counter
        return marked
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return tuple(_marked(v, mark) for v in value)
    if isinstance(value, list):
        return [_marked(v, mark) for v in value]
    return value


def _needs_grad(value) -> bool:
    if isinstance(value, Tensor):
        return value.requires_grad
    if isinstance(value, (tuple, list)):
        return any(_needs_grad(v) for v in value)
    return False


class ModuleTimer:
    """Installs the global hooks; ``remove()`` takes them (and the parameters' hooks) away."""

    def __init__(self):
        self._local = threading.local()  # the stack of open forward calls of this thread
        self._names = weakref.WeakKeyDictionary()  # module -> its qualified name in the outermost model
        self._pending: dict[int, list] = {}  # id(parameter) -> calls whose backward may accumulate into it
        self._hooked: dict[int, object] = {}  # id(parameter) -> the handle of its accumulation hook
        self._began: list = []  # calls whose backward began in the pass now running
        self._flush_queued = False
        self._handles = [nn_module.register_module_forward_pre_hook(self._before_forward),
                         nn_module.register_module_forward_hook(self._after_forward)]

    def remove(self) -> None:
        for handle in self._handles + list(self._hooked.values()):
            handle.remove()
        self._handles, self._hooked, self._pending = [], {}, {}

    # --- forward -----------------------------------------------------------------------------------
    def _name(self, module) -> str:
        name = self._names.get(module)
        if name is None:  # the outermost call names its whole tree once
            root = type(module).__name__
            for qualified, sub in module.named_modules():
                self._names.setdefault(sub, f"{qualified}: {type(sub).__name__}" if qualified else root)
            name = self._names[module]
        return name

    def _before_forward(self, module, args):
        active = recorder.ACTIVE
        if active is None:
            return None
        stack = self._local.__dict__.setdefault("stack", [])
        call = _Call(self._name(module), module)
        stack.append((module, call, active.now_us()))
        if is_grad_enabled() and _needs_grad(args):
            return _marked(args, call.ended)
        return None

    def _after_forward(self, module, args, output):
        active = recorder.ACTIVE
        stack = self._local.__dict__.get("stack")
        if active is None or not stack:
            return None
        while stack and stack[-1][0] is not module:  # a call below raised: its entry never closed
            stack.pop()
        if not stack:
            return None
        _, call, start = stack.pop()
        active.complete(call.name, "forward", start, active.now_us(), args=call.args)
        if not (is_grad_enabled() and _needs_grad(output)):
            return None
        for p in module.parameters():
            if p.requires_grad:
                self._await_accumulation(p, call)
        return _marked(output, call.began)

    def _await_accumulation(self, p, call: _Call) -> None:
        key = id(p)
        calls = self._pending.setdefault(key, [])
        calls.append(call)
        del calls[:-_PENDING_PER_PARAMETER]
        if key not in self._hooked:
            self._hooked[key] = grad_accumulator(p).register_prehook(self._accumulation_hook(key))

    def _accumulation_hook(self, key: int):
        def accumulating(grads):
            for call in self._pending.get(key, ()):
                call.ended()
        return accumulating

    # --- backward ------------------------------------------------------------------------------------
    def backward_began(self, call: _Call) -> None:
        self._began.append(call)
        if not self._flush_queued:
            self._flush_queued = True
            queue_callback(self._flush)

    def _flush(self) -> None:
        """End of a backward pass: its spans, and the calls it finished leave the pending lists."""
        self._flush_queued = False
        active = recorder.ACTIVE
        finished, self._began = self._began, []
        if active is not None:
            for call in finished:
                if call.end is not None:
                    active.complete(call.name, "backward", call.begin, call.end, args=call.args)
        done = {id(call) for call in finished}
        for calls in self._pending.values():
            calls[:] = [c for c in calls if id(c) not in done]


_TIMER: ModuleTimer | None = None


def install() -> ModuleTimer:
    global _TIMER
    if _TIMER is None:
        _TIMER = ModuleTimer()
    return _TIMER


def uninstall() -> None:
    global _TIMER
    if _TIMER is not None:
        _TIMER.remove()
        _TIMER = None
