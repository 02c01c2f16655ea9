"""distgrad: PyTorch-style tensors and autograd on NumPy and CuPy, trained across GPUs with MPI/NCCL.

The top-level names (``dg.tensor``, ``dg.float32``, ``dg.nn``, ...) load on first use: the launcher
installs as ``distgrad.launch`` and must start without NumPy or the engine. The names themselves are
listed in ``distgrad/namespace.py``; subpackages load when first touched.
"""
import importlib
import sys
import types

__version__ = "0.1.0"

# Submodules reachable as attributes (``dg.nn``) and through ``from distgrad import backend``.
_SUBMODULES = frozenset({
    "accelerator", "amp", "autograd", "backend", "backends", "bench", "cpu", "creation", "cuda", "data",
    "distributed", "dtypes", "envvars", "launch", "multiprocessing", "namespace", "nn", "onnx", "ops", "optim",
    "profiler", "random", "serialization", "utils", "viz",
})
_namespace_loaded = False
_namespace_loading = False


def _load_namespace() -> None:
    global _namespace_loaded, _namespace_loading
    _namespace_loading = True
    try:
        namespace = importlib.import_module("distgrad.namespace")
    finally:
        _namespace_loading = False
    globals().update({name: getattr(namespace, name) for name in namespace.__all__})
    _namespace_loaded = True


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    # While the namespace is loading, a missing name is a submodule being imported, not an API name.
    if name.startswith("__") or _namespace_loading or _namespace_loaded:
        raise AttributeError(f"module 'distgrad' has no attribute '{name}'")
    _load_namespace()
    try:
        return globals()[name]
    except KeyError:
        raise AttributeError(f"module 'distgrad' has no attribute '{name}'") from None


def __dir__():
    if not _namespace_loaded:
        _load_namespace()
    return sorted(set(globals()) | _SUBMODULES)


class _Package(types.ModuleType):
    def __setattr__(self, name, value):
        # Importing the submodule distgrad/tensor.py sets the attribute ``distgrad.tensor`` to it;
        # ``dg.tensor`` is the function that makes tensors, as in PyTorch, so the module stays out.
        if name == "tensor" and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
