"""The models the step benchmarks train, and synthetic batches for them.

``mlp`` and ``cnn`` are workloads W1 and W2 of ``../shared/WORKLOADS.md`` (MNIST-shaped inputs);
``synthetic`` is an MLP of about a requested parameter count, for the communication-heavy end:
square hidden layers of one width, sized so that there are at least four of them (several buckets).
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["MODEL_NAMES", "build_model", "synthetic_width_depth", "synthetic_batch", "parameter_count"]

MODEL_NAMES = ("mlp", "cnn", "synthetic")
INPUT_FEATURES, CLASSES = 784, 10
MAX_SYNTHETIC_WIDTH = 2048
MIN_SYNTHETIC_PARAMS = 10_000


def synthetic_width_depth(params: int) -> tuple[int, int]:
    """(width, number of hidden width x width layers) whose model has about ``params`` parameters:
    at least four hidden layers, at most ``MAX_SYNTHETIC_WIDTH`` wide."""
    if params < MIN_SYNTHETIC_PARAMS:
        raise ValueError(f"the synthetic model needs at least {MIN_SYNTHETIC_PARAMS} parameters, got {params}")
    depth = 4
    width = _width_for(params, depth)
    if width > MAX_SYNTHETIC_WIDTH:  # too wide for four layers: more layers, each narrower
        hidden_layer = MAX_SYNTHETIC_WIDTH ** 2 + MAX_SYNTHETIC_WIDTH
        depth = math.ceil((params - _outer_params(MAX_SYNTHETIC_WIDTH)) / hidden_layer)
        width = _width_for(params, depth)
    return width, depth


def _outer_params(width: int) -> int:
    """Parameters outside the hidden layers: input layer and classifier."""
    return (INPUT_FEATURES + 1) * width + (width + 1) * CLASSES


def _width_for(params: int, depth: int) -> int:
    """The width w solving depth (w^2 + w) + (785 + 10) w + 10 = params, rounded to the nearest integer."""
    a, b, c = depth, depth + INPUT_FEATURES + 1 + CLASSES, CLASSES - params
    return max(1, round((-b + math.sqrt(b * b - 4 * a * c)) / (2 * a)))


def build_model(name: str, params: int | None = None, device: str = "cpu", seed: int = 0):
    """A fresh distgrad model, the same on every rank (seeded)."""
    import distgrad as dg
    from distgrad import nn
    dg.manual_seed(seed)
    if name == "mlp":
        layers = [nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10)]
    elif name == "cnn":
        layers = [nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                  nn.Linear(9216, 128), nn.ReLU(), nn.Linear(128, 10)]
    elif name == "synthetic":
        width, depth = synthetic_width_depth(params)
        layers = [nn.Flatten(), nn.Linear(INPUT_FEATURES, width), nn.ReLU()]
        for _ in range(depth):
            layers += [nn.Linear(width, width), nn.ReLU()]
        layers.append(nn.Linear(width, CLASSES))
    else:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(MODEL_NAMES)}")
    return nn.Sequential(*layers).to(device)


def parameter_count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def synthetic_batch(batch: int, seed: int, device: str = "cpu"):
    """MNIST-shaped inputs (batch, 1, 28, 28) and labels; a step's time does not depend on the values."""
    import distgrad as dg
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, CLASSES, batch)
    return dg.tensor(x, device=device), dg.tensor(y, device=device)
