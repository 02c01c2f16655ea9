"""Each subcommand's run: what it asks of the ranks, and the section of ``results.json`` it returns."""
from __future__ import annotations

import json
import os

from distgrad import envvars
from distgrad.bench import ddp, scale, zero
from distgrad.bench.allreduce import message_sizes
from distgrad.bench.costmodel import PRESETS, Link, StepCompute
from distgrad.bench.progress import Progress
from distgrad.bench.ranks import run_task

__all__ = ["SECTIONS", "run_allreduce", "run_ddp", "run_autograd", "run_mnist", "run_zero", "run_model"]


def _progress(args, total: int, description: str) -> Progress:
    return Progress(total, description, enabled=not args.quiet)


def run_allreduce(args, results: dict) -> dict:
    from distgrad import backend
    from distgrad.distributed import is_nccl_available
    sizes = message_sizes(args.min_bytes, args.max_bytes, args.step_factor)
    backends = args.backends or (["mpi", "nccl"] if is_nccl_available() else ["mpi"])
    rows, skipped = [], []
    runs = []
    for name in backends:
        device = "cuda" if name == "nccl" else args.device
        for world in args.ranks:
            if name == "nccl" and world > backend.cuda_device_count():
                skipped.append(f"nccl on {world} ranks: NCCL needs a GPU per rank, CuPy sees "
                               f"{backend.cuda_device_count()}")
                continue
            runs.append((name, device, world))
    with _progress(args, len(runs) * len(sizes) * len(args.dtypes) * len(args.algorithm), "allreduce") as bar:
        for name, device, world in runs:
            params = {"backend": name, "device": device, "dtypes": args.dtypes, "sizes": sizes,
                      "warmup": args.warmup_iters, "reps": args.iters, "min_reps": args.min_iters,
                      "seconds_per_size": args.seconds_per_size, "algorithms": args.algorithm,
                      "ranks_per_node": args.ranks_per_node}
            rows += run_task("allreduce", params, world, args.threads_per_rank, bar.advance)["rows"]
    incorrect = [r for r in rows if not r["correct"]]
    return {"rows": rows, "skipped": skipped, "incorrect": len(incorrect),
            "hierarchical": scale.hierarchical_comparison(rows) if "hierarchical" in args.algorithm else [],
            "settings": {"sizes": [sizes[0], sizes[-1]], "step_factor": args.step_factor, "dtypes": args.dtypes,
                         "algorithms": args.algorithm, "ranks_per_node": args.ranks_per_node,
                         "backends": backends, "warmup_iters": args.warmup_iters, "iters": args.iters,
                         "min_iters": args.min_iters, "seconds_per_size": args.seconds_per_size}}


def _ddp_models(args) -> dict:
    batches = {"mlp": 64, "cnn": 64, "synthetic": 32}
    batches.update(args.batch or {})
    return {name: {"batch": batches[name], **({"params": args.params} if name == "synthetic" else {})}
            for name in args.models}


def run_ddp(args, results: dict) -> dict:
    models = _ddp_models(args)
    bucket_model = "synthetic" if "synthetic" in models else args.models[0]
    caps = sorted(set(args.bucket_caps) | {ddp.DEFAULT_BUCKET_CAP_MB})
    configs = ddp.plan(models, args.ranks, args.scaling, caps, bucket_model)
    runs = {world: [] for world in configs}  # world size -> one list of rows per repeat
    with _progress(args, args.repeats * sum(len(c) for c in configs.values()), "ddp") as bar:
        for _ in range(args.repeats):  # repeats take turns with world sizes, so that a busy spell hits all alike
            for world, world_configs in configs.items():
                params = {"backend": args.backend, "device": args.device, "steps": args.steps,
                          "warmup": args.warmup_steps, "configs": world_configs}
                runs[world].append(run_task("ddp", params, world, args.threads_per_rank, bar.advance)["rows"])
    rows = [ddp.median_run([repeat[i] for repeat in world_runs])
            for world_runs in runs.values() for i in range(len(world_runs[0]))]
    return {"rows": rows, "settings": {"models": models, "scaling": args.scaling, "bucket_caps_mb": caps,
                                       "bucket_model": bucket_model, "steps": args.steps,
                                       "warmup_steps": args.warmup_steps, "repeats": args.repeats}}


def run_autograd(args, results: dict) -> dict:
    with _progress(args, 3, "autograd") as bar:
        return run_task("autograd", {"device": args.device, "reps": args.w3_reps, "steps": args.step_reps,
                                     "w2_reps": args.w2_reps}, None, args.threads_per_rank, bar.advance)


def run_mnist(args, results: dict) -> dict:
    data_dir = args.data_dir or os.environ.get(envvars.DATA_ROOT)
    rows = []
    with _progress(args, len(args.ranks), "mnist") as bar:
        for world in args.ranks:
            params = {"backend": args.backend, "device": args.device, "data_dir": data_dir, "model": args.mnist_model,
                      "seed": 0, "lr": args.lr, "batch": args.batch_size, "target": args.target,
                      "max_epochs": args.max_epochs, "eval_every": args.eval_every}
            rows.append(run_task("mnist", params, world, args.threads_per_rank, bar.note))
            bar.advance(f"{world} rank(s) done")
    return {"rows": rows, "settings": {"target": args.target, "model": args.mnist_model, "lr": args.lr,
                                       "per_rank_batch": args.batch_size, "eval_every": args.eval_every}}


def run_zero(args, results: dict) -> dict:
    configs, _ = zero.runnable_configs(args.zero_configs)
    with _progress(args, len(args.ranks) * len(configs), "zero") as bar:
        return zero.measure(args.ranks, args.threads_per_rank, args.zero_configs, args.zero_width, args.zero_layers,
                            args.zero_batch, args.zero_steps, args.zero_warmup, bar.advance)


def _networks(args, fits: dict) -> dict:
    intra = PRESETS[args.intra]
    networks = {name: (intra, PRESETS[name]) for name in args.networks}
    if args.alpha_us is not None and args.beta_GBps is not None:
        networks["given"] = (intra, Link.from_units(args.alpha_us, args.beta_GBps, "given on the command line"))
    if fits:
        measured = fits[max(fits)]
        networks["measured here"] = (measured, measured)
    return networks


def run_model(args, results: dict) -> dict:
    measured = dict(results)
    if getattr(args, "from_dir", None):
        with open(os.path.join(args.from_dir, "results.json")) as f:
            measured = {**json.load(f), **{k: v for k, v in results.items() if k in ("allreduce", "ddp")}}
    allreduce_rows = measured.get("allreduce", {}).get("rows", [])
    ddp_rows = measured.get("ddp", {}).get("rows", [])
    fits = scale.fit_networks(allreduce_rows)
    workloads = scale.measured_workloads(ddp_rows)
    if args.compute_ms is not None:
        compute = StepCompute.from_total(args.compute_ms / 1e3, optimizer_s=args.optimizer_ms / 1e3)
        name = f"given: {args.params / 1e6:.1f}M params, {args.compute_ms:g} ms per step"
        workloads[name] = {"compute": compute, "grad_bytes": args.dtype_bytes * args.params}
    networks = _networks(args, fits)
    return {
        "fits": {str(w): _link_dict(link) for w, link in fits.items()},
        "allreduce_validation": scale.validate_allreduce(allreduce_rows, fits),
        "ddp_validation": scale.validate_ddp(ddp_rows, fits),
        "anchors": scale.anchor_rows(),
        "networks": {name: {"intra": _link_dict(intra), "inter": _link_dict(inter)}
                     for name, (intra, inter) in networks.items()},
        "workloads": {name: {"forward_ms": w["compute"].forward_s * 1e3, "backward_ms": w["compute"].backward_s * 1e3,
                             "optimizer_ms": w["compute"].optimizer_s * 1e3, "grad_bytes": w["grad_bytes"]}
                      for name, w in workloads.items()},
        "predictions": scale.prediction_rows(workloads, networks, args.gpus_per_node, args.gpus),
        "settings": {"gpus_per_node": args.gpus_per_node, "gpus": args.gpus, "intra": args.intra,
                     "configurations": [config["label"] for config in scale.CONFIGURATIONS]},
    }


def _link_dict(link: Link) -> dict:
    return {"alpha_us": link.alpha_s * 1e6, "beta_GBps": link.beta_Bps / 1e9, "description": link.description}


SECTIONS = {"allreduce": run_allreduce, "ddp": run_ddp, "autograd": run_autograd, "mnist": run_mnist,
            "zero": run_zero, "model": run_model}
