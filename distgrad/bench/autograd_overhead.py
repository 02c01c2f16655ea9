"""What the framework costs beyond the arithmetic: per recorded op (W3) and per training step.

- W3 (``docs/benchmarks.md``): 500 times ``y = (y * 1.0001 + 0.001).tanh()`` on 16 values, then
  backward; microseconds per recorded op (forward and backward together), distgrad and PyTorch.
- Per step: W1's MLP training step (batch 64, SGD with momentum) in distgrad, in PyTorch, and
  written out by hand on bare arrays (the same NumPy or CuPy calls with no tensor, tape or module).
  ``overhead_ms`` = distgrad's step minus the bare-array step.
- W2's CNN training step (batch 64) in distgrad and in PyTorch, on the same device.
"""
from __future__ import annotations

import numpy as np

from distgrad.bench import frameworks
from distgrad.bench.precision import mixed_precision
from distgrad.bench.timing import median_seconds
from distgrad.bench.workloads import BATCH, build_model, sgd, synthetic_batch, train_step

__all__ = ["worker", "w3_us", "w1_step", "w2_step", "step_ms", "bare_array_step", "W3_OPS"]

W3_STEPS = 500
W3_OPS = 3 * W3_STEPS
SIZES = (784, 512, 512, 10)


def w3_us(fw, device: str, reps: int) -> float:
    """W3 in ``fw`` (a ``Framework``): microseconds per recorded op, the median of ``reps`` runs after 2 warm-ups."""
    x = fw.lib.randn(16, device=device, requires_grad=True)

    def run():
        y = x
        for _ in range(W3_STEPS):
            y = (y * 1.0001 + 0.001).tanh()
        y.sum().backward()
        x.grad = None
    return median_seconds(run, reps, 2, fw.synchronizer(device)) / W3_OPS * 1e6


def _initial_weights(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    weights = []
    for fan_in, fan_out in zip(SIZES, SIZES[1:]):
        bound = 1 / np.sqrt(fan_in)
        weights += [rng.uniform(-bound, bound, (fan_out, fan_in)).astype(np.float32),
                    rng.uniform(-bound, bound, fan_out).astype(np.float32)]
    return weights


def bare_array_step(device: str, x: np.ndarray, y: np.ndarray, lr: float = 0.01, momentum: float = 0.9):
    """W1's training step on bare arrays (forward, hand-derived backward, SGD with momentum); returns
    ``(step, parameters)`` where ``step()`` runs one step in place and returns the loss array."""
    from distgrad import backend
    xp = backend.module_for(backend.Device(device))
    params = [backend.to_device(w, backend.Device(device)) for w in _initial_weights()]
    velocity = [xp.zeros_like(p) for p in params]
    x, y = backend.to_device(x, backend.Device(device)), backend.to_device(y, backend.Device(device))
    rows = xp.arange(len(y))

    def step():
        w1, b1, w2, b2, w3, b3 = params
        h1 = x @ w1.T + b1
        a1 = xp.maximum(h1, 0)
        h2 = a1 @ w2.T + b2
        a2 = xp.maximum(h2, 0)
        logits = a2 @ w3.T + b3
        shifted = logits - logits.max(axis=1, keepdims=True)
        exp = xp.exp(shifted)
        total = exp.sum(axis=1, keepdims=True)
        loss = (xp.log(total[:, 0]) - shifted[rows, y]).mean()
        g = exp / total
        g[rows, y] -= 1
        g /= len(y)
        g2 = (g @ w3) * (h2 > 0)
        g1 = (g2 @ w2) * (h1 > 0)
        grads = [g1.T @ x, g1.sum(axis=0), g2.T @ a1, g2.sum(axis=0), g.T @ a2, g.sum(axis=0)]
        for p, v, grad in zip(params, velocity, grads):
            v *= momentum
            v += grad
            p -= lr * v
        return loss
    return step, params


def w1_step(fw, device: str, x: np.ndarray, y: np.ndarray):
    """W1's training step in ``fw`` on the batch ``(x, y)``, from the bare-array step's initial weights;
    ``step()`` runs one step and returns the loss."""
    model = build_model("mlp", device=device, fw=fw)
    with fw.lib.no_grad():
        for p, w in zip(model.parameters(), _initial_weights()):
            p.copy_(fw.lib.tensor(w, device=device))
    optimizer = sgd(fw, model)
    xb, yb = fw.lib.tensor(x, device=device), fw.lib.tensor(y, device=device)
    return lambda: train_step(fw, model, optimizer, xb, yb)


def w2_step(fw, device: str, seed: int = 0, amp: str | None = None):
    """W2's training step in ``fw`` on a synthetic batch of 64 (under autocast to ``amp``, "bf16" or "fp16",
    for W8); ``step()`` runs one step and returns the loss."""
    model = build_model("cnn", device=device, seed=seed, fw=fw)
    optimizer = sgd(fw, model)
    x, y = synthetic_batch(BATCH, seed, device, fw)
    precision = mixed_precision(fw.lib, device, amp) if amp else None
    return lambda: train_step(fw, model, optimizer, x, y, precision)


def step_ms(fw, step, device: str, reps: int, warmup: int) -> float:
    """Median milliseconds of ``step()`` in ``fw`` on ``device`` over ``reps`` steps after ``warmup``."""
    return median_seconds(step, reps, warmup, fw.synchronizer(device)) * 1e3


def worker(params: dict, progress) -> dict:
    """One process (``distgrad-bench autograd``): W3 and the per-step comparison."""
    device, reps, steps, w2_reps = params["device"], params["reps"], params["steps"], params["w2_reps"]
    result = {"device": device}
    result["w3_distgrad_us_per_op"], result["w3_torch_us_per_op"] = frameworks.measure_both(
        lambda fw: w3_us(fw, device, reps))
    progress("W3 per-op overhead")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, SIZES[0])).astype(np.float32)
    y = rng.integers(0, SIZES[-1], BATCH)
    bare, _ = bare_array_step(device, x, y)
    result["step_bare_array_ms"] = step_ms(frameworks.load("distgrad"), bare, device, steps, 3)
    result["step_distgrad_ms"], result["step_torch_ms"] = frameworks.measure_both(
        lambda fw: step_ms(fw, w1_step(fw, device, x, y), device, steps, 3))
    result["step_overhead_ms"] = result["step_distgrad_ms"] - result["step_bare_array_ms"]
    result["step_overhead_fraction"] = result["step_overhead_ms"] / result["step_distgrad_ms"]
    progress("W1 step: distgrad, bare arrays, torch")
    result["w2_step_distgrad_ms"], result["w2_step_torch_ms"] = frameworks.measure_both(
        lambda fw: step_ms(fw, w2_step(fw, device), device, w2_reps, 2))
    progress("W2 step: distgrad, torch")
    return result
