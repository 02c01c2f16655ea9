"""Sampling indices from weights: ``multinomial`` (no gradient, like PyTorch's).

Draws come from distgrad's generators (``distgrad/random.py``), so ``dg.manual_seed`` (or a
``generator=``) makes them repeatable; the sequences differ from PyTorch's.

* With replacement: each draw is a uniform number ``u`` in [0, 1) placed in the row's normalised
  cumulative weights (the first category whose cumulative weight exceeds ``u``), all rows at once
  by offsetting row r's cumulative weights and draws by r and searching one sorted array.
* Without replacement: each category gets the key ``weight / E`` with ``E`` exponential(1); the
  ``num_samples`` largest keys are an ordered draw without replacement (the exponential race; PyTorch
  draws the same way). Zero-weight categories come last, as in PyTorch, which picks them when the
  positive ones run out.
"""
from __future__ import annotations

import numpy as np

from distgrad import backend
from distgrad.ops.sorting import sorted_indices
from distgrad.random import default_generator
from distgrad.tensor import Tensor, bind_methods

__all__ = ["multinomial"]


def _check(input: Tensor, num_samples: int, replacement: bool) -> None:
    if input.ndim not in (1, 2):
        raise RuntimeError(f"multinomial: prob_dist must be 1 or 2 dim, got shape {list(input.shape)}")
    if input.dtype.kind != "f":
        raise RuntimeError(f"multinomial only supports floating-point dtypes for input, got: {input.dtype.name}")
    if num_samples <= 0:
        raise RuntimeError(f"multinomial: cannot sample n_sample <= 0 samples (got {num_samples})")
    categories = input.shape[-1]
    if not replacement and num_samples > categories:
        raise RuntimeError(f"multinomial: cannot sample n_sample > prob_dist.size(-1) samples without replacement "
                           f"({num_samples} > {categories})")
    xp, w = input._xp, input.array
    if w.size and not bool(xp.all(xp.isfinite(w) & (w >= 0))):
        raise RuntimeError("multinomial: probability tensor contains either `inf`, `nan` or element < 0")
    if categories == 0 or bool((w.sum(axis=-1) <= 0).any()):
        raise RuntimeError("multinomial: invalid multinomial distribution (sum of probabilities <= 0)")


def multinomial(input: Tensor, num_samples: int, replacement: bool = False, *, generator=None) -> Tensor:
    """int64 indices of ``num_samples`` categories drawn per row of the non-negative weights ``input``
    ((categories,) or (rows, categories); weights need not sum to 1)."""
    _check(input, num_samples, replacement)
    xp = input._xp
    weights = input.array.reshape(-1, input.shape[-1]).astype(np.float64)
    rows, categories = weights.shape
    draw = (generator or default_generator).for_device(input.device)
    with backend.cuda_device_context(input.device):
        if replacement:
            cdf = xp.cumsum(weights, axis=1)
            cdf /= cdf[:, -1:]
            cdf[:, -1] = 1.0  # rounding must not leave the last category out of reach
            offset = xp.arange(rows, dtype=np.float64)[:, None]
            u = draw.random((rows, num_samples))
            found = xp.searchsorted((cdf + offset).reshape(-1), (u + offset).reshape(-1), side="right")
            samples = found.reshape(rows, num_samples) - xp.arange(rows)[:, None] * categories
            samples = xp.minimum(samples, categories - 1)
        else:
            exponential = -xp.log1p(-draw.random((rows, categories)))
            with np.errstate(divide="ignore"):
                keys = weights / exponential
            samples = sorted_indices(keys, 1, descending=True)[:, :num_samples]
    samples = samples.astype(np.int64, copy=False)
    return Tensor(samples.reshape(-1) if input.ndim == 1 else samples)


bind_methods(multinomial=multinomial)
