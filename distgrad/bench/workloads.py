"""The workloads' models, inputs and training step, for distgrad and for its PyTorch twin.

``mlp`` and ``cnn`` are the models of W1 and W2 (``docs/benchmarks.md``; MNIST-shaped inputs,
10 classes); ``synthetic`` is an MLP of about a requested parameter count, for the
communication-heavy end: square hidden layers of one width, sized so that there are at least four of
them (several DDP buckets). Every builder takes a ``Framework`` (distgrad when left out) and seeds
it, so the same call gives the same model on every rank; both frameworks train with W1 and W2's
optimizer (``sgd``) and step (``train_step``), so a ratio compares the libraries and nothing else.
"""
from __future__ import annotations

import math

import numpy as np

from distgrad.bench import frameworks

__all__ = ["MODEL_NAMES", "BATCH", "build_model", "synthetic_width_depth", "parameter_count", "synthetic_arrays",
           "synthetic_batch", "sgd", "train_step", "conv_calls"]

MODEL_NAMES = ("mlp", "cnn", "synthetic")
INPUT_FEATURES, CLASSES = 784, 10
BATCH = 64  # W1, W2 and W5's batch (per rank)
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


def _layers(nn, name: str, params: int | None, width: int | None, depth: int | None) -> list:
    if name == "mlp":
        return [nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10)]
    if name == "cnn":
        return [nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                nn.Linear(9216, 128), nn.ReLU(), nn.Linear(128, 10)]
    if name == "synthetic":
        if width is None or depth is None:
            width, depth = synthetic_width_depth(params)
        layers = [nn.Flatten(), nn.Linear(INPUT_FEATURES, width), nn.ReLU()]
        for _ in range(depth):
            layers += [nn.Linear(width, width), nn.ReLU()]
        return layers + [nn.Linear(width, CLASSES)]
    raise ValueError(f"unknown model {name!r}; expected one of {', '.join(MODEL_NAMES)}")


def build_model(name: str, params: int | None = None, device: str = "cpu", seed: int = 0, fw=None, *,
                width: int | None = None, depth: int | None = None):
    """A fresh model of ``fw`` (distgrad by default), the same on every rank (seeded).

    ``synthetic`` takes its size from ``params`` (a parameter count), or from ``width`` and ``depth``
    (hidden width x width layers) when both are given.
    """
    fw = fw or frameworks.load("distgrad")
    fw.lib.manual_seed(seed)
    return fw.nn.Sequential(*_layers(fw.nn, name, params, width, depth)).to(device)


def parameter_count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def synthetic_arrays(batch: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """MNIST-shaped float32 inputs (batch, 1, 28, 28) and int64 labels; a step's time does not depend on the values."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch, 1, 28, 28)).astype(np.float32), rng.integers(0, CLASSES, batch)


def synthetic_batch(batch: int, seed: int, device: str = "cpu", fw=None):
    """``synthetic_arrays`` as tensors of ``fw`` (distgrad by default) on ``device``."""
    fw = fw or frameworks.load("distgrad")
    x, y = synthetic_arrays(batch, seed)
    return fw.lib.tensor(x, device=device), fw.lib.tensor(y, device=device)


def sgd(fw, model, lr: float = 0.01):
    """The workloads' optimizer: SGD with momentum 0.9 (learning rate 0.01 in W1 and W2)."""
    return fw.optim.SGD(model.parameters(), lr=lr, momentum=0.9)


def train_step(fw, model, optimizer, x, y, precision=None):
    """One training step on the batch ``(x, y)``: cross-entropy, backward, optimizer step; returns the loss.
    With ``precision`` (``bench.precision.MixedPrecision``) forward and loss run under its autocast and
    its scaler scales the loss."""
    if precision is None:
        loss = fw.F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss
    with precision.autocast:
        loss = fw.F.cross_entropy(model(x), y)
    optimizer.zero_grad()
    precision.scaler.scale(loss).backward()
    precision.scaler.step(optimizer)
    precision.scaler.update()
    return loss


CONV_SHAPES = {"x": (64, 1, 28, 28), "w1": (32, 1, 3, 3), "b1": (32,), "h1": (64, 32, 26, 26),
               "w2": (64, 32, 3, 3), "b2": (64,), "h2": (64, 64, 24, 24)}


def conv_calls(fw, device: str = "cpu", seed: int = 0) -> dict:
    """W2's convolutional part as separate calls, each a forward and a backward (batch 64, float32):
    conv(1->32, 3x3) and conv(32->64, 3x3) on W2's activation sizes, max-pool 2, and the three chained
    with ReLUs (``conv_relu_pool_chain``, as in a W2 step). Inputs are contiguous (N, C, H, W)."""
    rng = np.random.default_rng(seed)
    t = {name: fw.lib.tensor((rng.standard_normal(shape) * 0.1).astype(np.float32), device=device)
         for name, shape in CONV_SHAPES.items()}
    for name in CONV_SHAPES:
        if name != "x":
            t[name].requires_grad_()
    F = fw.F

    def backward(y):
        y.backward(fw.lib.ones_like(y))

    def chain():
        h = F.relu(F.conv2d(F.relu(F.conv2d(t["x"], t["w1"], t["b1"])), t["w2"], t["b2"]))
        backward(F.max_pool2d(h, 2))
    return {"conv1": lambda: backward(F.conv2d(t["x"], t["w1"], t["b1"])),
            "conv2": lambda: backward(F.conv2d(t["h1"], t["w2"], t["b2"])),
            "max_pool": lambda: backward(F.max_pool2d(t["h2"], 2)), "conv_relu_pool_chain": chain}
