"""Making tensors: ``tensor``, ``zeros``, ``ones``, ``arange``, ``randn`` ... with PyTorch's signatures."""
from __future__ import annotations

import numpy as np

from distgrad import backend, dtypes
from distgrad.random import default_generator, draw_dtype
from distgrad.tensor import Tensor


def _finish(data, requires_grad: bool) -> Tensor:
    t = Tensor(data)
    if requires_grad:
        t.requires_grad_(True)
    return t


def _device(device, like=None) -> backend.Device:
    if device is None:
        return like.device if like is not None else backend.default_device()
    return backend.as_device(device)


def _size(size, keyword=None) -> tuple:
    """A shape from ``f(2, 3)``, ``f((2, 3))`` or, given as ``keyword``, ``f(size=(2, 3))``."""
    if keyword is not None:
        if size:
            raise TypeError(f"expected the size as positional arguments or as size=, not both (got {size} and "
                            f"size={keyword})")
        size = (keyword,)
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    for s in size:
        if not isinstance(s, (int, np.integer)) or s < 0:
            raise ValueError(f"sizes must be non-negative integers, got {list(size)}")
    return tuple(int(s) for s in size)


def tensor(data, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A new tensor holding a copy of ``data`` (nested lists, numbers, NumPy/CuPy arrays, Tensors).

    Python floats become ``float32`` (the default dtype), ints ``int64``, bools ``bool``.
    """
    dtype = dtypes.to_dtype(dtype)
    from_tensor = isinstance(data, Tensor)
    if from_tensor:
        data = data.array
    if backend.is_device_array(data):
        src_device = backend.device_of(data)
        arr = data.astype(dtype or data.dtype, copy=True)
    else:
        src_device = backend.CPU
        if device is None and not from_tensor:
            device = backend.default_device()  # as torch: data that is not a tensor goes to the default device
        arr = np.array(data, dtype=dtype, copy=True)
        if dtype is None and arr.dtype == np.float64 and not isinstance(data, np.ndarray):
            arr = arr.astype(dtypes.get_default_dtype())
        if arr.dtype == object:
            raise TypeError(f"could not make a tensor from {type(data).__name__}: ragged or non-numeric data")
    target = _device(device) if device is not None else src_device
    if target != src_device:
        arr = backend.to_device(arr, target)
    return _finish(arr, requires_grad)


as_tensor = tensor


def from_numpy(a: np.ndarray) -> Tensor:
    """A tensor sharing memory with the NumPy array ``a``."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(a).__name__})")
    return Tensor(a)


def from_dlpack(obj) -> Tensor:
    """A tensor sharing memory with any DLPack producer (NumPy, CuPy, PyTorch, another distgrad Tensor)."""
    return Tensor(backend.from_dlpack(obj))


def _filled(size, fill, dtype, device, requires_grad) -> Tensor:
    dev = _device(device)
    xp = backend.module_for(dev)
    dtype = dtypes.to_dtype(dtype) or (dtypes.get_default_dtype() if fill is None or isinstance(fill, float)
                                       else dtypes.to_dtype(type(fill)) if not isinstance(fill, bool) else dtypes.bool_)
    with backend.cuda_device_context(dev):
        data = xp.empty(size, dtype) if fill is None else xp.full(size, fill, dtype)
    return _finish(data, requires_grad)


def zeros(*sizes, size=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _filled(_size(sizes, size), 0.0 if dtype is None else 0, dtype, device, requires_grad)


def ones(*sizes, size=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _filled(_size(sizes, size), 1.0 if dtype is None else 1, dtype, device, requires_grad)


def empty(*sizes, size=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _filled(_size(sizes, size), None, dtype, device, requires_grad)


def full(size, fill_value, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _filled(_size((size,)), fill_value, dtype, device, requires_grad)


def eye(n: int, m: int | None = None, dtype=None, device=None, requires_grad=False) -> Tensor:
    dev = _device(device)
    data = backend.module_for(dev).eye(n, m, dtype=dtypes.to_dtype(dtype) or dtypes.get_default_dtype())
    return _finish(data, requires_grad)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False) -> Tensor:
    if end is None:
        start, end = 0, start
    if dtype is None:
        ints = all(isinstance(v, (int, np.integer)) for v in (start, end, step))
        dtype = dtypes.int64 if ints else dtypes.get_default_dtype()
    data = backend.module_for(_device(device)).arange(start, end, step, dtype=dtypes.to_dtype(dtype))
    return _finish(data, requires_grad)


def linspace(start, end, steps: int, dtype=None, device=None, requires_grad=False) -> Tensor:
    xp = backend.module_for(_device(device))
    data = xp.linspace(start, end, steps, dtype=dtypes.to_dtype(dtype) or dtypes.get_default_dtype())
    return _finish(data, requires_grad)


def _random(draw, kernel: str, size, dtype, device, requires_grad, generator) -> Tensor:
    """Floats drawn by ``draw(generator, size, dtype)``; ``kernel`` names PyTorch's, refusing other dtypes."""
    dev = _device(device)
    gen = (generator or default_generator).for_device(dev)
    dtype = dtypes.to_dtype(dtype) or dtypes.get_default_dtype()
    if not dtypes.is_floating_point(dtype):
        raise NotImplementedError(f"\"{kernel}\" not implemented for '{dtypes.torch_name(dtype)}'")
    with backend.cuda_device_context(dev):
        data = draw(gen, size, dtype)
    return _finish(data, requires_grad)


def rand(*sizes, size=None, dtype=None, device=None, requires_grad=False, generator=None) -> Tensor:
    """Uniform on [0, 1)."""
    return _random(lambda g, s, d: g.random(s, dtype=draw_dtype(d)).astype(d, copy=False), "check_uniform_bounds",
                   _size(sizes, size), dtype, device, requires_grad, generator)


def randn(*sizes, size=None, dtype=None, device=None, requires_grad=False, generator=None) -> Tensor:
    """Standard normal."""
    return _random(lambda g, s, d: g.standard_normal(s, dtype=draw_dtype(d)).astype(d, copy=False), "normal_kernel_cpu",
                   _size(sizes, size), dtype, device, requires_grad, generator)


def randint(low, high=None, size=(), dtype=None, device=None, generator=None) -> Tensor:
    """Integers uniform on [low, high)."""
    if high is None:
        low, high = 0, low
    dtype = dtypes.to_dtype(dtype) or dtypes.int64
    dev = _device(device)
    gen = (generator or default_generator).for_device(dev)
    data = gen.integers(low, high, size=_size((size,)), dtype=dtype) if dev.type == "cpu" else \
        gen.integers(low, high, size=_size((size,))).astype(dtype)
    return Tensor(data)


def randperm(n: int, dtype=None, device=None, generator=None) -> Tensor:
    perm = (generator or default_generator).numpy.permutation(n).astype(dtypes.to_dtype(dtype) or dtypes.int64)
    return Tensor(backend.to_device(perm, _device(device)))


def _like(fn):
    def like(t: Tensor, dtype=None, device=None, requires_grad=False, **kwargs):
        return fn(t.shape, dtype=dtype or t.dtype, device=device or t.device, requires_grad=requires_grad, **kwargs)
    like.__name__ = fn.__name__ + "_like"
    like.__doc__ = f"``{fn.__name__}`` with the shape, dtype and device of ``t``."
    return like


zeros_like = _like(zeros)
ones_like = _like(ones)
empty_like = _like(empty)
rand_like = _like(rand)
randn_like = _like(randn)


def full_like(t: Tensor, fill_value, dtype=None, device=None, requires_grad=False) -> Tensor:
    return full(t.shape, fill_value, dtype=dtype or t.dtype, device=device or t.device, requires_grad=requires_grad)


def randint_like(t: Tensor, low, high=None, dtype=None, device=None) -> Tensor:
    return randint(low, high, t.shape, dtype=dtype or t.dtype, device=device or t.device)
