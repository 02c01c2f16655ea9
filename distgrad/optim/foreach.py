"""The foreach path of ``Optimizer.step``: one update over a flat buffer instead of one per parameter.

An optimizer's ``_update(param, grad, state, group)`` is elementwise, so running it once on the
concatenation of many parameters gives, element for element, what running it on each gives. The group's
parameters that have a gradient are split into *buckets*: same dtype, same device and same state shape
(the same state names and step count, so one scalar ``step`` and one "first step" branch fit all). For
each bucket:

1. ``P`` and ``G``: the slices of the flat buffers when the bucket's parameters live there, consecutive and
   in order (``nn.utils.flatten_parameters``); otherwise the parameters and gradients gathered into new
   flat arrays (and ``P`` scattered back afterwards).
2. The bucket's state is one flat Tensor per state name; each parameter's ``state[p][name]`` is a view of
   it, so ``state_dict`` keeps PyTorch's per-parameter layout at no cost. State that is not such a view
   (first step, ``load_state_dict``) is concatenated once and the views handed out again.
3. ``_update(P, G, flat_state, group)``: a few array operations over the whole bucket.

16-bit parameters (float32 state, ``master_weights``) are left to the per-parameter path.
"""
from __future__ import annotations

from distgrad import backend, dtypes
from distgrad.nn.utils.flat_parameters import flat_run, is_flattened
from distgrad.tensor import Tensor

FUSED_DEVICES = ["cpu", "cuda"]


def check_flags(foreach, fused) -> None:
    """PyTorch's refusal of ``foreach=True`` with ``fused=True``."""
    if fused and foreach:
        raise RuntimeError("`fused` and `foreach` cannot be `True` together.")


def check_fused(p: Tensor) -> None:
    """PyTorch's refusal of a parameter that ``fused=True`` cannot update."""
    if not (p.device.type in FUSED_DEVICES and dtypes.is_floating_point(p.dtype)):
        raise RuntimeError("`fused=True` requires all the params to be floating point Tensors of "
                           f"supported devices: {FUSED_DEVICES} but {p.dtype} and {p.device.type}")


def step_group(optimizer, group: dict, params: list, everywhere: bool, cache: dict, kept: dict) -> None:
    """Updates ``params`` (those of ``group`` with a gradient): by bucket where the foreach path applies
    (``everywhere``: always; otherwise on a GPU or over a flat buffer, where it costs no copy), the rest
    one parameter at a time (16-bit ones always)."""
    if not everywhere and not any(p.is_cuda or is_flattened(p) for p in params):
        for p in params:
            optimizer._update_one(p, group)
        return
    for bucket in buckets(params, optimizer.state).values():
        if bucket[0].array.dtype in dtypes.LOW_PRECISION:
            for p in bucket:
                optimizer._update_one(p, group)
            continue
        run = flat_run(bucket)
        if run is None and not everywhere and not bucket[0].is_cuda:
            for p in bucket:
                optimizer._update_one(p, group)
            continue
        step_bucket(optimizer, group, bucket, run, cache, kept)


def buckets(params: list, state) -> dict:
    """``params`` grouped by (dtype, device, state names, step count), each group in the given order."""
    found: dict = {}
    for p in params:
        s = state.get(p) or {}
        key = (p.array.dtype, p.device.type, p.device.index, tuple(s), s.get("step"))
        found.setdefault(key, []).append(p)
    return found


def step_bucket(optimizer, group: dict, bucket: list, run, cache: dict, kept: dict) -> None:
    """Updates ``bucket`` in one ``_update`` call; ``run`` is ``flat_run(bucket)`` (None: gather, scatter).
    The flat state is looked up in ``cache`` (the last step's) and recorded in ``kept`` (this step's)."""
    if run is None:
        xp = backend.array_module(bucket[0].array)
        param = xp.concatenate([p.array.reshape(-1) for p in bucket])
        grad = xp.concatenate([p.grad.array.reshape(-1) for p in bucket])
    else:
        param, grad = run
    flat, views = _flat_state(optimizer.state, bucket, cache, kept)
    optimizer._update(param, grad, flat, group)
    _share_state(optimizer.state, bucket, flat, views)
    if run is None:
        for p, start, end in _spans(bucket):
            p.array[...] = param[start:end].reshape(p.shape)


def _spans(bucket: list):
    start = 0
    for p in bucket:
        end = start + p.numel()
        yield p, start, end
        start = end


def _flat_state(state, bucket: list, cache: dict, kept: dict):
    """``(flat, views)``: the bucket's state as one dict of flat Tensors, and ``{name: (flat Tensor, its
    per-parameter views)}``; reused from ``cache`` while every parameter's state is still those views,
    otherwise concatenated from the parameters' own state (first step, ``load_state_dict``)."""
    key = tuple(map(id, bucket))
    cached = cache.get(key)
    if cached is not None and _still_viewed(state, bucket, *cached):
        kept[key] = cached
        return cached
    first = [state[p] for p in bucket][0]  # every parameter gets its (maybe empty) entry, as per parameter
    flat = {}
    for name, value in first.items():
        if isinstance(value, Tensor):
            xp = backend.array_module(value.array)
            flat[name] = Tensor(xp.concatenate([state[p][name].array.reshape(-1) for p in bucket]))
        else:
            flat[name] = value
    views: dict = {}
    _share_state(state, bucket, flat, views)
    kept[key] = flat, views
    return flat, views


def _still_viewed(state, bucket: list, flat: dict, views: dict) -> bool:
    for name, value in flat.items():
        if isinstance(value, Tensor):
            if any(state[p].get(name) is not view for p, view in zip(bucket, views[name][1])):
                return False
        elif any(state[p].get(name) != value for p in bucket):
            return False
    return len(state[bucket[0]]) == len(flat)


def _share_state(state, bucket: list, flat: dict, views: dict) -> None:
    """Points every parameter's state at ``flat``: Tensor entries as views (made once per flat Tensor and
    kept in ``views``), scalars (``step``) copied."""
    for name, value in flat.items():
        if not isinstance(value, Tensor):
            for p in bucket:
                state[p][name] = value
            continue
        made = views.get(name)
        if made is None or made[0] is not value:
            made = views[name] = value, [Tensor(value.array[start:end].reshape(p.shape))
                                         for p, start, end in _spans(bucket)]
            for p, view in zip(bucket, made[1]):
                state[p][name] = view
