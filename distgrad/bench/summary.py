"""``distgrad-bench summary``: one table and one plot across results folders (e.g. a SLURM sweep over nodes)."""
from __future__ import annotations

import json
import os

from distgrad.bench import ddp, plots
from distgrad.bench.metrics import format_bytes
from distgrad.bench.report import table

__all__ = ["collect", "write"]


def collect(folders: list[str]) -> list[dict]:
    """Per folder and world size above 1: the largest all-reduce's busbw and each model's weak efficiency."""
    points = []
    for folder in folders:
        with open(os.path.join(folder, "results.json")) as f:
            results = json.load(f)
        allreduce = [r for r in results.get("allreduce", {}).get("rows", []) if r["dtype"] == "float32"]
        scaling = ddp.scaling_rows(results.get("ddp", {}).get("rows", []), "weak")
        worlds = sorted({r["world_size"] for r in allreduce + scaling if r["world_size"] > 1})
        for world in worlds:
            largest = max((r for r in allreduce if r["world_size"] == world), key=lambda r: r["bytes"], default=None)
            points.append({"folder": folder, "world_size": world, "largest_bytes": largest and largest["bytes"],
                           "busbw_GBps": largest and largest["busbw_GBps"],
                           "efficiency": {r["model"]: r["efficiency"] for r in scaling if r["world_size"] == world}})
    return sorted(points, key=lambda p: p["world_size"])


def write(folders: list[str], out: str) -> str:
    """Writes ``summary.md`` and ``summary.png`` (when matplotlib is there) into ``out``; returns the table."""
    os.makedirs(out, exist_ok=True)
    points = collect(folders)
    models = sorted({m for p in points for m in p["efficiency"]})
    rows = [[p["folder"], p["world_size"], p["largest_bytes"] and format_bytes(p["largest_bytes"]), p["busbw_GBps"]]
            + [None if p["efficiency"].get(m) is None else f"{100 * p['efficiency'][m]:.1f}%" for m in models]
            for p in points]
    text = table(["results", "ranks", "largest all-reduce", "busbw (GB/s)"] + [f"{m} weak efficiency" for m in models],
                 rows)
    plotted = plots.available()
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write("# distgrad-bench sweep\n\n" + text + ("\n![summary](summary.png)\n" if plotted else ""))
    if plotted:
        _plot(points, models, out)
    return text


def _plot(points: list[dict], models: list[str], out: str) -> None:
    fig, (bw, eff) = plots.pyplot().subplots(1, 2, figsize=(10, 3.8))
    worlds = [p["world_size"] for p in points]
    bw.plot(worlds, [p["busbw_GBps"] or 0 for p in points], marker="o")
    bw.set(xlabel="ranks", ylabel="busbw of the largest all-reduce (GB/s)", xscale="log")
    for m in models:
        eff.plot(worlds, [100 * (p["efficiency"].get(m) or 0) for p in points], marker="o", label=m)
    eff.set(xlabel="ranks", ylabel="weak scaling efficiency (%)", xscale="log", ylim=(0, 105))
    eff.legend(fontsize=8)
    for ax in (bw, eff):
        ax.grid(alpha=0.3)
    plots.save(fig, out, "summary.png")
