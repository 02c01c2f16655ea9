"""Helpers shared by the test files (import them with ``from helpers import ...``)."""
import gzip
import os
import struct

import numpy as np

import distgrad as dg
from distgrad import backend


def host(t) -> np.ndarray:
    """The tensor's values as a NumPy array on the host, wherever the tensor lives."""
    return backend.to_device(t.array, backend.CPU)


def random_leaf(shape, device, seed: int = 0, scale: float = 1.0, dtype=None):
    """A float64 (or ``dtype``) leaf of standard-normal values times ``scale`` that requires grad."""
    values = np.random.default_rng(seed).standard_normal(shape) * scale
    return dg.tensor(values, dtype=dtype or dg.float64, device=device, requires_grad=True)


def leaf_keeping_layout(device, array):
    """A float64 leaf on ``device`` that requires grad, holding ``array`` with its dims in the same
    order in memory (a transposed array stays transposed; CuPy alone would copy it C-contiguous)."""
    array = np.asarray(array, dtype=np.float64)
    order = np.argsort([-s for s in array.strides], kind="stable")
    data = backend.to_device(np.ascontiguousarray(array.transpose(order)), dg.device(device))
    return dg.Tensor(data.transpose(tuple(np.argsort(order).tolist()))).requires_grad_()


def idx_bytes(array: np.ndarray) -> bytes:
    """``array`` (uint8) in IDX format: magic 0x0000_08_<ndim>, the sizes, the values."""
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_split(folder, split="train", n=6, gz=True, seed=0):
    """Tiny MNIST-format files: n images 28x28 and their labels; returns (images, labels)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    os.makedirs(folder, exist_ok=True)
    for name, array in ((f"{split}-images-idx3-ubyte", images), (f"{split}-labels-idx1-ubyte", labels)):
        data = idx_bytes(array)
        with open(os.path.join(folder, name + ".gz" if gz else name), "wb") as f:
            f.write(gzip.compress(data, mtime=0) if gz else data)
    return images, labels
