"""LSTM training-step time, distgrad against PyTorch on the same inputs and weights.

One step is the forward and backward of ``nn.LSTM`` on a (seq_len, batch, input_size) float32 batch
with a given upstream gradient (no optimizer: the layer alone). Two shapes: ``word_lm`` is
pytorch/examples' word_language_model default (2 layers, 200 wide, bptt 35, batch 20), where the
products matter; ``small`` (1 layer, 32 wide, batch 4) is nearly all per-step Python and framework
overhead.
"""
from __future__ import annotations

import statistics
import time

import numpy as np

__all__ = ["SHAPES", "lstm_step_ms"]

SHAPES = {
    "word_lm": dict(seq_len=35, batch=20, input_size=200, hidden_size=200, num_layers=2),
    "small": dict(seq_len=35, batch=4, input_size=32, hidden_size=32, num_layers=1),
}


def _median_ms(step, steps: int, warmup: int) -> dict:
    """Median wall-clock and process CPU milliseconds of ``step``: on a shared machine the CPU time
    shows the work, the wall time also the waits for a core."""
    for _ in range(warmup):
        step()
    wall, cpu = [], []
    for _ in range(steps):
        start, start_cpu = time.perf_counter(), time.process_time()
        step()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return {"wall_ms": statistics.median(wall) * 1e3, "cpu_ms": statistics.median(cpu) * 1e3}


def _inputs(shape: dict, seed: int = 0) -> tuple:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((shape["seq_len"], shape["batch"], shape["input_size"])).astype(np.float32)
    grad = rng.standard_normal((shape["seq_len"], shape["batch"], shape["hidden_size"])).astype(np.float32)
    return x, grad


def lstm_step_ms(framework: str, shape: dict, steps: int = 20, warmup: int = 3) -> dict | None:
    """``{"wall_ms", "cpu_ms"}`` of one forward+backward of the LSTM of ``shape`` ("distgrad" or
    "torch"), both from PyTorch's initial weights; None when PyTorch is not installed."""
    x, grad = _inputs(shape)
    layer_args = (shape["input_size"], shape["hidden_size"], shape["num_layers"])
    try:
        import torch
    except ImportError:
        return None
    torch.manual_seed(0)
    reference = torch.nn.LSTM(*layer_args)
    if framework == "torch":
        tx, tg = torch.from_numpy(x).requires_grad_(), torch.from_numpy(grad)

        def step():
            out, _ = reference(tx)
            out.backward(tg)
        return _median_ms(step, steps, warmup)
    import distgrad as dg
    layer = dg.nn.LSTM(*layer_args)
    layer.load_state_dict({k: dg.tensor(v.detach().numpy()) for k, v in reference.state_dict().items()})
    dx, dgrad = dg.tensor(x, requires_grad=True), dg.tensor(grad)

    def step():
        out, _ = layer(dx)
        out.backward(dgrad)
    return _median_ms(step, steps, warmup)
