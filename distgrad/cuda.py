"""``distgrad.cuda``: is a GPU here, how many, waiting for queued work, what holds GPU memory, seeding the
GPU draws, the typed constructors ``dg.cuda.FloatTensor`` & co, and CUDA graphs (``CUDAGraph``, ``graph``,
``make_graphed_step``: ``distgrad/cuda_graphs.py``)."""
from __future__ import annotations

import gc
import importlib

import numpy as np

from distgrad import backend, random
from distgrad.cuda_graphs import CUDAGraph, graph, graph_pool_handle, make_graphed_step  # noqa: F401
from distgrad.tensor_factories import legacy_types


def __getattr__(name: str):
    if name == "amp":  # torch.cuda.amp's autocast and GradScaler, loaded on first use (see distgrad/cpu.py)
        return importlib.import_module("distgrad.amp.device_amp").cuda
    raise AttributeError(f"module 'distgrad.cuda' has no attribute '{name}'")


def is_available() -> bool:
    return backend.cuda_is_available()


def device_count() -> int:
    return backend.cuda_device_count()


def synchronize() -> None:
    backend.synchronize()


def current_device() -> int:
    return backend.current_cuda_index()


def set_device(index: int) -> None:
    backend.cupy_module().cuda.Device(index).use()


def memory_allocated() -> int:
    """Bytes of GPU memory held by live arrays (CuPy's memory pool, used part)."""
    return backend.cupy_module().get_default_memory_pool().used_bytes()


def memory_reserved() -> int:
    """Bytes the memory pool holds from the driver (used + cached for reuse)."""
    return backend.cupy_module().get_default_memory_pool().total_bytes()


def largest_tensors(limit: int = 10, device: str = "cuda") -> list:
    """The ``limit`` largest live Tensors on ``device`` (type ``'cuda'`` or ``'cpu'``): (bytes, shape, dtype, name).

    Found by walking the garbage collector's objects, so it is slow: a debugging tool.
    """
    from distgrad.tensor import Tensor
    seen, found = set(), []
    for obj in gc.get_objects():
        if isinstance(obj, Tensor) and obj.device.type == device and id(obj.array) not in seen:
            seen.add(id(obj.array))
            kind = "parameter" if type(obj).__name__ == "Parameter" else ("grad_fn " + obj.grad_fn.name
                                                                         if obj.grad_fn is not None else "tensor")
            found.append((int(obj.array.nbytes), tuple(obj.shape), obj.dtype.name, kind))
    return sorted(found, reverse=True)[:limit]


def memory_report(limit: int = 10) -> str:
    """A few lines for a log: pool used/reserved/free on the current GPU and the largest live tensors."""
    cp = backend.cupy_module()
    free, total = cp.cuda.runtime.memGetInfo()
    mib = 1 << 20
    lines = [f"GPU {current_device()}: pool used {memory_allocated() / mib:.1f} MiB, "
             f"pool reserved {memory_reserved() / mib:.1f} MiB, device free {free / mib:.0f} of {total / mib:.0f} MiB"]
    for nbytes, shape, dtype, kind in largest_tensors(limit):
        lines.append(f"  {nbytes / mib:10.2f} MiB  {dtype:8} {list(shape)}  {kind}")
    return "\n".join(lines)


# --- seeding (PyTorch's torch.cuda.manual_seed & co) ----------------------------------------------
def manual_seed(seed: int) -> None:
    """Seeds the GPU draws of the default generator (without touching its CPU stream); fine without a GPU."""
    random.default_generator.manual_seed_cuda(seed)


def manual_seed_all(seed: int) -> None:
    """Seeds the GPU draws on every GPU: distgrad has one GPU stream per generator, so as ``manual_seed``."""
    manual_seed(seed)


def seed() -> None:
    """Seeds the GPU draws with a fresh random number."""
    manual_seed(int(np.random.SeedSequence().entropy % (2**63)))


seed_all = seed


def initial_seed() -> int:
    """The seed of the GPU draws."""
    return random.default_generator.cuda_seed


# --- memory and device queries ----------------------------------------------------------------------
def empty_cache() -> None:
    """Hands the cached, unused blocks of CuPy's memory pools back to the driver (nothing without CuPy)."""
    if backend.cupy_importable():
        cp = backend.cupy_module()
        cp.get_default_memory_pool().free_all_blocks()
        cp.get_default_pinned_memory_pool().free_all_blocks()


def get_device_name(device=None) -> str:
    """The name of GPU ``device`` (an index or a device; by default the current one)."""
    index = current_device() if device is None else backend.as_device(device).index
    props = backend.cupy_module().cuda.runtime.getDeviceProperties(index)
    name = props["name"]
    return name.decode() if isinstance(name, bytes) else name


# --- typed constructors: dg.cuda.FloatTensor([...]) makes a float32 tensor on the current GPU -----
globals().update(legacy_types("cuda"))
