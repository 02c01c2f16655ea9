"""``Module``: the base of every layer and model, with PyTorch's API.

A Module keeps its Parameters, buffers and sub-Modules in three ordered dicts, filled by plain
attribute assignment (``self.fc = Linear(...)``). Everything else (``parameters()``, ``state_dict()``,
``to()``, ``train()``) walks those dicts.
"""
from __future__ import annotations

import itertools
from collections import OrderedDict, namedtuple
from collections.abc import Mapping

from distgrad import backend, dtypes
from distgrad.autograd.hooks import add_hook
from distgrad.autograd.node import increment_version
from distgrad.nn.parameter import Parameter
from distgrad.ops.conversion import parse_to
from distgrad.tensor import Tensor


# Hooks of every module (PyTorch's register_module_forward_pre_hook / _forward_hook): the timeline's.
_global_forward_pre_hooks: OrderedDict = OrderedDict()
_global_forward_hooks: OrderedDict = OrderedDict()


def register_module_forward_pre_hook(hook):
    """``hook(module, args)`` runs before every module's forward (a global hook, as in PyTorch); it may
    return new args. Returns a handle whose ``remove()`` takes it away."""
    return add_hook(_global_forward_pre_hooks, hook)


def register_module_forward_hook(hook):
    """``hook(module, args, output)`` runs after every module's forward; it may return a new output."""
    return add_hook(_global_forward_hooks, hook)


class _IncompatibleKeys(namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])):
    """What ``load_state_dict`` returns: the keys it could not match."""

    def __repr__(self):
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return super().__repr__()

    __str__ = __repr__


def _addindent(text: str, spaces: int) -> str:
    """Indents every line of ``text`` but the first (how nested reprs are laid out)."""
    first, *rest = text.split("\n")
    if not rest:
        return text
    return first + "\n" + "\n".join(" " * spaces + line for line in rest)


def _check_new_member(module, kind: str, name, members: str) -> None:
    """PyTorch's checks before ``name`` joins ``module.<members>`` (its dict of parameters, buffers or
    modules): ``Module.__init__`` has run, the name is a non-empty string without a dot, and no other
    attribute has it."""
    if members not in module.__dict__:
        raise AttributeError(f"cannot assign {kind} before Module.__init__() call")
    if not isinstance(name, str):
        raise TypeError(f"{kind} name should be a string. Got {type(name).__name__}")
    if "." in name:
        raise KeyError(f"{kind} name can't contain \".\", got: {name}")
    if name == "":
        raise KeyError(f"{kind} name can't be empty string \"\"")
    if hasattr(module, name) and name not in module.__dict__[members]:
        raise KeyError(f"attribute '{name}' already exists")


class Module:
    """Base class of all layers: subclass it, assign layers and Parameters in ``__init__``, define ``forward``."""

    training: bool

    def __init__(self):
        # Written through object.__setattr__ because our __setattr__ looks these dicts up.
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent_buffers_set", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_pre_hooks", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f'Module [{type(self).__name__}] is missing the required "forward" function')

    def __call__(self, *args, **kwargs):
        pre_hooks, hooks = self._forward_pre_hooks, self._forward_hooks
        if _global_forward_pre_hooks or _global_forward_hooks:  # global hooks first, as in PyTorch
            pre_hooks, hooks = {**_global_forward_pre_hooks, **pre_hooks}, {**_global_forward_hooks, **hooks}
        for hook in tuple(pre_hooks.values()):
            result = hook(self, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
        output = self.forward(*args, **kwargs)
        for hook in tuple(hooks.values()):
            result = hook(self, args, output)
            if result is not None:
                output = result
        return output

    # --- registration ----------------------------------------------------------------------------
    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Adds ``param`` (or a ``None`` placeholder) under ``name``."""
        _check_new_member(self, "parameter", name, "_parameters")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot assign '{type(param).__name__}' object to parameter '{name}' "
                            "(distgrad.nn.Parameter or None required)")
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Adds a tensor that is state but not a parameter (e.g. running statistics).

        Persistent buffers are part of ``state_dict()``; all buffers move with ``to()``.
        """
        _check_new_member(self, "buffer", name, "_buffers")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot assign '{type(tensor).__name__}' object to buffer '{name}' "
                            "(distgrad Tensor or None required)")
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers_set.discard(name)
        else:
            self._non_persistent_buffers_set.add(name)

    def add_module(self, name: str, module: "Module | None") -> None:
        """Adds a child module, reachable as the attribute ``name``."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        _check_new_member(self, "module", name, "_modules")
        self._modules[name] = module

    register_module = add_module

    def __setattr__(self, name: str, value) -> None:
        params = self.__dict__.get("_parameters")
        if isinstance(value, Parameter):
            if params is None:
                raise AttributeError("cannot assign parameters before Module.__init__() call")
            self._remove_member(name, keep=self._parameters)
            self.register_parameter(name, value)
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(f"cannot assign '{type(value).__name__}' as parameter '{name}' "
                                "(distgrad.nn.Parameter or None expected)")
            params[name] = None
        elif isinstance(value, Module):
            if "_modules" not in self.__dict__:
                raise AttributeError("cannot assign module before Module.__init__() call")
            self._remove_member(name, keep=self._modules)
            self._modules[name] = value
        elif name in self.__dict__.get("_modules", ()):
            if value is not None:
                raise TypeError(f"cannot assign '{type(value).__name__}' as child module '{name}' "
                                "(distgrad.nn.Module or None expected)")
            self._modules[name] = None
        elif name in self.__dict__.get("_buffers", ()):
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign '{type(value).__name__}' as buffer '{name}' "
                                "(distgrad Tensor or None expected)")
            self._buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def _remove_member(self, name: str, keep: dict) -> None:
        """Forgets ``name`` everywhere but in ``keep`` (where re-assignment keeps its position)."""
        for store in (self.__dict__, self._parameters, self._buffers, self._modules):
            if store is not keep:
                store.pop(name, None)
        self._non_persistent_buffers_set.discard(name)

    def __getattr__(self, name: str):
        # Only called when normal lookup fails; reads __dict__ directly so that a half-built
        # instance (during unpickling or deepcopy) raises AttributeError instead of recursing.
        d = self.__dict__
        for store in ("_parameters", "_buffers", "_modules"):
            if store in d and name in d[store]:
                return d[store][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for store in (self._parameters, self._buffers, self._modules):
            if name in store:
                del store[name]
                self._non_persistent_buffers_set.discard(name)
                return
        object.__delattr__(self, name)

    def __dir__(self):
        keys = list(super().__dir__()) + list(self._parameters) + list(self._buffers) + list(self._modules)
        return sorted(k for k in set(keys) if not k[0].isdigit())

    # --- traversal -------------------------------------------------------------------------------
    def named_modules(self, memo: set | None = None, prefix: str = "", remove_duplicate: bool = True):
        """Yields ``(name, module)`` for this module and every descendant, each module once."""
        if memo is None:
            memo = set()
        if self in memo:
            return
        if remove_duplicate:
            memo.add(self)
        yield prefix, self
        for name, module in self._modules.items():
            if module is not None:
                yield from module.named_modules(memo, prefix + ("." if prefix else "") + name, remove_duplicate)

    def modules(self):
        for _, module in self.named_modules():
            yield module

    def named_children(self):
        """Yields ``(name, module)`` for the direct children, each module once."""
        seen = set()
        for name, module in self._modules.items():
            if module is not None and module not in seen:
                seen.add(module)
                yield name, module

    def children(self):
        for _, module in self.named_children():
            yield module

    def _named_members(self, store: str, prefix: str, recurse: bool, remove_duplicate: bool):
        seen = set()  # ids: Tensor's == is elementwise, so tensors are never compared with it
        modules = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse else [(prefix, self)]
        for module_prefix, module in modules:
            for name, value in getattr(module, store).items():
                if value is None or id(value) in seen:
                    continue
                if remove_duplicate:
                    seen.add(id(value))
                yield module_prefix + ("." if module_prefix else "") + name, value

    def named_parameters(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        """Yields ``(name, parameter)`` with dotted names like ``"0.weight"``; a shared parameter once."""
        yield from self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True):
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        yield from self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True):
        for _, buf in self.named_buffers(recurse=recurse):
            yield buf

    def get_submodule(self, target: str) -> "Module":
        """The descendant at the dotted path ``target`` (``""`` is this module)."""
        module = self
        for item in target.split(".") if target else ():
            if item not in module._modules or module._modules[item] is None:
                raise AttributeError(f"{module._get_name()} has no attribute `{item}`")
            module = module._modules[item]
        return module

    def apply(self, fn) -> "Module":
        """Calls ``fn(module)`` on every child (recursively), then on this module; returns self."""
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    # --- modes and gradients ---------------------------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        """Sets training mode (``Dropout``, ``BatchNorm`` behave differently) here and below."""
        if not isinstance(mode, bool):
            raise ValueError("training mode is expected to be boolean")
        self.training = mode
        for module in self.children():
            module.train(mode)
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        for param in self.parameters():
            param.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Resets every parameter's ``.grad``: to None (default), or zeroed in place."""
        for param in self.parameters():
            if param.grad is None:
                continue
            if set_to_none:
                param.grad = None
            else:
                param.grad.detach_()
                param.grad.array[...] = 0
                increment_version(param.grad)

    # --- hooks -----------------------------------------------------------------------------------
    def register_forward_pre_hook(self, hook):
        """``hook(module, args) -> None | new args`` runs before ``forward``; returns a removable handle."""
        return add_hook(self._forward_pre_hooks, hook)

    def register_forward_hook(self, hook):
        """``hook(module, args, output) -> None | new output`` runs after ``forward``; returns a handle."""
        return add_hook(self._forward_hooks, hook)

    # --- device and dtype ------------------------------------------------------------------------
    def _apply(self, fn) -> "Module":
        """Replaces the array of every parameter, gradient and buffer by ``fn(array)``, in place.

        The Parameter and buffer objects keep their identity, so optimizers holding them stay valid.
        """
        for tensor in itertools.chain(self.parameters(), self.buffers()):
            tensor.array = fn(tensor.array)
            if tensor.grad is not None:
                tensor.grad.array = fn(tensor.grad.array)
        return self

    def to(self, *args, **kwargs) -> "Module":
        """Moves and/or casts in place: ``to(device)``, ``to(dtype)``, ``to(device, dtype)``, ``to(tensor)``.

        A dtype applies to floating point parameters and buffers only (integer buffers keep theirs).
        """
        device, dtype = _parse_to(*args, **kwargs)

        def convert(array):
            if dtype is not None and dtypes.is_floating_point(array.dtype):
                array = array.astype(dtype, copy=False)
            if device is not None:
                array = backend.to_device(array, device)
            return array
        return self._apply(convert)

    def cpu(self) -> "Module":
        return self.to(backend.CPU)

    def cuda(self, device=None) -> "Module":
        """Moves to a GPU: the current one, or ``device`` (an index, ``"cuda:N"`` or a device)."""
        if device is None or isinstance(device, int):
            return self.to(backend.Device("cuda", device))
        return self.to(device)

    def float(self) -> "Module":
        return self.to(dtype=dtypes.float32)

    def double(self) -> "Module":
        return self.to(dtype=dtypes.float64)

    def half(self) -> "Module":
        return self.to(dtype=dtypes.float16)

    # --- state_dict ------------------------------------------------------------------------------
    def state_dict(self, *, destination=None, prefix: str = "", keep_vars: bool = False) -> OrderedDict:
        """Parameters and persistent buffers by dotted name; values are detached tensors sharing data."""
        if destination is None:
            destination = OrderedDict()
        for name, param in self._parameters.items():
            if param is not None:
                destination[prefix + name] = param if keep_vars else param.detach()
        for name, buf in self._buffers.items():
            if buf is not None and name not in self._non_persistent_buffers_set:
                destination[prefix + name] = buf if keep_vars else buf.detach()
        for name, module in self._modules.items():
            if module is not None:
                module.state_dict(destination=destination, prefix=prefix + name + ".", keep_vars=keep_vars)
        return destination

    def load_state_dict(self, state_dict: Mapping, strict: bool = True) -> _IncompatibleKeys:
        """Copies values from ``state_dict`` into this module's parameters and buffers.

        Shape mismatches always raise; with ``strict`` missing and unexpected keys raise too. The
        error lists every problem. Unlike PyTorch, nothing is copied when it raises.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"Expected state_dict to be dict-like, got {type(state_dict).__name__}.")
        own = self.state_dict(keep_vars=True)
        missing = [key for key in own if key not in state_dict]
        unexpected = [key for key in state_dict if key not in own]
        errors = []
        if strict and missing:
            errors.append("Missing key(s) in state_dict: {}. ".format(", ".join(f'"{k}"' for k in missing)))
        if strict and unexpected:
            errors.append("Unexpected key(s) in state_dict: {}. ".format(", ".join(f'"{k}"' for k in unexpected)))
        for key, target in own.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            if not isinstance(value, Tensor):
                errors.append(f'While copying the parameter named "{key}", expected distgrad Tensor from '
                              f"checkpoint but received {type(value).__name__}")
            elif value.shape != target.shape:
                errors.append(f"size mismatch for {key}: copying a param with shape {list(value.shape)} from "
                              f"checkpoint, the shape in current model is {list(target.shape)}.")
        if errors:
            raise RuntimeError(f"Error(s) in loading state_dict for {self._get_name()}:\n\t" + "\n\t".join(errors))
        for key, target in own.items():
            if key in state_dict:
                target.array[...] = backend.to_device(state_dict[key].array, target.device)
                increment_version(target)
        return _IncompatibleKeys(missing, unexpected)

    # --- printing --------------------------------------------------------------------------------
    def _get_name(self) -> str:
        return type(self).__name__

    def extra_repr(self) -> str:
        """The text between the parentheses of this module's one-line repr; override in layers."""
        return ""

    def __repr__(self) -> str:
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = [f"({name}): " + _addindent(repr(module), 2) for name, module in self._modules.items()]
        lines = extra_lines + child_lines
        body = ""
        if len(extra_lines) == 1 and not child_lines:
            body = extra_lines[0]
        elif lines:
            body = "\n  " + "\n  ".join(lines) + "\n"
        return f"{self._get_name()}({body})"


def _parse_to(*args, **kwargs):
    """``(device, dtype)`` from ``Module.to``'s PyTorch-style arguments (either may be None)."""
    device, dtype, _ = parse_to(*args, **kwargs)
    if dtype is not None and not dtypes.is_floating_point(dtype):
        raise TypeError(f"nn.Module.to only accepts floating point or complex dtypes, but got desired dtype={dtype}")
    return device, dtype
