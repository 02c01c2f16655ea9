"""Chrome traces of ranks: checking them against the trace-event format, and merging them into one.

The format (the "Trace Event Format" document that ``chrome://tracing`` and Perfetto read): a JSON
object with a ``traceEvents`` list; every event has ``name``, ``ph`` (phase), ``pid`` and ``tid``;
timed events have ``ts`` in microseconds; complete events (``"X"``) a ``dur``; ``"B"``/``"E"`` pairs
must balance per thread; metadata (``"M"``) names processes and threads.
"""
from __future__ import annotations

import glob
import json
import os

__all__ = ["validate_trace", "merge_traces", "merge_folder", "load"]

_PHASES = {"X", "B", "E", "M", "i", "I", "C", "b", "e", "n", "s", "t", "f"}


def validate_trace(trace: dict) -> list[str]:
    """The ways ``trace`` breaks the trace-event format (empty when it is valid)."""
    problems = []
    events = trace.get("traceEvents") if isinstance(trace, dict) else None
    if not isinstance(events, list):
        return ["no 'traceEvents' list"]
    open_ranges: dict[tuple, list] = {}
    for i, event in enumerate(events):
        missing = [key for key in ("name", "ph", "pid", "tid") if key not in event]
        if missing:
            problems.append(f"event {i} lacks {missing}: {event}")
            continue
        ph = event["ph"]
        if ph not in _PHASES:
            problems.append(f"event {i} has an unknown phase {ph!r}")
        if ph != "M" and not isinstance(event.get("ts"), (int, float)):
            problems.append(f"event {i} ({event['name']}) has no numeric 'ts'")
        if ph == "X" and not (isinstance(event.get("dur"), (int, float)) and event["dur"] >= 0):
            problems.append(f"complete event {i} ({event['name']}) needs a 'dur' >= 0")
        if ph == "B":
            open_ranges.setdefault((event["pid"], event["tid"]), []).append(event["name"])
        elif ph == "E" and not open_ranges.get((event["pid"], event["tid"])):
            problems.append(f"event {i}: 'E' without a 'B' on pid {event['pid']} tid {event['tid']}")
        elif ph == "E":
            open_ranges[(event["pid"], event["tid"])].pop()
    problems += [f"'B' events never ended on pid {pid} tid {tid}: {names}"
                 for (pid, tid), names in open_ranges.items() if names]
    return problems


def load(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def merge_traces(traces: list[dict], align: bool = True) -> dict:
    """One trace of several ranks' traces (each keeps its ``pid``: one process per rank). With
    ``align`` the times start at 0 (the earliest event of any rank), in the same clock for all."""
    events = [event for trace in traces for event in trace["traceEvents"]]
    pids = [event["pid"] for event in events if event["ph"] == "M" and event["name"] == "process_name"]
    if len(pids) != len(set(pids)):
        raise ValueError(f"two traces name the same process (pids {sorted(pids)}): merge one trace per rank")
    if align:
        origin = min((event["ts"] for event in events if event["ph"] != "M"), default=0.0)
        events = [event if event["ph"] == "M" else {**event, "ts": event["ts"] - origin} for event in events]
    return {"traceEvents": events, "displayTimeUnit": "ms",
            "otherData": {"ranks": sorted(pids), "clock": "microseconds since the earliest event"}}


def merge_folder(folder: str, output: str | None = None) -> dict:
    """Merges every ``timeline-*.json`` of ``folder``; writes the result to ``output`` when given."""
    paths = sorted(glob.glob(os.path.join(folder, "timeline-*.json")))
    if not paths:
        raise FileNotFoundError(f"no timeline-*.json in {folder}")
    traces = []
    for path in paths:
        trace = load(path)
        problems = validate_trace(trace)
        if problems:
            raise ValueError(f"{path} is not a valid trace: {problems[:3]}")
        traces.append(trace)
    merged = merge_traces(traces)
    if output is not None:
        with open(output, "w") as f:
            json.dump(merged, f)
    return merged
