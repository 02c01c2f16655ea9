"""Turning a list of samples into one batch (``default_collate``), as ``torch.utils.data`` does."""
from __future__ import annotations

import collections.abc

import numpy as np

from distgrad import backend
from distgrad.tensor import Tensor

__all__ = ["default_collate", "default_convert"]

_COLLATE_ERROR = "default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; found {}"


def _stack_tensors(batch: list) -> Tensor:
    first = batch[0]
    for i, t in enumerate(batch):
        if not isinstance(t, Tensor):
            raise TypeError(f"default_collate: entry 0 is a Tensor but entry {i} is {type(t).__name__}")
        if t.shape != first.shape:
            raise RuntimeError(f"stack expects each tensor to be equal size, but got {list(first.shape)} "
                               f"at entry 0 and {list(t.shape)} at entry {i}")
        if t.device != first.device:
            raise RuntimeError(f"stack expects all tensors on one device, but got {first.device} at entry 0 "
                               f"and {t.device} at entry {i}")
    return Tensor(first._xp.stack([t.array for t in batch]))


def _stack_arrays(batch: list) -> Tensor:
    if batch[0].dtype.kind in "SaUO":
        raise TypeError(_COLLATE_ERROR.format(batch[0].dtype))
    return Tensor(np.stack([np.asarray(a) for a in batch]))


def _is_namedtuple(obj) -> bool:
    return isinstance(obj, tuple) and hasattr(obj, "_fields")


def default_collate(batch: list):
    """One batch from a list of samples, recursing into the samples' structure as torch does.

    Tensors and NumPy arrays are stacked along a new first dimension; Python floats become a float64
    tensor, ints an int64 tensor; strings stay a list; dicts, named tuples, tuples and lists are
    collated field by field (tuples and lists give lists, as in torch).
    """
    elem = batch[0]
    if isinstance(elem, Tensor):
        return _stack_tensors(batch)
    if isinstance(elem, (np.ndarray, np.generic)) and not isinstance(elem, (np.str_, np.bytes_)):
        return _stack_arrays(batch)
    if isinstance(elem, float):
        return Tensor(np.array(batch, dtype=np.float64))
    if isinstance(elem, int):  # bools too: they collate to a bool tensor
        return Tensor(np.array(batch))
    if isinstance(elem, (str, bytes)):
        return batch
    if isinstance(elem, collections.abc.Mapping):
        collated = {key: default_collate([d[key] for d in batch]) for key in elem}
        try:
            return type(elem)(collated)
        except TypeError:  # a mapping type that cannot be built from a dict
            return collated
    if _is_namedtuple(elem):
        return type(elem)(*(default_collate(list(field)) for field in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        if any(len(sample) != len(elem) for sample in batch):
            raise RuntimeError("each element in list of batch should be of equal size")
        fields = [default_collate(list(field)) for field in zip(*batch)]
        if isinstance(elem, (tuple, list)):
            return fields
        try:
            return type(elem)(fields)
        except TypeError:
            return fields
    raise TypeError(_COLLATE_ERROR.format(type(elem)))


def default_convert(data):
    """NumPy arrays (and NumPy scalars) inside ``data`` become Tensors; the rest is left as it is.

    The DataLoader's collate function when automatic batching is off (``batch_size=None``).
    """
    if isinstance(data, (np.ndarray, np.generic)) and data.dtype.kind not in "SaUO":
        return Tensor(np.asarray(data))
    if isinstance(data, collections.abc.Mapping):
        return {key: default_convert(value) for key, value in data.items()}
    if _is_namedtuple(data):
        return type(data)(*(default_convert(d) for d in data))
    if isinstance(data, (tuple, list)):
        return [default_convert(d) for d in data]
    return data


def batch_to_device(batch, device: backend.Device):
    """``batch`` with every Tensor in it copied to ``device`` (those already there are kept)."""
    if isinstance(batch, Tensor):
        return batch if batch.device == device else Tensor(backend.to_device(batch.array, device))
    if isinstance(batch, collections.abc.Mapping):
        return {key: batch_to_device(value, device) for key, value in batch.items()}
    if _is_namedtuple(batch):
        return type(batch)(*(batch_to_device(b, device) for b in batch))
    if isinstance(batch, (tuple, list)):
        return type(batch)(batch_to_device(b, device) for b in batch)
    return batch
