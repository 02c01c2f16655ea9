"""Models, data and training loops shared by the DDP cases: the same on every rank, seeded."""
from __future__ import annotations

import numpy as np

import distgrad as dg
import distgrad.nn.functional as F
import distgrad.optim  # noqa: F401  (binds dg.optim)
from distgrad import nn

IN, OUT = 10, 4


def mlp(dtype=dg.float64, seed: int = 0, hidden: int = 16, depth: int = 3) -> nn.Module:
    """``depth`` Linear layers with ReLU between them, initialised from ``seed``."""
    dg.manual_seed(seed)
    sizes = [IN] + [hidden] * (depth - 1) + [OUT]
    layers = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers += [nn.Linear(a, b)] + ([nn.ReLU()] if i < depth - 1 else [])
    return nn.Sequential(*layers).to(dtype=dtype)


def global_batches(steps: int, n: int, b: int, dtype=np.float64, seed: int = 1):
    """``steps`` global batches of ``n * b`` samples: inputs (steps, n*b, IN) and class labels."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((steps, n * b, IN)).astype(dtype), rng.integers(0, OUT, (steps, n * b))


def shard(array, r: int, b: int):
    """Rank ``r``'s part of a global batch."""
    return array[r * b:(r + 1) * b]


def sgd(model: nn.Module):
    return dg.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)


def loss_of(model, x, y):
    return F.cross_entropy(model(dg.tensor(x)), dg.tensor(y))


def train(model, xs, ys, wrapper=None) -> None:
    """SGD with momentum over the batches ``xs``/``ys`` (``wrapper`` runs the forward when given)."""
    optimizer, forward = sgd(model), wrapper or model
    for x, y in zip(xs, ys):
        loss = loss_of(forward, x, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def max_difference(a: nn.Module, b: nn.Module) -> float:
    """The largest absolute difference between the two models' parameters."""
    return max(float(np.abs(p.array - q.array).max()) for p, q in zip(a.parameters(), b.parameters()))


class Heads(nn.Module):
    """A trunk and three heads; ``forward(x, head)`` uses only the trunk and head ``head``."""

    def __init__(self, seed: int = 0):
        super().__init__()
        dg.manual_seed(seed)
        self.trunk = nn.Linear(IN, 8).double()
        self.head_a = nn.Linear(8, OUT).double()
        self.head_b = nn.Linear(8, OUT).double()
        self.head_never = nn.Linear(8, OUT).double()

    def forward(self, x, head: str = "head_a"):
        return getattr(self, head)(self.trunk(x).relu())


class Chain(nn.Module):
    """Three square matrices applied in ``order`` (registration order a, b, c): choosing the order
    chooses in which order their gradients become ready."""

    def __init__(self, order: str = "abc", width: int = 6):
        super().__init__()
        dg.manual_seed(0)
        self.order = order
        self.a = nn.Parameter(dg.randn(width, width, dtype=dg.float64))
        self.b = nn.Parameter(dg.randn(width, width, dtype=dg.float64))
        self.c = nn.Parameter(dg.randn(width, width, dtype=dg.float64))

    def forward(self, x):
        for name in self.order:
            x = x @ getattr(self, name)
        return x
