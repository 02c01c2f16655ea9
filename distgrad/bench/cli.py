"""``distgrad-bench``: scaling benchmarks that write a results folder (JSON, Markdown, PNG plots).

    distgrad-bench all --ranks 1,2                   # everything below, on 1 and 2 ranks
    distgrad-bench allreduce --ranks 2 --max-bytes 64M
    distgrad-bench allreduce --ranks 2,4 --algorithm flat,hierarchical --ranks-per-node 2
    distgrad-bench ddp --ranks 1,2,4 --models synthetic --params 25M
    distgrad-bench autograd
    distgrad-bench mnist --ranks 1,2 --target 0.97
    distgrad-bench zero --ranks 1,2,3                # W9: ZeRO's optimizer-state bytes per rank, step times
    distgrad-bench model --from results/2026-11-30T12-00-00 --networks ib200,eth100
    distgrad-bench model --params 25.6M --compute-ms 100    # a model and network you describe
    distgrad-bench summary sweep/nodes-*  --out sweep      # one table and plot across results folders

Subcommands that need several ranks start them (mpiexec here, srun inside a SLURM allocation) and
collect rank 0's results; docs/scaling.md explains every figure and the model.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys

from distgrad.bench.metrics import parse_bytes, parse_count
from distgrad.bench.threads import default_threads_per_rank

ORDER = ("allreduce", "ddp", "autograd", "mnist", "zero", "model")


def _int_list(text: str) -> list[int]:
    """``'1,2,4'`` -> [1, 2, 4], sorted, each value once."""
    try:
        values = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        values = []
    if not values or values[0] < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers separated by commas, got {text!r}")
    return values


def _names(choices):
    def parse(text: str) -> list[str]:
        names = [v.strip() for v in text.split(",") if v.strip()]
        unknown = [n for n in names if n not in choices]
        if unknown or not names:
            raise argparse.ArgumentTypeError(f"unknown {', '.join(unknown) or 'empty list'}; choose from "
                                             f"{', '.join(choices)}")
        return names
    return parse


def _batches(text: str) -> dict:
    """``mlp=64,synthetic=16`` -> {'mlp': 64, 'synthetic': 16}."""
    try:
        return {name.strip(): int(value) for name, value in (item.split("=") for item in text.split(","))}
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MODEL=BATCH pairs separated by commas, got {text!r}") from None


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


def _common(p) -> None:
    from distgrad import backend
    g = p.add_argument_group("every subcommand")
    g.add_argument("--out", help="results folder (default: results/<timestamp>)")
    g.add_argument("--ranks", type=_int_list, default=[1, 2], help="world sizes, e.g. 1,2,4 (default 1,2)")
    g.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if backend.cuda_is_available() else "cpu")
    g.add_argument("--backend", choices=("auto", "mpi", "nccl"), default="auto",
                   help="process group backend of ddp and mnist (allreduce: --backends)")
    g.add_argument("--threads-per-rank", type=int, help="OMP/BLAS threads of every rank (default: "
                   "$SLURM_CPUS_PER_TASK in an allocation, else cores / largest world size)")
    g.add_argument("--quiet", action="store_true", help="no progress output")


def _allreduce_options(p) -> None:
    g = p.add_argument_group("allreduce")
    g.add_argument("--min-bytes", type=parse_bytes, default=4, help="smallest message (default 4)")
    g.add_argument("--max-bytes", type=parse_bytes, default=256 << 20, help="largest message (default 256M)")
    g.add_argument("--step-factor", type=int, default=2, help="size multiplier between messages (default 2)")
    g.add_argument("--dtypes", type=_names(("float16", "float32", "float64", "int32", "int64")), default=["float32"])
    g.add_argument("--backends", type=_names(("mpi", "nccl")), help="default: mpi, and nccl where available")
    g.add_argument("--iters", type=int, default=20, help="most timed calls per size (default 20)")
    g.add_argument("--min-iters", type=int, default=3, help="fewest timed calls per size (default 3)")
    g.add_argument("--warmup-iters", type=int, default=2)
    g.add_argument("--seconds-per-size", type=float, default=0.5, help="time budget that sets the calls per size")
    g.add_argument("--algorithm", type=_names(("flat", "hierarchical")), default=["flat"],
                   help="flat (one all-reduce over all ranks) and/or hierarchical (reduce in each node, all-reduce "
                        "among the nodes' leaders, broadcast in the node); default flat")
    g.add_argument("--ranks-per-node", type=int, help="hierarchical: nodes of this many consecutive ranks (to play "
                   "several nodes on one machine); default: the ranks that share memory")


def _ddp_options(p) -> None:
    from distgrad.bench.workloads import MODEL_NAMES
    g = p.add_argument_group("ddp")
    g.add_argument("--models", type=_names(MODEL_NAMES), default=list(MODEL_NAMES))
    g.add_argument("--batch", type=_batches, help="per-rank batches of weak scaling, e.g. mlp=64,synthetic=16 "
                   "(default mlp=64,cnn=64,synthetic=32)")
    g.add_argument("--scaling", type=_names(("strong", "weak")), default=["strong", "weak"])
    g.add_argument("--bucket-caps", type=_floats, default=[1.0, 4.0, 100.0],
                   help="bucket_cap_mb values to compare on the synthetic model (25 is always run)")
    g.add_argument("--steps", type=int, default=10, help="timed steps per configuration (default 10)")
    g.add_argument("--warmup-steps", type=int, default=3)
    g.add_argument("--repeats", type=int, default=3, help="runs of every configuration in fresh processes; "
                   "the run with the median step time is reported (default 3)")


def _autograd_options(p) -> None:
    g = p.add_argument_group("autograd")
    g.add_argument("--w3-reps", type=int, default=20, help="W3 repetitions (default 20)")
    g.add_argument("--step-reps", type=int, default=50, help="timed W1 steps per framework (default 50)")
    g.add_argument("--w2-reps", type=int, default=10, help="timed W2 (CNN) steps per framework (default 10)")


def _mnist_options(p) -> None:
    g = p.add_argument_group("mnist")
    g.add_argument("--target", type=float, default=0.95, help="test accuracy to reach (default 0.95)")
    g.add_argument("--mnist-model", choices=("mlp", "cnn"), default="mlp")
    g.add_argument("--max-epochs", type=int, default=3)
    g.add_argument("--eval-every", type=int, default=50, help="steps between evaluations (default 50)")
    g.add_argument("--lr", type=float, default=0.01)
    g.add_argument("--batch-size", type=int, default=64, help="per rank (default 64)")
    g.add_argument("--data-dir", help="folder holding mnist/ (default $DISTGRAD_DATA, then ~/.cache/distgrad)")


def _zero_options(p) -> None:
    from distgrad.bench import zero
    g = p.add_argument_group("zero")
    g.add_argument("--zero-configs", type=_names(zero.CONFIGS), default=list(zero.CONFIGS),
                   help="configurations (default all; PyTorch's are left out where it is not installed)")
    g.add_argument("--zero-width", type=int, default=zero.W9["width"], help="the MLP's inputs and hidden width "
                   f"(default {zero.W9['width']}, W9)")
    g.add_argument("--zero-layers", type=int, default=zero.W9["layers"],
                   help=f"hidden width x width layers (default {zero.W9['layers']}, W9: 25.2M parameters)")
    g.add_argument("--zero-batch", type=int, default=zero.W9["batch"], help="per rank (default 32)")
    g.add_argument("--zero-steps", type=int, default=5, help="timed steps per configuration (default 5)")
    g.add_argument("--zero-warmup", type=int, default=2)


def _model_options(p) -> None:
    from distgrad.bench.costmodel import PRESETS
    from distgrad.bench.scale import GPU_COUNTS
    g = p.add_argument_group("model")
    g.add_argument("--from", dest="from_dir", help="results folder whose allreduce and ddp measurements to use")
    g.add_argument("--compute-ms", type=float, help="a workload of --params parameters with this single-device "
                   "forward+backward time (backward taken as 2/3 of it)")
    g.add_argument("--optimizer-ms", type=float, default=0.0)
    g.add_argument("--dtype-bytes", type=int, default=4, help="bytes per gradient value (default 4)")
    g.add_argument("--networks", type=_names(tuple(PRESETS)), default=["ib100", "ib200", "ib400", "eth25", "eth100"],
                   help=f"inter-node presets: {', '.join(PRESETS)}")
    g.add_argument("--intra", choices=tuple(PRESETS), default="nvlink", help="link inside a node (default nvlink)")
    g.add_argument("--alpha-us", type=float, help="a network of your own: latency in microseconds ...")
    g.add_argument("--beta-GBps", type=float, help="... and bandwidth per node in GB/s")
    g.add_argument("--gpus-per-node", type=int, default=8)
    g.add_argument("--gpus", type=_int_list, default=list(GPU_COUNTS))


OPTIONS = {"allreduce": _allreduce_options, "ddp": _ddp_options, "autograd": _autograd_options,
           "mnist": _mnist_options, "zero": _zero_options, "model": _model_options}
HELP = {"allreduce": "all-reduce time, algbw and busbw from 4 B to 256 MiB, every result checked",
        "ddp": "DDP strong and weak scaling, time split, overlap, bucket sizes",
        "autograd": "engine overhead per op (W3) and per training step beside bare arrays",
        "mnist": "time to a target test accuracy on 1..N ranks",
        "zero": "W9: optimizer-state bytes per rank and step time of ZeRO-1/2 against DDP (and PyTorch's)",
        "model": "alpha-beta model: validated here, compared with published runs, predicted to 1024 GPUs",
        "all": "every subcommand above, into one results folder"}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="distgrad-bench", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.splitlines()[2:]))
    sub = p.add_subparsers(dest="command", required=True)
    for name in ORDER + ("all",):
        s = sub.add_parser(name, help=HELP[name], description=HELP[name])
        _common(s)
        sections = ORDER if name == "all" else (name,)
        for section in sections:
            OPTIONS[section](s)
        if {"ddp", "model"} & set(sections):
            s.add_argument("--params", type=parse_count, default=25_000_000,
                           help="parameters of ddp's synthetic model and of model's --compute-ms workload (25M)")
        if name == "all":
            s.add_argument("--skip", type=_names(ORDER), default=[], help="sections to leave out, e.g. mnist")
    s = sub.add_parser("summary", help="one table and plot across results folders (a SLURM sweep)")
    s.add_argument("folders", nargs="+", help="results folders, each holding results.json")
    s.add_argument("--out", required=True, help="where summary.md and summary.png go")
    args = p.parse_args(argv)
    if args.command != "summary" and args.threads_per_rank is None:
        args.threads_per_rank = default_threads_per_rank(max(args.ranks))
    return args


def run(args, argv) -> tuple[dict, str]:
    """Runs the subcommand's sections; returns the results and the folder they were written to."""
    from distgrad.bench import plots, report
    from distgrad.bench.machine import load_average, machine_facts
    from distgrad.bench.sections import SECTIONS
    started = datetime.datetime.now()
    out = args.out or os.path.join("results", started.strftime("%Y-%m-%dT%H-%M-%S"))
    os.makedirs(out, exist_ok=True)
    results = {"command": "distgrad-bench " + " ".join(argv), "started": started.isoformat(timespec="seconds"),
               "machine": machine_facts(),
               "settings": {"ranks": args.ranks, "device": args.device, "backend": args.backend,
                            "threads_per_rank": args.threads_per_rank}}
    results["machine"]["threads_per_rank"] = args.threads_per_rank
    sections = [s for s in ORDER if s not in args.skip] if args.command == "all" else [args.command]
    for section in sections:
        try:
            results[section] = SECTIONS[section](args, results)
        except (RuntimeError, OSError, ValueError) as e:
            if args.command != "all":
                raise
            results[section] = {"error": str(e)}  # `all` goes on with the other sections
            print(f"distgrad-bench: {section} failed: {str(e)[-2000:]}", file=sys.stderr)
    results["seconds"] = (datetime.datetime.now() - started).total_seconds()
    results["machine"]["load_average_at_end"] = load_average()
    results["plots"] = plots.write_all(results, out)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(report.markdown(results))
    return results, out


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.command == "summary":
        from distgrad.bench import summary
        print(summary.write(args.folders, args.out))
        return 0
    results, out = run(args, argv)
    print(f"distgrad-bench: results in {out} ({results['seconds']:.0f} s)")
    failed = [name for name in ORDER if isinstance(results.get(name), dict) and "error" in results[name]]
    incorrect = results.get("allreduce", {}).get("incorrect", 0)
    if incorrect:
        print(f"distgrad-bench: {incorrect} all-reduce result(s) were WRONG; see results.md", file=sys.stderr)
    return 1 if failed or incorrect else 0


if __name__ == "__main__":
    sys.exit(main())
