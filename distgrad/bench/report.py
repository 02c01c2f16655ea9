"""``results.md``: the results folder's tables, for people (``results.json`` holds every figure)."""
from __future__ import annotations

import statistics

from distgrad.bench import ddp, scale, zero
from distgrad.bench.metrics import format_bytes

__all__ = ["markdown", "table"]

PHASE_COLUMNS = ("forward_ms", "backward_compute_ms", "comm_wait_ms", "optimizer_ms")


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "**NO**"
    if isinstance(value, float):
        size = abs(value)
        if size >= 100:
            return f"{value:,.0f}"
        if size >= 1 or size == 0:
            return f"{value:.2f}"
        return f"{value:.3g}"
    return str(value)


def table(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _pct(value) -> str | None:
    return None if value is None else f"{100 * value:.1f}%"


def _machine(results: dict) -> str:
    m = results["machine"]
    gpu = ", ".join(m.get("gpus") or []) or "none"
    facts = [("CPU", f"{m['cpu']} ({m['cpu_count']} logical cores, {m['memory_gib']} GiB)"), ("GPU", gpu),
             ("CUDA driver / runtime",
              f"{m.get('nvidia_driver') or m.get('cuda_driver') or '-'} / {m.get('cuda_runtime') or '-'}"),
             ("NCCL", m.get("nccl") or "-"), ("MPI", f"{m.get('mpi')} (mpi4py {m.get('mpi4py')})"),
             ("Python / NumPy / PyTorch", f"{m['python']} / {m['numpy']} / {m.get('torch') or '-'}"),
             ("distgrad", f"{m['distgrad']} at {m.get('distgrad_commit') or 'unknown commit'}"),
             ("threads per rank", str(m.get("threads_per_rank"))), ("OS", m["os"]),
             ("load average (1, 5, 15 min) at start / end",
              f"{m.get('load_average_at_start')} / {m.get('load_average_at_end')}")]
    return table(["", ""], [list(f) for f in facts])


def _allreduce(section: dict) -> str:
    rows = section["rows"]
    text = ["## All-reduce\n",
            "Sum of a buffer over all ranks. time: median of the calls of the slowest rank; algbw = bytes / time; "
            "busbw = algbw x 2(n-1)/n (nccl-tests). *correct*: the sum of a known pattern matched exactly.\n"]
    for note in section.get("skipped", []):
        text.append(f"- skipped: {note}\n")
    groups = {}
    for r in rows:
        groups.setdefault((r["backend"], r["device"], r["dtype"], r["world_size"], _algorithm(r)), []).append(r)
    for (backend, device, dtype, world, algorithm), group in groups.items():
        reference = "mpi4py_time_us" in group[0]
        headers = ["size", "calls", "time (us)", "algbw (GB/s)", "busbw (GB/s)"]
        headers += ["mpi4py time (us)", "mpi4py busbw (GB/s)"] if reference else []
        body = []
        for r in group:
            line = [format_bytes(r["bytes"]), r["calls"], r["time_us"], r["algbw_GBps"], r["busbw_GBps"]]
            line += [r["mpi4py_time_us"], r["mpi4py_busbw_GBps"]] if reference else []
            body.append(line + [r["correct"]])
        text += [f"\n### {backend}, {device}, {dtype}, {world} rank(s){algorithm}\n\n",
                 table(headers + ["correct"], body)]
    if section.get("incorrect"):
        text.append(f"\n**{section['incorrect']} result(s) were wrong.**\n")
    if section.get("hierarchical"):
        text.append(_hierarchical(section["hierarchical"]))
    return "".join(text)


def _algorithm(row: dict) -> str:
    if row.get("algorithm", "flat") == "flat":
        return ""
    per_node = row.get("ranks_per_node")
    return ", hierarchical" + (f" (nodes of {per_node} ranks)" if per_node else " (nodes: ranks sharing memory)")


def _hierarchical(entries: list) -> str:
    """Hierarchical against flat, measured and modelled (``scale.hierarchical_comparison``)."""
    body = [[e["world_size"], f"{e['nodes']} x {e['ranks_per_node']}", e["dtype"], format_bytes(e["bytes"]),
             e["flat_us"], e["hierarchical_us"], e["ratio"], e.get("model_flat_us"), e.get("model_hierarchical_us")]
            for e in entries]
    return ("\n### Hierarchical against flat\n\nModel: the flat ring with the link fitted at the world size; the "
            "hierarchical (leader) variant 2 T_ring(n, g) + T_ring(n, N) with the links fitted at g and at N ranks "
            "(`docs/scaling.md`).\n\n"
            + table(["ranks", "nodes x ranks", "dtype", "size", "flat (us)", "hierarchical (us)", "hierarchical / flat",
                     "model flat (us)", "model hierarchical (us)"], body))


def _ddp(section: dict) -> str:
    rows = section["rows"]
    text = ["## Data-parallel training steps (DDP)\n",
            "Per-rank batch fixed (weak) or global batch fixed (strong); efficiency = throughput(n) / (n x "
            "throughput(1)). Times are medians over steps of the slowest rank (ms); backward = backward compute "
            "+ comm wait. *hidden (net)*: (plain backward + all-reduces alone - DDP backward) / all-reduces alone; "
            "*hidden (wait)*: 1 - comm wait / all-reduces alone.\n\n"]
    body = []
    for mode in ("weak", "strong"):
        for r in ddp.scaling_rows(rows, mode):
            hidden_wait = None if not r.get("allreduce_ms") else 1 - r["comm_wait_ms"] / r["allreduce_ms"]
            body.append([r["model"], mode, r["world_size"], r["per_rank_batch"], r["step_ms"], r["samples_per_s"],
                         _pct(r["efficiency"]), *(r[c] for c in PHASE_COLUMNS), r["allreduce_ms"],
                         _pct(r["hidden_fraction"]), _pct(hidden_wait)])
    text.append(table(["model", "scaling", "ranks", "batch/rank", "step", "samples/s", "efficiency", "forward",
                       "backward compute", "comm wait", "optimizer", "all-reduces alone", "hidden (net)",
                       "hidden (wait)"], body))
    buckets = ddp.bucket_rows(rows)
    if buckets:
        text.append(f"\n### Bucket size ({buckets[0]['model']}, {buckets[0]['parameters'] / 1e6:.2f}M parameters, "
                    f"batch {buckets[0]['per_rank_batch']} per rank)\n\n")
        text.append(table(["ranks", "bucket_cap_mb", "buckets", "step", "backward", "comm wait", "all-reduces alone",
                           "hidden (net)"],
                          [[r["world_size"], f"{r['bucket_cap_mb']:g}", len(r["buckets"]), r["step_ms"],
                            r["backward_ms"], r["comm_wait_ms"], r["allreduce_ms"], _pct(r["hidden_fraction"])]
                           for r in buckets]))
    return "".join(text)


def _autograd(section: dict) -> str:
    return "".join([
        f"## Framework overhead ({section['device']})\n\n",
        table(["figure", "distgrad", "PyTorch", "bare arrays"], [
            ["W3: us per recorded op (forward + backward)", section["w3_distgrad_us_per_op"],
             section["w3_torch_us_per_op"], None],
            ["W1 training step (ms, batch 64)", section["step_distgrad_ms"], section["step_torch_ms"],
             section["step_bare_array_ms"]],
            ["W2 training step (ms, batch 64)", section["w2_step_distgrad_ms"], section["w2_step_torch_ms"], None]]),
        f"\ndistgrad's W1 step spends {section['step_overhead_ms']:.3f} ms "
        f"({_pct(section['step_overhead_fraction'])}) beyond the same arithmetic on bare arrays.\n"])


def _mnist(section: dict) -> str:
    s = section["settings"]
    body = [[r["world_size"], r["reached"], r["test_accuracy"], r["steps"], r["epochs"], r["train_seconds"]]
            for r in section["rows"]]
    return "".join([f"## Time to {100 * s['target']:g}% MNIST test accuracy ({s['model']}, batch {s['per_rank_batch']} "
                    f"per rank, lr {s['lr']}, evaluated every {s['eval_every']} steps)\n\n",
                    table(["ranks", "reached", "accuracy", "steps", "epochs", "training seconds"], body)])


def _zero(section: dict) -> str:
    s = section["settings"]
    text = [f"## ZeRO: optimizer-state memory (W9)\n\n{s['model']} ({s['parameters']:,} parameters), "
            f"{s['optimizer']}, batch {s['per_rank_batch']} per rank, {s['threads_per_rank']} thread(s) per rank, on "
            "the CPU. Bytes are the largest over the ranks: *optimizer state* (the local optimizer's state tensors), "
            "*of N=1* (over plain Adam's state on the smallest world, its framework's DDP), *gradients* (what `p.grad` "
            "holds after backward), *DDP buffers* (what distgrad's DDP keeps between steps: the buckets, and "
            "ZeRO-2's gradient shards, which its `p.grad` views). *step*: the median of "
            f"{s['steps']} steps of the slowest rank; *of DDP's*: over its framework's DDP + Adam at the same world "
            "size. Bytes are exact and repeat; times depend on the machine's load.\n\n"]
    for note in section.get("skipped", []):
        text.append(f"- skipped: {note}\n")
    body = [[r["world_size"], zero.LABELS[r["config"]], format_bytes(r["optimizer_state_bytes"]),
             f"{r['state_vs_plain_n1']:.3f}" if r["state_vs_plain_n1"] is not None else None,
             format_bytes(r["grad_bytes"]), None if r["bucket_bytes"] is None else format_bytes(r["bucket_bytes"]),
             r["step_ms"], r["step_vs_plain_ddp"]] for r in section["rows"]]
    text.append(table(["ranks", "configuration", "optimizer state per rank", "of N=1", "gradients", "DDP buffers",
                       "step (ms)", "of DDP's"], body))
    return "".join(text)


def _model(section: dict) -> str:
    text = ["## Model of scale\n\n"]
    if not section["fits"]:
        text.append("No all-reduce measurements in this run (run `all`, or pass `--from` a results folder): "
                    "the model is not validated here.\n")
    else:
        text.append(table(["ranks", "alpha (us)", "beta (GB/s)"],
                          [[w, f["alpha_us"], f["beta_GBps"]] for w, f in section["fits"].items()]))
        errors = [abs(r["error"]) for r in section["allreduce_validation"]]
        text.append(f"\nAll-reduce fit over {len(errors)} sizes: median |error| "
                    f"{100 * statistics.median(errors):.0f}%, largest {100 * max(errors):.0f}%.\n")
    if section["ddp_validation"]:
        text.append("\n### DDP steps measured here against the model\n\n"
                    "Predicted with the all-reduce fit, the measured bucket sizes and either the one-rank step at "
                    "the same batch per rank (*alone*) or the plain model's step measured on all ranks at once "
                    "(*loaded*: ranks sharing a machine slow each other down). *DDP extra*: DDP's backward beyond "
                    "the plain one, besides waiting (bucket copies, hooks), which the model leaves out.\n\n")
        variants = scale.VALIDATION_VARIANTS
        text.append(table(["model", "ranks", "batch/rank", "bucket_cap_mb", "measured (ms)"]
                          + [f"{label} (ms, error)" for label in variants.values()]
                          + ["DDP extra (ms)", "all-reduces alone measured / model (ms)"],
                          [[r["model"], r["world_size"], r["per_rank_batch"], f"{r['bucket_cap_mb']:g}",
                            r["measured_step_ms"]]
                           + [f"{_cell(r[f'predicted_{key}_ms'])} ({_pct(r[f'error_{key}'])})" for key in variants]
                           + [r["ddp_extra_backward_ms"],
                              f"{_cell(r['measured_allreduce_ms'])} / {_cell(r['predicted_allreduce_ms'])}"]
                           for r in section["ddp_validation"]]))
        text.append(_error_summary(section["ddp_validation"]))
    text.append("\n### Published anchors\n\n")
    text.append(table(["run", "model", "GPUs", "per-GPU step (s, assumed)", "network (assumed)", "published",
                       "predicted", "step (s) giving the published figure"],
                      [[a["name"], a["model"], a["gpus"], a["per_gpu_step_s"],
                        f"{a['gpus_per_node']}/node, {a['intra']} + {a['inter']}", _pct(a["published_efficiency"]),
                        _pct(a["predicted_efficiency"]), a["step_s_matching_published"]] for a in section["anchors"]]))
    gpus = section["settings"]["gpus"]
    for configuration in section["settings"]["configurations"]:
        text.append(f"\n### Predicted efficiency: {configuration}, {section['settings']['gpus_per_node']} GPUs per "
                    f"node, {section['settings']['intra']} inside nodes\n\n")
        cells = {}
        for r in section["predictions"]:
            if r["configuration"] == configuration:
                cells.setdefault((r["workload"], r["network"]), {})[r["gpus"]] = _pct(r["efficiency"])
        text.append(table(["workload", "network"] + [str(g) for g in gpus],
                          [[w, n] + [v.get(g) for g in gpus] for (w, n), v in cells.items()]))
    return "".join(text)


def _error_summary(rows: list[dict]) -> str:
    parts = []
    for key, label in scale.VALIDATION_VARIANTS.items():
        errors = [abs(r[f"error_{key}"]) for r in rows]
        parts.append(f"{label}: median |error| {100 * statistics.median(errors):.0f}%, "
                     f"largest {100 * max(errors):.0f}%")
    return f"\nOver {len(rows)} DDP points: " + "; ".join(parts) + ".\n"


RENDERERS = {"allreduce": _allreduce, "ddp": _ddp, "autograd": _autograd, "mnist": _mnist, "zero": _zero,
             "model": _model}


def markdown(results: dict) -> str:
    parts = [f"# distgrad-bench results\n\n`{results['command']}`, started {results['started']}, "
             f"{results['seconds']:.0f} s.\n\n", _machine(results)]
    for name, render in RENDERERS.items():
        section = results.get(name)
        if section is None:
            continue
        parts.append("\n")
        parts.append(f"## {name}\n\nfailed: `{section['error'][-500:]}`\n" if "error" in section else render(section))
    for plot in results.get("plots", []):
        parts.append(f"\n![{plot}]({plot})\n")
    return "".join(parts)
