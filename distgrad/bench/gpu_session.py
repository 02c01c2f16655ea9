"""The summary of one GPU session (``benchmarks/gpu_session.sh``): the benchmark lines it logged, read back
into ``summary.json`` (keys ``gpu``, ``date``, ``commit``, ``W1_ratio``, ``W2_ratio``, ``W3_ratio``,
``W3_graphed_ratio``, ``W7_ratio``, ``W7_mfu``, and what else ran) and a Markdown table beside it.

Each benchmark prints one JSON line; a missing or failed one gives null figures and its status, so a
session cut short still writes what it measured. Ratios are distgrad's time over PyTorch's, same run.
MFU (W7) is model FLOPs per second over the GPU's dense peak for the precision used: model FLOPs per
token 6 N + 12 L d T (N parameters, L layers, width d, context T: PaLM's estimate, as nanoGPT's).

Usage: python -m distgrad.bench.gpu_session LOGS_DIR OUT_DIR --name NAME [--gpu NAME --commit SHA]
"""
from __future__ import annotations

import argparse
import datetime
import json
import os

# Dense peak FLOP/s by GPU (substring of its name) and precision: NVIDIA's data sheets (SXM boards; the PCIe
# H100 is slower). "float32" is FP32 on CUDA cores: distgrad's and PyTorch's default (TF32 off for matmul).
PEAK_FLOPS = {
    "H100 PCIe": {"float32": 51.2e12, "tf32": 378e12, "bfloat16": 756e12},
    "H100": {"float32": 66.9e12, "tf32": 494.7e12, "bfloat16": 989.4e12},
    "H200": {"float32": 66.9e12, "tf32": 494.7e12, "bfloat16": 989.4e12},
    "A100": {"float32": 19.5e12, "tf32": 156e12, "bfloat16": 312e12},
}
# What each benchmark wrote (file name in LOGS_DIR) and where its ratio is.
SOURCES = {
    "W1": ("w1.json", "epoch_time_ratio_distgrad_over_torch"),
    "W2": ("w2.json", "step_time_ratio_distgrad_over_torch"),
    "W3": ("w3.json", "ratio_distgrad_over_torch"),
    "W3_graphed": ("graphs.json", "w3_graphed_ratio"),
    "W7": ("w7.json", "step_time_ratio_distgrad_over_torch"),
}


def read_line(path: str) -> dict | None:
    """The last JSON object printed in ``path`` (a benchmark's log), or None."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    return None


def peak_flops(gpu: str | None, precision: str) -> float | None:
    for name, peaks in PEAK_FLOPS.items():  # "H100 PCIe" is listed before "H100"
        if gpu and name in gpu:
            return peaks.get(precision)
    return None


def gpt_flops_per_token(n_layer: int, n_embd: int, block_size: int, vocab_size: int) -> float:
    """6 N + 12 L d T, N counted as the GPT of ``distgrad/bench/gpt.py`` has them (no biases: 12 d^2 per block,
    token and position embeddings, an untied head, the LayerNorms' weights)."""
    params = n_layer * (12 * n_embd**2 + 2 * n_embd) + vocab_size * n_embd * 2 + block_size * n_embd + n_embd
    return 6 * params + 12 * n_layer * n_embd * block_size


def w7_mfu(line: dict | None, gpu: str | None) -> float | None:
    """MFU of distgrad's W7 step in ``line`` (gpt_step.py's JSON) on ``gpu``."""
    if not line or not line.get("distgrad"):
        return None
    from distgrad.bench.gpt import preset
    config, recipe = preset(line.get("preset", "full"), line.get("vocab_size", 84))
    precision = "bfloat16" if line.get("dtype") == "bfloat16" else "float32"
    peak = peak_flops(gpu, precision)
    if peak is None:
        return None
    tokens_per_s = line["distgrad"]["tokens_per_s"]
    per_token = gpt_flops_per_token(config.n_layer, config.n_embd, config.block_size, config.vocab_size)
    return round(tokens_per_s * per_token / peak, 4)


def summarize(logs: str, name: str, gpu: str | None = None, commit: str | None = None, date: str | None = None) -> dict:
    """The session's summary from the logs in ``logs`` (``status.txt``: one 'part rc' line per part)."""
    summary = {"name": name, "gpu": gpu, "date": date or datetime.date.today().isoformat(), "commit": commit}
    lines = {}
    for key, (file, field) in SOURCES.items():
        lines[key] = read_line(os.path.join(logs, file))
        summary[f"{key}_ratio"] = None if lines[key] is None else lines[key].get(field)
    summary["W7_mfu"] = w7_mfu(lines["W7"], gpu)
    graphs = lines["W3_graphed"] or {}
    summary["W1_graphed_speedup"] = graphs.get("w1_graphed_speedup")
    ddp = read_line(os.path.join(logs, "graphs_ddp_nccl.json")) or {}
    summary["W1_ddp_graphed_speedup"] = ddp.get("w1_graphed_speedup")
    amp = read_line(os.path.join(logs, "w8.json"))
    if amp is not None:
        summary["W8"] = {k: v for k, v in amp.items() if "ratio" in k or "loss" in k}
    tests = os.path.join(logs, "tests.log")
    summary["cuda_tests"] = _pytest_tail(tests)
    summary["parts"] = _statuses(os.path.join(logs, "status.txt"))
    return summary


def _pytest_tail(path: str) -> str | None:
    """pytest's last line ('N passed, M failed in S s'), or None."""
    try:
        with open(path) as f:
            lines = [line.strip() for line in f if line.strip()]
    except OSError:
        return None
    found = [line for line in lines if any(word in line for word in (" passed", " failed", " error", " collected"))]
    return found[-1].strip("= ") if found else None


def _statuses(path: str) -> dict:
    try:
        with open(path) as f:
            pairs = [line.split() for line in f if line.strip()]
    except OSError:
        return {}
    return {part: ("ok" if rc == "0" else "timed out" if rc in ("124", "137") else f"exit {rc}") for part, rc in pairs}


TARGETS = {"W1_ratio": "<= 0.9", "W2_ratio": "<= 1.0", "W3_ratio": "<= 1.5", "W3_graphed_ratio": "<= 0.3",
           "W7_ratio": "<= 1.0", "W7_mfu": "reported", "W1_graphed_speedup": "-",
           "W1_ddp_graphed_speedup": ">= 2"}


def markdown(summary: dict) -> str:
    """A table of the figures and the parts' statuses."""
    rows = [f"# GPU session {summary['name']}: {summary['gpu']}, {summary['date']}, commit {summary['commit']}", "",
            "| figure | value | target |", "|---|---|---|"]
    for key, target in TARGETS.items():
        value = summary.get(key)
        rows.append(f"| {key} | {'—' if value is None else value} | {target} |")
    for key, value in (summary.get("W8") or {}).items():
        rows.append(f"| W8 {key} | {value} | - |")
    rows += ["", f"CUDA tests: {summary.get('cuda_tests') or 'no result'}", "", "| part | status |", "|---|---|"]
    rows += [f"| {part} | {status} |" for part, status in summary.get("parts", {}).items()]
    return "\n".join(rows) + "\n"


def write(summary: dict, out: str) -> None:
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
        f.write("\n")
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(markdown(summary))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description="summary.json and summary.md of a GPU session's logs")
    p.add_argument("logs")
    p.add_argument("out")
    p.add_argument("--name", required=True)
    p.add_argument("--gpu")
    p.add_argument("--commit")
    args = p.parse_args(argv)
    summary = summarize(args.logs, args.name, args.gpu, args.commit)
    write(summary, args.out)
    print(markdown(summary))


if __name__ == "__main__":
    main()
