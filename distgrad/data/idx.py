"""Reading IDX files, the format of MNIST: a magic number, the sizes, then the values, big-endian."""
from __future__ import annotations

import gzip
import math
import struct
import zlib

import numpy as np

__all__ = ["read_idx"]

# The third byte of the magic number: the type of the values.
_VALUE_TYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
                0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path: str, magic: int | None = None) -> np.ndarray:
    """The array stored in the IDX file at ``path`` (gzip-compressed when the name ends in ``.gz``).

    ``magic`` (e.g. 2051 for MNIST images, 2049 for labels) is the number the file must start with.
    A truncated or corrupt file raises a RuntimeError naming it, never a partial array.
    """
    try:
        with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
            raw = f.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise RuntimeError(f"{path} is corrupt or truncated ({exc}); delete it and download it again") from exc
    return _parse_idx(raw, path, magic)


def _parse_idx(raw: bytes, path: str, magic: int | None) -> np.ndarray:
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _VALUE_TYPES:
        raise RuntimeError(f"{path} is not an IDX file: it starts with bytes {raw[:4].hex()}")
    found = int.from_bytes(raw[:4], "big")
    if magic is not None and found != magic:
        raise RuntimeError(f"{path} has magic number {found} where {magic} was expected")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise RuntimeError(f"{path} is truncated: {len(raw)} bytes, shorter than its {header}-byte header")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = _VALUE_TYPES[raw[2]]
    expected = header + math.prod(shape) * dtype.itemsize
    if len(raw) != expected:
        problem = "truncated" if len(raw) < expected else "corrupt"
        raise RuntimeError(f"{path} is {problem}: {len(raw)} bytes where an IDX file of shape {list(shape)} "
                           f"and dtype {dtype.name} has {expected}; delete it and download it again")
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))
