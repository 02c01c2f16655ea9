"""Random draws: the in-place fills (``uniform_ normal_ random_ bernoulli_ exponential_ geometric_
log_normal_ cauchy_``), the sampling functions ``bernoulli`` and ``normal``, and ``multinomial``.

Every draw comes from a ``distgrad.Generator`` (the default one unless ``generator=`` is given) on the
tensor's device, so ``dg.manual_seed`` makes it repeatable (the sequences differ from PyTorch's). The
generators draw uniform, normal and integer numbers only; the other distributions are transforms of
uniform draws, the same code on NumPy and CuPy. Half-precision tensors are drawn in float32 and rounded.
As in PyTorch, a sample is not differentiated through: ``bernoulli`` and ``normal`` give their tensor
arguments a zero gradient, ``multinomial``'s indices have none.

``multinomial`` samples indices from weights:
* With replacement: each draw is a uniform number ``u`` in [0, 1) placed in the row's normalised
  cumulative weights (the first category whose cumulative weight exceeds ``u``), all rows at once
  by offsetting row r's cumulative weights and draws by r and searching one sorted array.
* Without replacement: each category gets the key ``weight / E`` with ``E`` exponential(1); the
  ``num_samples`` largest keys are an ordered draw without replacement (the exponential race; PyTorch
  draws the same way). Zero-weight categories come last, as in PyTorch, which picks them when the
  positive ones run out.
"""
from __future__ import annotations

import math

import numpy as np

from distgrad import backend
from distgrad.autograd.function import Function
from distgrad.creation import empty
from distgrad.dtypes import finfo, is_floating_point
from distgrad.ops.inplace import overwrite
from distgrad.ops.sorting import sorted_indices
from distgrad.random import default_generator, draw_dtype
from distgrad.tensor import Tensor, bind_methods

__all__ = ["bernoulli", "normal", "multinomial"]


def _generator(generator, device):
    return (generator or default_generator).for_device(device)


def _fill(self: Tensor, op: str, draw, floating_only: bool = True) -> Tensor:
    """Writes ``draw(shape, dtype)`` into ``self`` (recorded as an overwrite when ``self`` is in a graph)."""
    if floating_only and not is_floating_point(self.dtype):
        raise RuntimeError(f"{op} expects a floating point tensor, got {self.dtype.name}")
    with backend.cuda_device_context(self.device):
        return overwrite(self, op, lambda: draw(self.shape, draw_dtype(self.dtype)))


def _uniform(gen, shape, dtype, low=0.0, high=1.0):
    r = gen.random(shape, dtype=dtype)
    if (low, high) != (0.0, 1.0):
        r *= high - low
        r += low
    return r


# --- in-place fills ------------------------------------------------------------------------------
def uniform_(self: Tensor, a: float = 0, b: float = 1, *, generator=None) -> Tensor:
    """Fills ``self`` with numbers drawn uniformly from ``[a, b)``."""
    if a > b:
        raise RuntimeError(f"uniform_ expects to return a [from, to) range, but found from={a} > to={b}")
    gen = _generator(generator, self.device)
    return _fill(self, "uniform_", lambda shape, dtype: _uniform(gen, shape, dtype, a, b))


def normal_(self: Tensor, mean: float = 0, std: float = 1, *, generator=None) -> Tensor:
    """Fills ``self`` with numbers drawn from the normal distribution ``N(mean, std**2)``."""
    if std < 0:
        raise RuntimeError(f"normal expects std >= 0.0, but found std {std}")
    gen = _generator(generator, self.device)

    def draw(shape, dtype):
        r = gen.standard_normal(shape, dtype=dtype)
        r *= std
        r += mean
        return r
    return _fill(self, "normal_", draw)


def log_normal_(self: Tensor, mean: float = 1, std: float = 2, *, generator=None) -> Tensor:
    """Fills ``self`` with ``exp(N(mean, std**2))`` draws."""
    normal_(self, mean, std, generator=generator)
    return _fill(self, "log_normal_", lambda shape, dtype: self._xp.exp(self.array))


def exponential_(self: Tensor, lambd: float = 1, *, generator=None) -> Tensor:
    """Fills ``self`` with draws of density ``lambd * exp(-lambd * x)`` (``-log(1 - U) / lambd``)."""
    if not is_floating_point(self.dtype):
        raise RuntimeError("Exponential distribution is a continuous probability distribution. dtype must be a "
                           f"floating point but you specified {self.dtype.name}")
    if lambd <= 0:
        raise RuntimeError(f"exponential_ expects lambda > 0.0, but found lambda={lambd}")
    gen = _generator(generator, self.device)
    return _fill(self, "exponential_", lambda shape, dtype: -self._xp.log1p(-gen.random(shape, dtype=dtype)) / lambd)


def geometric_(self: Tensor, p: float, *, generator=None) -> Tensor:
    """Fills ``self`` with the number of Bernoulli(``p``) trials up to the first success (1, 2, ...)."""
    if not 0 < p < 1:
        raise RuntimeError(f"geometric_ expects p to be in (0, 1), but got p={p}")
    gen = _generator(generator, self.device)
    return _fill(self, "geometric_",
                 lambda shape, dtype: self._xp.ceil(self._xp.log1p(-gen.random(shape, dtype=dtype)) / math.log1p(-p)),
                 floating_only=False)


def cauchy_(self: Tensor, median: float = 0, sigma: float = 1, *, generator=None) -> Tensor:
    """Fills ``self`` with draws of the Cauchy distribution ``median + sigma * tan(pi * (U - 1/2))``."""
    gen = _generator(generator, self.device)
    return _fill(self, "cauchy_", lambda shape, dtype: median + sigma * self._xp.tan(
        math.pi * (gen.random(shape, dtype=dtype) - 0.5)))


def _top_of_range(dtype) -> int:
    """The exclusive upper end of ``random_()`` without bounds: every integer the dtype holds exactly."""
    if is_floating_point(dtype):
        mantissa_bits = -round(math.log2(finfo(dtype).eps))
        return 2 ** (mantissa_bits + 1) + 1
    if dtype.kind == "b":
        return 2
    return int(np.iinfo(dtype).max) + (1 if dtype.itemsize < 8 else 0)


def random_(self: Tensor, from_: int = 0, to: int | None = None, *, generator=None) -> Tensor:
    """Fills ``self`` with integers uniform on ``[from_, to)``: ``random_(to)``, ``random_(from_, to)``,
    or ``random_()`` for ``[0, 2**mantissa]`` (floats) or ``[0, max]`` (integers)."""
    if to is None and from_ != 0:  # random_(to): one argument is the upper end
        from_, to = 0, from_
    high = _top_of_range(self.dtype) if to is None else int(to)
    if from_ >= high:
        raise RuntimeError(f"random_ expects 'from' to be less than 'to', but got from={from_} >= to={high}")
    gen = _generator(generator, self.device)
    return _fill(self, "random_", lambda shape, dtype: gen.integers(from_, high, size=shape), floating_only=False)


def _check_probability(op: str, p) -> None:
    values = p.array if isinstance(p, Tensor) else np.asarray(p)
    if values.size and not bool(((values >= 0) & (values <= 1)).all()):
        shown = p if not isinstance(p, Tensor) else f"a tensor with values in [{float(values.min())}, {float(values.max())}]"
        raise RuntimeError(f"{op} expects p to be in [0, 1], but got p={shown}")


def bernoulli_(self: Tensor, p=0.5, *, generator=None) -> Tensor:
    """Fills ``self`` with 1 with probability ``p`` (a number or a Tensor broadcast to ``self``), else 0."""
    _check_probability("bernoulli_", p)
    gen = _generator(generator, self.device)
    prob = backend.to_device(p.array, self.device) if isinstance(p, Tensor) else p
    return _fill(self, "bernoulli_", lambda shape, dtype: gen.random(shape, dtype=dtype) < prob, floating_only=False)


# --- sampling functions ----------------------------------------------------------------------------
class Sample(Function):
    """A random array computed from its tensor arguments; their gradient is zero, as in PyTorch."""

    @staticmethod
    def forward(ctx, draw, *tensors):
        ctx.shapes = [(t.shape, t.dtype) if isinstance(t, Tensor) else None for t in tensors]
        return draw()

    @staticmethod
    def backward(ctx, grad):
        zeros = [None if s is None else Tensor(grad._xp.zeros(*s)) for s in ctx.shapes]
        return (None, *zeros)


def bernoulli(input: Tensor, p: float | None = None, *, generator=None) -> Tensor:
    """1 with probability ``input`` (elementwise), else 0, in ``input``'s dtype; with ``p``, probability ``p``."""
    _check_probability("bernoulli", input if p is None else p)
    gen = _generator(generator, input.device)
    prob = input.array if p is None else p

    def draw():
        with backend.cuda_device_context(input.device):
            return (gen.random(input.shape, dtype=draw_dtype(input.dtype)) < prob).astype(input.dtype)
    return Sample.apply(draw, input)


def normal(mean, std=1.0, size=None, *, generator=None, dtype=None, device=None, requires_grad: bool = False):
    """Draws of ``N(mean, std**2)``: ``mean`` and ``std`` are numbers or broadcasting Tensors; with two
    numbers, ``size`` gives the shape (and ``dtype``/``device`` apply, as in ``torch.normal``)."""
    tensors = [t for t in (mean, std) if isinstance(t, Tensor)]
    if not tensors:
        if size is None:
            raise TypeError("normal(): with a float mean and std, the size argument is required")
        return normal_(empty(size, dtype=dtype, device=device), mean, std,
                       generator=generator).requires_grad_(requires_grad)
    if isinstance(std, (int, float)) and std < 0 or isinstance(std, Tensor) and bool((std.array < 0).any()):
        raise RuntimeError("normal expects all elements of std >= 0.0")
    if size is not None:
        raise TypeError("normal(): size is only accepted with a float mean and a float std")
    like = tensors[0]
    xp = like._xp
    shape = np.broadcast_shapes(*(t.shape for t in tensors))
    gen = _generator(generator, like.device)

    def draw():
        with backend.cuda_device_context(like.device):
            values = xp.asarray(gen.standard_normal(shape, dtype=draw_dtype(like.dtype)))
        scale = std.array if isinstance(std, Tensor) else std
        shift = mean.array if isinstance(mean, Tensor) else mean
        return (values * scale + shift).astype(like.dtype, copy=False)
    return Sample.apply(draw, mean, std)


# --- multinomial ----------------------------------------------------------------------------------
def _check(input: Tensor, num_samples: int, replacement: bool) -> None:
    if input.ndim not in (1, 2):
        raise RuntimeError(f"multinomial: prob_dist must be 1 or 2 dim, got shape {list(input.shape)}")
    if not is_floating_point(input.dtype):
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


bind_methods(uniform_=uniform_, normal_=normal_, log_normal_=log_normal_, exponential_=exponential_,
             geometric_=geometric_, cauchy_=cauchy_, random_=random_, bernoulli_=bernoulli_, bernoulli=bernoulli,
             multinomial=multinomial)
