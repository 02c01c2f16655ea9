"""W7 measured: the GPT's training-step time in distgrad against its PyTorch twin, and the twin's training
curve on the recipe of ``examples/gpt.py`` (for the side-by-side loss curves of ``docs/gpt.md``).

Both twins start from the same weights (distgrad's, seeded, copied into PyTorch) and see the same
batches, so their curves differ only by floating-point rounding and library kernels.
"""
from __future__ import annotations

import statistics
import time

import numpy as np

from distgrad.bench.gpt import (CharData, evaluate, gpt_model, make_optimizer, preset, progress_line, progress_record,
                                train_step, training_steps)
from distgrad.bench.precision import mixed_precision

__all__ = ["twin_models", "step_times", "summary", "twin_curve", "plot_curves"]


def twin_models(config, seed: int = 0, device: str = "cpu"):
    """(distgrad model, PyTorch model) holding the same weights: distgrad's initialisation from ``seed``."""
    import torch

    import distgrad as dg
    dg.manual_seed(seed)
    ours = gpt_model(dg, config).to(device)
    theirs = gpt_model(torch, config)
    theirs.load_state_dict({k: torch.from_numpy(v.cpu().numpy().copy()) for k, v in ours.state_dict().items()})
    return ours, theirs.to(device)


def step_times(config, recipe, steps: int = 10, warmup: int = 3, rounds: int = 3, device: str = "cpu",
               seed: int = 0, amp: str | None = None) -> dict:
    """Seconds per training step (forward, loss, backward, AdamW) of each twin on one fixed batch, in
    float32 or under autocast to ``amp`` ("bf16", "fp16": W8).

    The twins alternate in ``rounds`` of ``steps`` steps each, so that a shared machine's changing
    load falls on both; each takes ``warmup`` untimed steps first. Returns the per-step times by library.
    """
    import torch

    import distgrad as dg
    ours, theirs = twin_models(config, seed, device)
    x, y = np.random.default_rng(seed).integers(0, config.vocab_size, (2, recipe.batch_size, config.block_size))
    runs = {}
    for name, lib, model in (("distgrad", dg, ours), ("torch", torch, theirs)):
        optimizer = make_optimizer(lib, model, recipe)
        xb, yb = lib.tensor(x, device=device), lib.tensor(y, device=device)
        sync = _synchronizer(lib, device)

        def step(lib=lib, model=model, optimizer=optimizer, xb=xb, yb=yb,
                 precision=mixed_precision(lib, device, amp) if amp else None):
            train_step(lib, model, optimizer, xb, yb, recipe.lr, 0.0, precision)
        for _ in range(warmup):
            step()
        runs[name] = (step, sync)
    times = {name: [] for name in runs}
    for _ in range(rounds):
        for name, (step, sync) in runs.items():
            for _ in range(steps):
                sync()
                start = time.perf_counter()
                step()
                sync()
                times[name].append(time.perf_counter() - start)
    return times


def _synchronizer(lib, device: str):
    if not device.startswith("cuda"):
        return lambda: None
    return lib.cuda.synchronize


def summary(times: list, tokens_per_step: int) -> dict:
    ms = statistics.median(times) * 1e3
    return {"ms_per_step": round(ms, 2), "tokens_per_s": round(tokens_per_step / ms * 1e3, 1), "steps": len(times)}


def twin_curve(data: CharData, preset_name: str, steps: int, seed: int = 0, device: str = "cpu", log=print,
               own_init: bool = False, **recipe_changes) -> list:
    """The PyTorch twin trained on ``examples/gpt.py``'s recipe in one process (``recipe_changes``, such as
    ``batch_size=2``, as the example's options): its history records. It starts from distgrad's weights,
    or with ``own_init`` from PyTorch's own draw (``torch.manual_seed(seed)``)."""
    import dataclasses

    import torch
    config, recipe = preset(preset_name, data.vocab_size)
    recipe = dataclasses.replace(recipe, **recipe_changes)
    if own_init:
        torch.manual_seed(seed)
        model = gpt_model(torch, config).to(device)
    else:
        _, model = twin_models(config, seed, device)
    optimizer = make_optimizer(torch, model, recipe)
    eval_sets = {split: [tuple(torch.tensor(a, device=device) for a in b) for b in
                         data.eval_batches(split, recipe.eval_iters, recipe.batch_size, config.block_size, seed)]
                 for split in ("train", "val")}
    history = []
    for step, lr, timed, seconds in training_steps(torch, model, optimizer, data, config, recipe, steps, seed, device):
        losses = {split: evaluate(torch, model, batches) for split, batches in eval_sets.items()}
        history.append(progress_record(step, losses["train"][0] / losses["train"][1],
                                       losses["val"][0] / losses["val"][1], lr, timed,
                                       recipe.batch_size * config.block_size, seconds))
        log(progress_line(history[-1], steps))
    return history


def plot_curves(histories: dict, path: str) -> None:
    """Train (dashed) and validation loss against step, one colour per run (``histories``: label -> records);
    the right panel zooms on the second half. The first run is drawn wide and pale, so that a run on
    top of it stays visible."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import ScalarFormatter
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    last = max(h[-1]["step"] for h in histories.values())
    for ax, start in zip(axes, (0, last // 2)):
        for i, ((label, history), colour) in enumerate(zip(histories.items(), ("tab:blue", "tab:orange", "tab:green"))):
            shown = [h for h in history if h["step"] >= start]
            steps = [h["step"] for h in shown]
            style = {"color": colour, "linewidth": 5 if i == 0 else 1.5, "alpha": 0.4 if i == 0 else 1.0}
            ax.plot(steps, [h["train_loss"] for h in shown], linestyle="--", label=f"{label} train", **style)
            ax.plot(steps, [h["val_loss"] for h in shown], label=f"{label} validation", **style)
        ax.set(xlabel="step", ylabel="cross-entropy (nats per character)")
        ax.grid(True, alpha=0.3)
    axes[0].set_yscale("log")
    axes[0].yaxis.set_major_formatter(ScalarFormatter())
    axes[0].yaxis.set_minor_formatter(ScalarFormatter())
    axes[1].set_title(f"steps {last // 2} to {last}")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
