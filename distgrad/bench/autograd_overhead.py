"""What the framework costs beyond the arithmetic: per recorded op (W3) and per training step.

- W3 (``../shared/WORKLOADS.md``): 500 times ``y = (y * 1.0001 + 0.001).tanh()`` on 16 values, then
  backward; microseconds per recorded op (forward and backward together), distgrad and PyTorch.
- Per step: W1's MLP training step (batch 64, SGD with momentum) in distgrad, in PyTorch, and
  written out by hand on bare arrays (the same NumPy or CuPy calls with no tensor, tape or module).
  ``overhead_ms`` = distgrad's step minus the bare-array step.
- W2's CNN training step (batch 64) in distgrad and in PyTorch, on the same device.
"""
from __future__ import annotations

import statistics
import time

import numpy as np

__all__ = ["worker", "w3_distgrad_us", "w3_torch_us", "W3_OPS"]

W3_STEPS = 500
W3_OPS = 3 * W3_STEPS
BATCH, SIZES = 64, (784, 512, 512, 10)


def _synchronizer(device: str):
    from distgrad import backend
    return backend.synchronize if device != "cpu" else (lambda: None)


def _median_seconds(run, reps: int, warmup: int, synchronize) -> float:
    for _ in range(warmup):
        run()
    times = []
    for _ in range(reps):
        synchronize()
        start = time.perf_counter()
        run()
        synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def w3_distgrad_us(device: str, reps: int) -> float:
    """W3 in distgrad: microseconds per recorded op."""
    import distgrad as dg
    x = dg.randn(16, device=device, requires_grad=True)

    def run():
        y = x
        for _ in range(W3_STEPS):
            y = (y * 1.0001 + 0.001).tanh()
        y.sum().backward()
        x.grad = None
    return _median_seconds(run, reps, 2, _synchronizer(device)) / W3_OPS * 1e6


def w3_torch_us(device: str, reps: int) -> float | None:
    """W3 in PyTorch eager (one intra-op thread), or None without PyTorch."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    x = torch.randn(16, device=device, requires_grad=True)

    def run():
        y = x
        for _ in range(W3_STEPS):
            y = (y * 1.0001 + 0.001).tanh()
        y.sum().backward()
        x.grad = None
    synchronize = torch.cuda.synchronize if device != "cpu" else (lambda: None)
    return _median_seconds(run, reps, 2, synchronize) / W3_OPS * 1e6


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


def _distgrad_step(device: str, x: np.ndarray, y: np.ndarray):
    import distgrad as dg
    import distgrad.nn.functional as F
    from distgrad import nn
    model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10)).to(device)
    with dg.no_grad():
        for p, w in zip(model.parameters(), _initial_weights()):
            p.copy_(dg.tensor(w, device=device))
    optimizer = dg.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    xb, yb = dg.tensor(x, device=device), dg.tensor(y, device=device)

    def step():
        loss = F.cross_entropy(model(xb), yb)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss
    return step


def _torch_step(device: str, x: np.ndarray, y: np.ndarray):
    try:
        import torch
    except ImportError:
        return None, None
    torch.set_num_threads(1)
    nn = torch.nn
    model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10)).to(device)
    with torch.no_grad():
        for p, w in zip(model.parameters(), _initial_weights()):
            p.copy_(torch.from_numpy(w))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    xb, yb = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)

    def step():
        loss = nn.functional.cross_entropy(model(xb), yb)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss
    return step, (torch.cuda.synchronize if device != "cpu" else (lambda: None))


def _w2_steps(device: str):
    """W2's training step in distgrad and in PyTorch (None without it), on the same synthetic batch."""
    import distgrad as dg
    import distgrad.nn.functional as F
    from distgrad.bench.workloads import build_model, synthetic_batch
    model = build_model("cnn", device=device)
    optimizer = dg.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = synthetic_batch(BATCH, seed=0, device=device)

    def ours():
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    try:
        import torch
    except ImportError:
        return ours, None
    nn = torch.nn
    torch.manual_seed(0)
    reference = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Flatten(), nn.Linear(9216, 128), nn.ReLU(), nn.Linear(128, 10)).to(device)
    torch_optimizer = torch.optim.SGD(reference.parameters(), lr=0.01, momentum=0.9)
    tx, ty = torch.from_numpy(x.cpu().numpy()).to(device), torch.from_numpy(y.cpu().numpy()).to(device)

    def theirs():
        loss = nn.functional.cross_entropy(reference(tx), ty)
        torch_optimizer.zero_grad()
        loss.backward()
        torch_optimizer.step()
    return ours, theirs


def worker(params: dict, progress) -> dict:
    """One process (``distgrad-bench autograd``): W3 and the per-step comparison."""
    device, reps, steps = params["device"], params["reps"], params["steps"]
    result = {"device": device, "w3_distgrad_us_per_op": w3_distgrad_us(device, reps),
              "w3_torch_us_per_op": w3_torch_us(device, reps)}
    progress("W3 per-op overhead")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, SIZES[0])).astype(np.float32)
    y = rng.integers(0, SIZES[-1], BATCH)
    synchronize = _synchronizer(device)
    bare, _ = bare_array_step(device, x, y)
    result["step_bare_array_ms"] = _median_seconds(bare, steps, 3, synchronize) * 1e3
    result["step_distgrad_ms"] = _median_seconds(_distgrad_step(device, x, y), steps, 3, synchronize) * 1e3
    torch_step, torch_sync = _torch_step(device, x, y)
    result["step_torch_ms"] = None if torch_step is None else _median_seconds(torch_step, steps, 3, torch_sync) * 1e3
    result["step_overhead_ms"] = result["step_distgrad_ms"] - result["step_bare_array_ms"]
    result["step_overhead_fraction"] = result["step_overhead_ms"] / result["step_distgrad_ms"]
    progress("W1 step: distgrad, bare arrays, torch")
    ours, theirs = _w2_steps(device)
    result["w2_step_distgrad_ms"] = _median_seconds(ours, params["w2_reps"], 2, synchronize) * 1e3
    result["w2_step_torch_ms"] = None if theirs is None else \
        _median_seconds(theirs, params["w2_reps"], 2, torch_sync) * 1e3
    progress("W2 step: distgrad, torch")
    return result
