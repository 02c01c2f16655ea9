"""``wrap_dim``: a possibly negative ``dim`` as an index, with PyTorch's error; every op family uses it."""
from __future__ import annotations

__all__: list[str] = []  # a helper for the ops, not part of the public API


def wrap_dim(dim: int, ndim: int) -> int:
    """``dim`` as an index in ``range(ndim)``; a 0-d tensor accepts 0 and -1, like torch."""
    bound = max(ndim, 1)
    if not -bound <= dim < bound:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-bound}, {bound - 1}], "
                         f"but got {dim})")
    return dim % bound
