"""The results folder's PNG plots (matplotlib, Agg backend; small files at 100 dpi)."""
from __future__ import annotations

import os
import sys

from distgrad.bench import ddp, zero
from distgrad.bench.metrics import format_bytes

__all__ = ["write_all", "available", "pyplot", "save"]

PHASES = (("forward_ms", "forward"), ("backward_compute_ms", "backward"), ("comm_wait_ms", "comm wait"),
          ("optimizer_ms", "optimizer"))


def pyplot():
    """matplotlib's pyplot on the Agg backend (files only, no display); ImportError without matplotlib."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save(fig, out: str, name: str) -> str:
    """Writes ``fig`` to ``out/name`` and closes it; returns ``name``."""
    fig.tight_layout()
    fig.savefig(os.path.join(out, name), dpi=100)
    pyplot().close(fig)
    return name


def _log2_sizes(ax, sizes: list[int]) -> None:
    """Size ticks every factor of 16 (4B, 64B, 1K, ...) within the measured range."""
    ax.set_xscale("log", base=2)
    ticks = [t for t in (4 << (4 * i) for i in range(8)) if min(sizes) <= t <= max(sizes)]
    ax.set_xticks(ticks, [format_bytes(t).replace(" ", "").replace("iB", "") for t in ticks])


def allreduce_plot(section: dict, out: str) -> str:
    plt = pyplot()
    fig, (bw, tm) = plt.subplots(1, 2, figsize=(10, 3.8))
    groups = {}
    for r in section["rows"]:
        groups.setdefault((r["backend"], r["device"], r["dtype"], r["world_size"], r.get("algorithm", "flat")),
                          []).append(r)
    for (backend, device, dtype, world, algorithm), rows in groups.items():
        sizes = [r["bytes"] for r in rows]
        label = f"{backend} {device} {dtype}, {world} rank{'s' if world > 1 else ''}" + \
            (f", {algorithm}" if algorithm != "flat" else "")
        if world > 1:
            line, = bw.plot(sizes, [r["busbw_GBps"] for r in rows], marker=".", label=label)
            if "mpi4py_busbw_GBps" in rows[0]:
                bw.plot(sizes, [r["mpi4py_busbw_GBps"] for r in rows], ls="--", color=line.get_color(),
                        label=f"raw mpi4py, {world} ranks")
        tm.plot(sizes, [r["time_us"] for r in rows], marker=".", label=label)
    bw.set(xlabel="message size", ylabel="bus bandwidth (GB/s)", title="all-reduce bus bandwidth")
    tm.set(xlabel="message size", ylabel="time (us)", title="all-reduce time", yscale="log")
    for ax in (bw, tm):
        _log2_sizes(ax, [r["bytes"] for r in section["rows"]])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return save(fig, out, "allreduce.png")


def scaling_plot(section: dict, out: str) -> str:
    plt = pyplot()
    fig, (thr, eff) = plt.subplots(1, 2, figsize=(10, 3.8))
    for mode, style in (("weak", "-"), ("strong", "--")):
        by_model = {}
        for r in ddp.scaling_rows(section["rows"], mode):
            by_model.setdefault(r["model"], []).append(r)
        for model, rows in by_model.items():
            ranks = [r["world_size"] for r in rows]
            thr.plot(ranks, [r["samples_per_s"] for r in rows], ls=style, marker="o", label=f"{model}, {mode}")
            eff.plot(ranks, [100 * (r["efficiency"] or 0) for r in rows], ls=style, marker="o",
                     label=f"{model}, {mode}")
    thr.set(xlabel="ranks", ylabel="samples/s", yscale="log", title="throughput")
    eff.set(xlabel="ranks", ylabel="scaling efficiency (%)", title="efficiency = thr(n) / (n thr(1))")
    eff.axhline(100, color="gray", lw=0.8)
    for ax in (thr, eff):
        ax.set_xscale("log", base=2)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return save(fig, out, "ddp_scaling.png")


def breakdown_plot(section: dict, out: str) -> str:
    """Each configuration's step as 100%, split into its phases; the total step time beside each bar."""
    plt = pyplot()
    rows = [r for mode in ("weak", "strong") for r in ddp.scaling_rows(section["rows"], mode)
            if not (mode == "strong" and r["world_size"] == 1)]
    rows += [{**r, "mode": f"cap {r['bucket_cap_mb']:g} MiB"} for r in ddp.bucket_rows(section["rows"])
             if r["bucket_cap_mb"] != ddp.DEFAULT_BUCKET_CAP_MB]
    fig, ax = plt.subplots(figsize=(10, 0.35 * len(rows) + 1.2))
    labels = [f"{r['model']} {r['mode']}, {r['world_size']} rank(s), batch {r['per_rank_batch']}" for r in rows]
    left = [0.0] * len(rows)
    for key, name in PHASES:
        shares = [100 * r[key] / r["step_ms"] for r in rows]
        ax.barh(labels, shares, left=left, label=name)
        left = [a + b for a, b in zip(left, shares)]
    for y, r in enumerate(rows):
        ax.text(106, y, f"{r['step_ms']:.1f} ms", va="center", fontsize=7)
    ax.set(xlabel="share of the step (%; each phase is the slowest rank's, so they may not add to 100)",
           xlim=(0, 120), title="where a training step's time goes")
    ax.invert_yaxis()
    ax.tick_params(axis="y", labelsize=7)
    ax.legend(fontsize=7, ncol=4, loc="lower right")
    return save(fig, out, "ddp_breakdown.png")


def model_plot(section: dict, out: str) -> str:
    """Predicted efficiency against GPUs: one panel per workload, one line per network."""
    plt = pyplot()
    workloads = list(dict.fromkeys(r["workload"] for r in section["predictions"]))
    fig, axes = plt.subplots(1, len(workloads) + 1, figsize=(4 * (len(workloads) + 1), 3.8), squeeze=False)
    default = section["settings"]["configurations"][0]
    for ax, workload in zip(axes[0], workloads):
        lines = {}
        for r in section["predictions"]:
            if r["workload"] == workload:
                lines.setdefault((r["network"], r["configuration"]), []).append(r)
        for (network, configuration), rows in lines.items():
            if configuration == default:
                ax.plot([r["gpus"] for r in rows], [100 * r["efficiency"] for r in rows], marker=".", label=network)
        ax.set(title=workload, xlabel="GPUs", ylabel="predicted efficiency (%)", ylim=(0, 105))
    anchors = axes[0][-1]
    positions = range(len(section["anchors"]))
    anchors.bar([i - 0.2 for i in positions], [100 * a["published_efficiency"] for a in section["anchors"]], 0.4,
                label="published")
    anchors.bar([i + 0.2 for i in positions], [100 * a["predicted_efficiency"] for a in section["anchors"]], 0.4,
                label="model")
    anchors.set_xticks(list(positions), [f"{a['name']}\n{a['model']}, {a['gpus']} GPUs" for a in section["anchors"]],
                       fontsize=7)
    anchors.set(title="published runs", ylabel="efficiency (%)", ylim=(0, 105))
    anchors.legend(fontsize=7)
    for ax in axes[0][:-1]:
        ax.set_xscale("log", base=2)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"model: {default}, {section['settings']['gpus_per_node']} GPUs per node", fontsize=9)
    return save(fig, out, "model_efficiency.png")


def mnist_plot(section: dict, out: str) -> str:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for r in section["rows"]:
        ax.plot([h["train_seconds"] for h in r["history"]], [100 * h["test_accuracy"] for h in r["history"]],
                marker=".", label=f"{r['world_size']} rank(s)")
    ax.axhline(100 * section["settings"]["target"], color="gray", lw=0.8, ls="--")
    ax.set(xlabel="training seconds", ylabel="test accuracy (%)", title="MNIST: accuracy against training time")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save(fig, out, "mnist.png")


def zero_plot(section: dict, out: str) -> str:
    """Optimizer-state bytes per rank and step time against ranks, one line per configuration."""
    plt = pyplot()
    fig, (state, step) = plt.subplots(1, 2, figsize=(10, 3.8))
    lines = {}
    for r in section["rows"]:
        lines.setdefault(r["config"], []).append(r)
    for config, rows in lines.items():
        ranks, style = [r["world_size"] for r in rows], "--" if config.startswith("torch") else "-"
        state.plot(ranks, [r["optimizer_state_bytes"] / 2**20 for r in rows], ls=style, marker="o",
                   label=zero.LABELS[config])
        step.plot(ranks, [r["step_ms"] for r in rows], ls=style, marker="o", label=zero.LABELS[config])
    state.set(xlabel="ranks", ylabel="optimizer state per rank (MiB)", title="optimizer state (largest rank)",
              ylim=(0, None))
    step.set(xlabel="ranks", ylabel="step (ms)", title="step time (slowest rank)", ylim=(0, None))
    for ax in (state, step):
        ax.set_xticks(sorted({r["world_size"] for r in section["rows"]}))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"ZeRO (W9): {section['settings']['model']}", fontsize=9)
    return save(fig, out, "zero.png")


PLOTS = {"allreduce": allreduce_plot, "ddp": (scaling_plot, breakdown_plot), "model": model_plot, "mnist": mnist_plot,
         "zero": zero_plot}


def available() -> bool:
    """Whether matplotlib can draw; if not, one line on stderr says that the plots were skipped and why
    (the JSON and Markdown files hold every figure without them)."""
    try:
        pyplot()
    except ImportError as e:
        print(f"distgrad-bench: plots skipped: matplotlib cannot be imported ({e}); "
              "pip install 'distgrad[bench]' to get them", file=sys.stderr)
        return False
    return True


def write_all(results: dict, out: str) -> list[str]:
    """Every plot whose section is in ``results`` (and did not fail); the file names written."""
    if not available():
        return []
    written = []
    for name, makers in PLOTS.items():
        section = results.get(name)
        if section is None or "error" in section:
            continue
        for make in makers if isinstance(makers, tuple) else (makers,):
            written.append(make(section, out))
    return written
