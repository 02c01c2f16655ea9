"""One training step of a merged timeline as a Gantt chart per rank (matplotlib, PNG).

Each rank gets lanes: *forward* and *backward* of the leaf modules, *all-reduce* with one lane per
DDP bucket (from launch to the moment the rank saw it finished), *optimizer* and *data* (waiting
for the data loader). The overlap of backward and the all-reduces is what the picture shows.
"""
from __future__ import annotations

import colorsys
import zlib

__all__ = ["step_windows", "plot_step"]

_LANES = ("data", "forward", "backward", "all-reduce", "optimizer")


def step_windows(events: list, pid) -> list[tuple[float, float]]:
    """``(start, end)`` of each training step of rank ``pid``: from the end of one optimizer step (or
    the first event) to the end of the next."""
    timed = [e for e in events if e["pid"] == pid and e["ph"] == "X"]
    steps = sorted((e["ts"], e["ts"] + e["dur"]) for e in timed if e["cat"] == "optimizer")
    if not steps:
        return []
    first = min(e["ts"] for e in timed)
    # nested optimizer steps (ZeRO around its local optimizer) count once: keep outermost ends
    ends = sorted({end for start, end in steps if not any(s < start and end < e for s, e in steps)})
    return list(zip([first] + ends[:-1], ends))


def _color(name: str):
    hue = (zlib.crc32(name.encode()) % 360) / 360
    return colorsys.hls_to_rgb(hue, 0.55, 0.55)


def _lane(event: dict) -> str | None:
    category = event.get("cat")
    if category in ("forward", "backward"):  # the leaf modules: the work itself, not its containers
        return category if event.get("args", {}).get("leaf") else None
    return {"all_reduce": "all-reduce", "optimizer": "optimizer", "data": "data"}.get(category)


def plot_step(trace: dict, out: str, step: int = -1, title: str | None = None) -> str:
    """Draws step ``step`` (an index into rank 0's steps; -1: the last) of the merged ``trace`` to ``out``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    events = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    pids = sorted({e["pid"] for e in events})
    windows = step_windows(events, pids[0])
    if not windows:
        raise ValueError("the trace has no optimizer step to cut a training step from")
    start, end = windows[step]
    rows, labels = [], []  # (pid, lane, sub-lane)
    for pid in pids:
        buckets = sorted({e["tid"] for e in events if e["pid"] == pid and e["cat"] == "all_reduce"})
        for lane in _LANES:
            subs = buckets if lane == "all-reduce" else [None]
            for sub in subs:
                rows.append((pid, lane, sub))
                labels.append(f"rank {pid}  {lane}" + (f" bucket {buckets.index(sub)}" if sub is not None else ""))
    fig, ax = plt.subplots(figsize=(12, 0.32 * len(rows) + 1.6))
    named = set()
    for e in events:
        lane = _lane(e)
        if lane is None or e["ts"] + e["dur"] < start or e["ts"] > end:
            continue
        key = (e["pid"], lane, e["tid"] if lane == "all-reduce" else None)
        if key not in rows:
            continue
        y = len(rows) - 1 - rows.index(key)
        module = lane in ("forward", "backward")
        label = "one color per module" if module else lane
        color = _color(e["name"]) if module else {"all-reduce": "#d62728", "optimizer": "#2ca02c", "data": "#7f7f7f"}[lane]
        left, width = (e["ts"] - start) / 1e3, e["dur"] / 1e3
        ax.barh(y, width, left=left, height=0.7, color=color, edgecolor="black", linewidth=0.3,
                label=None if label in named else label)
        named.add(label)
        if module and width > 0.04 * (end - start) / 1e3:  # wide enough to carry its name
            ax.text(left + width / 2, y, e["name"].split(": ")[0], ha="center", va="center", fontsize=6)
    ax.set_yticks(range(len(rows)), labels[::-1], fontsize=8)
    ax.set_xlim(0, (end - start) / 1e3)
    ax.set_xlabel("time in the step (ms)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="upper left", fontsize=7, ncol=6)
    ax.set_title(title or f"step {step if step >= 0 else len(windows) + step} of {len(windows)}, {len(pids)} ranks")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
