"""Writing at indices: ``scatter`` (src or value, ``reduce="add"|"multiply"``), ``index_add``,
``index_copy``, ``index_fill``, and their in-place forms (``scatter_ index_add_ index_copy_ index_fill_``).

Each is a write at an advanced-indexing key, so each reuses the Functions of ``indexing.py``:

* ``scatter(input, dim, index, src)``: ``out[key] = src[:index.shape]`` where ``key`` picks
  ``[index[i][j]][j]`` along ``dim`` (gather's key): ``IndexPut``. The gradient of ``input`` is zero
  where something was written; that of ``src`` is the output gradient gathered at ``key``.
* ``index_copy`` and ``index_fill`` are the same write with the key ``[..., index, ...]`` along ``dim``.
* ``scatter(..., reduce="add")`` and ``index_add`` add instead (repeated indices sum): ``ScatterAdd``.
* ``scatter(..., reduce="multiply")`` multiplies; like PyTorch, it has no derivative.

As in PyTorch, where an index repeats in ``scatter``/``index_copy`` one of the writes wins (the last
on the CPU; unspecified on a GPU), and every repeated ``src`` entry still receives its gradient.
In-place forms bump the version counter and follow the two paths of ``inplace.py``.
"""
from __future__ import annotations

from distgrad import backend
from distgrad.autograd.function import Function
from distgrad.ops.autocasting import autocast_op
from distgrad.ops.dims import wrap_dim
from distgrad.ops.indexing import IndexPut, ScatterAdd, _check_range, _gather_key, _index_array
from distgrad.ops.inplace import needs_recording, record_inplace, update_in_place
from distgrad.tensor import Tensor, bind_methods

__all__ = ["scatter", "index_add", "index_copy", "index_fill"]


def _integer_index(op: str, input: Tensor, index):
    """``index`` as an integer array on ``input``'s device; another dtype raises PyTorch's error."""
    dtype = getattr(index.array if isinstance(index, Tensor) else index, "dtype", None)
    if dtype is None or dtype.kind in "iu":
        idx = _index_array(input, index, f"{op}()")
        dtype = idx.dtype
    if dtype.kind not in "iu":
        raise RuntimeError(f"{op}(): Expected dtype int32/int64 for index, got {dtype.name}")
    return idx


# --- scatter -----------------------------------------------------------------------------------------
class ScatterMultiply(Function):
    """A copy of ``x`` with the entries at ``key`` multiplied by ``src`` (repeated indices multiply)."""

    @staticmethod
    def forward(ctx, x, src, key):
        out = x.array.copy()
        multiply_at(out, key, src.array if isinstance(src, Tensor) else src)
        return out

    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError("derivative for aten::scatter with reduce='multiply' is not implemented")


def multiply_at(target, key: tuple, values) -> None:
    """``target[key] *= values`` with repeated indices all applied (NumPy's ``multiply.at``).

    CuPy has no ``multiply.at``, so the writes go in rounds: round r applies the r-th occurrence
    of every index, and within a round no index repeats. There are as many rounds as the largest
    number of repeats, each one vectorised.
    """
    xp = backend.array_module(target)
    keys = xp.broadcast_arrays(*key)
    columns = [k.reshape(-1) for k in keys]
    values = xp.broadcast_to(xp.asarray(values, dtype=target.dtype), keys[0].shape).reshape(-1)
    linear = xp.ravel_multi_index(columns, target.shape)
    order = xp.argsort(linear, kind="stable")
    ordered = linear[order]
    starts = xp.ones(ordered.shape, dtype=bool)
    starts[1:] = ordered[1:] != ordered[:-1]
    group = xp.cumsum(starts) - 1
    rank = xp.empty_like(order)
    rank[order] = xp.arange(ordered.size) - xp.flatnonzero(starts)[group]
    for r in range(int(rank.max()) + 1 if rank.size else 0):
        chosen = xp.flatnonzero(rank == r)
        target[tuple(c[chosen] for c in columns)] *= values[chosen]


def _scatter_args(op: str, input: Tensor, dim: int, index, src, value, reduce):
    """(key, the Tensor or number to write, reduce) after PyTorch's checks."""
    if src is not None and not isinstance(src, Tensor):
        src, value = None, src  # scatter(dim, index, 2.0): the value form, given positionally
    if (src is None) == (value is None):
        raise TypeError(f"{op}(): expected exactly one of 'src' (a Tensor) and 'value' (a number)")
    if reduce not in (None, "add", "multiply"):
        raise RuntimeError(f"{op}(): reduce argument must be either add or multiply, got {reduce!r}.")
    if src is not None and src.dtype != input.dtype:
        raise RuntimeError(f"{op}(): Expected self.dtype to be equal to src.dtype, got {input.dtype.name} and "
                           f"{src.dtype.name}")
    if input.ndim == 0:  # a 0-d tensor acts as a 1-element vector, with a 0-d (or 1-element) index and src
        input = input.reshape(1)
        src = src if src is None or src.ndim else src.reshape(1)
        index = index.reshape(1) if isinstance(index, Tensor) and index.ndim == 0 else index
    dim = wrap_dim(dim, input.ndim)
    idx = _integer_index(op, input, index)
    key = _gather_key(op, input, dim, idx, src)
    if src is not None and src.shape != idx.shape:
        src = src[tuple(slice(0, n) for n in idx.shape)]
    if src is None and reduce == "add":  # adding a number: an addend per index, for scatter_add's Function
        src = Tensor(input._xp.full(idx.shape, value, input.dtype))
    return key, src if src is not None else value, reduce


def _scatter(input: Tensor, key: tuple, written, reduce) -> Tensor:
    if input.ndim == 0:
        return _scatter(input.reshape(1), key, written, reduce).reshape(())
    if reduce == "multiply":
        return ScatterMultiply.apply(input, written, key)
    if reduce == "add":
        return ScatterAdd.apply(input, written, key, ())
    return IndexPut.apply(input, written, key, False)


def _write(a, key: tuple, written, reduce) -> None:
    """The plain (unrecorded) in-place write into the array ``a``."""
    values = written.array if isinstance(written, Tensor) else written
    a = _vector(a)
    if reduce == "multiply":
        multiply_at(a, key, values)
    elif reduce == "add":
        backend.scatter_add(a, key, values)
    else:
        a[key] = values


def scatter(input: Tensor, dim: int, index, src=None, *, value=None, reduce: str | None = None) -> Tensor:
    """A copy of ``input`` with ``src[i][j]`` (or the number ``value``) written at ``[index[i][j]][j]``
    (``dim=0``; likewise for other dims). ``reduce="add"``/``"multiply"`` combine instead of writing."""
    key, written, reduce = _scatter_args("scatter", input, dim, index, src, value, reduce)
    return _scatter(input, key, written, reduce)


def scatter_(self: Tensor, dim: int, index, src=None, *, value=None, reduce: str | None = None) -> Tensor:
    """In-place ``scatter``."""
    key, written, reduce = _scatter_args("scatter_", self, dim, index, src, value, reduce)
    if needs_recording(self, written):
        return record_inplace(self, "scatter_", lambda alias: _scatter(alias, key, written, reduce))
    return update_in_place(self, "scatter_", lambda xp, a: _write(a, key, written, reduce), written)


# --- index_add, index_copy, index_fill ------------------------------------------------------------------
def _index_args(op: str, input: Tensor, dim: int, index, source):
    """The key ``[..., index, ...]`` along ``dim`` after PyTorch's checks; 0-d tensors act as 1-element ones.
    Negative indices count from the end for ``index_fill`` only (``source`` None), as in PyTorch."""
    dim = wrap_dim(dim, input.ndim)
    idx = _integer_index(op, input, index)
    if idx.ndim > 1:
        raise IndexError(f"{op}(): Index is supposed to be a vector, but got dim: {idx.ndim} with type: "
                         f"{idx.dtype.name} and size: {list(idx.shape)}")
    idx = idx.reshape(-1)
    shape = input.shape or (1,)
    if source is not None:
        if source.dtype != input.dtype:
            raise RuntimeError(f"{op}(): self ({input.dtype.name}) and source ({source.dtype.name}) must have the "
                               "same scalar type")
        source_shape = source.shape or (1,)
        if source.ndim != input.ndim or any(a != b for d, (a, b) in enumerate(zip(shape, source_shape))
                                                  if d != dim):
            raise RuntimeError(f"{op}(): source tensor shape must match self tensor shape, excluding the specified "
                               f"dimension. Got self.shape = {list(input.shape)} source.shape = {list(source.shape)}")
        if source_shape[dim] != idx.size:
            raise RuntimeError(f"{op}(): Number of indices ({idx.size}) should be equal to source.size(dim): "
                               f"({source_shape[dim]}), for dim: {dim}")
    if idx.size:
        _check_range(idx, -shape[dim] if source is None else 0, shape[dim], dim)
    return (slice(None),) * dim + (idx,)


def _on_vectors(fn, input: Tensor, source):
    """Runs ``fn(input, source)`` with 0-d tensors read as 1-element vectors (PyTorch's rule)."""
    if input.ndim:
        return fn(input, source)
    src = source if source is None or source.ndim else source.reshape(1)
    return fn(input.reshape(1), src).reshape(())


def index_add(input: Tensor, dim: int, index, source: Tensor, *, alpha=1) -> Tensor:
    """A copy of ``input`` with ``alpha * source`` added at ``index`` along ``dim`` (repeats sum)."""
    key = _index_args("index_add", input, dim, index, source)
    scaled = source if alpha == 1 else source * alpha
    return _on_vectors(lambda x, s: ScatterAdd.apply(x, s, key, ()), input, scaled)


def index_add_(self: Tensor, dim: int, index, source: Tensor, *, alpha=1) -> Tensor:
    """In-place ``index_add``."""
    key = _index_args("index_add_", self, dim, index, source)
    if needs_recording(self, source):
        return record_inplace(self, "index_add_", lambda alias: index_add(alias, dim, index, source, alpha=alpha))
    values = source.array if alpha == 1 else source.array * alpha
    return update_in_place(self, "index_add_",
                           lambda xp, a: backend.scatter_add(_vector(a), key, _vector(values)), source)


@autocast_op()
def index_copy(input: Tensor, dim: int, index, source: Tensor) -> Tensor:
    """A copy of ``input`` with ``source``'s slices written at ``index`` along ``dim``."""
    key = _index_args("index_copy", input, dim, index, source)
    return _on_vectors(lambda x, s: IndexPut.apply(x, s, key, False), input, source)


def index_copy_(self: Tensor, dim: int, index, source: Tensor) -> Tensor:
    """In-place ``index_copy``."""
    key = _index_args("index_copy_", self, dim, index, source)
    if needs_recording(self, source):
        return record_inplace(self, "index_copy_", lambda alias: index_copy(alias, dim, index, source))
    return update_in_place(self, "index_copy_", lambda xp, a: _set(a, key, source.array), source)


def index_fill(input: Tensor, dim: int, index, value) -> Tensor:
    """A copy of ``input`` with ``value`` (a number or a 0-d tensor) at ``index`` along ``dim``."""
    key = _index_args("index_fill", input, dim, index, None)
    if isinstance(value, Tensor) and value.ndim:
        raise RuntimeError(f"index_fill_ only supports a 0-dimensional value tensor, but got tensor with "
                           f"{value.ndim} dimension(s).")
    return _on_vectors(lambda x, _: IndexPut.apply(x, value, key, False), input, None)


def index_fill_(self: Tensor, dim: int, index, value) -> Tensor:
    """In-place ``index_fill``."""
    key = _index_args("index_fill_", self, dim, index, None)
    if needs_recording(self, value):
        return record_inplace(self, "index_fill_", lambda alias: index_fill(alias, dim, index, value))
    return update_in_place(self, "index_fill_",
                           lambda xp, a: _set(a, key, value.array if isinstance(value, Tensor) else value), value)


def _vector(a):
    """A 0-d array as a 1-element view (index ops read 0-d tensors so); other arrays as they are."""
    return a.reshape(1) if getattr(a, "ndim", None) == 0 else a


def _set(a, key: tuple, values) -> None:
    _vector(a)[key] = _vector(values)


bind_methods(
    scatter=scatter, scatter_=scatter_, index_add=index_add, index_add_=index_add_, index_copy=index_copy,
    index_copy_=index_copy_, index_fill=index_fill, index_fill_=index_fill_,
)
