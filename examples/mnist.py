"""Train an MLP or a CNN on MNIST — on the CPU, one GPU, or N ranks under mpiexec/distgrad-launch.

    python examples/mnist.py --model mlp --epochs 10                      # one process
    distgrad-launch -n 2 examples/mnist.py --model mlp --epochs 1         # two ranks, data parallel
    distgrad-launch -n 2 --max-restarts 3 examples/mnist.py --epochs 5 \
        --checkpoint runs/mnist.ckpt --checkpoint-every 200 --resume      # survives a failing rank
    python examples/mnist.py --model cnn --amp bf16                       # mixed precision (autocast)

Each rank trains on its shard of every global batch (``--batch-size`` is per rank) and gradients
are averaged across ranks, so N ranks with batch b follow one process with batch N*b. With
``--resume`` (or when ``distgrad-launch`` restarts the job) training continues from the checkpoint,
mid-epoch included, or starts fresh when there is none yet (``distgrad.checkpoint``). ``--amp bf16``
runs forward and loss under ``autocast`` in bfloat16, ``--amp fp16`` in float16 with a ``GradScaler``
(``docs/amp.md``); the parameters and the optimizer stay float32.
"""
from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import sys
import time

import distgrad as dg
import distgrad.checkpoint as ckpt
import distgrad.distributed as dist
import distgrad.nn.functional as F
from distgrad import nn
from distgrad.data import MNIST, DataLoader, DatasetNotFoundError, TensorDataset
from distgrad.distributed import DistributedDataParallel, DistributedSampler


def mlp() -> nn.Module:
    """Workload W1: 784-512-512-10 with ReLU."""
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                         nn.Linear(512, 10))


def cnn() -> nn.Module:
    """Workload W2: two 3x3 convolutions, max-pool, two linear layers."""
    return nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(9216, 128), nn.ReLU(), nn.Linear(128, 10))


MODELS = {"mlp": mlp, "cnn": cnn}
AMP_DTYPES = {"bf16": dg.bfloat16, "fp16": dg.float16}
OPTIMIZERS = {
    "sgd": lambda params, a: dg.optim.SGD(params, lr=a.lr, momentum=a.momentum),
    "adam": lambda params, a: dg.optim.Adam(params, lr=a.lr),
    "adamw": lambda params, a: dg.optim.AdamW(params, lr=a.lr),
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=sorted(MODELS), default="mlp")
    p.add_argument("--device", default="cuda" if dg.cuda.is_available() else "cpu", help="cpu or cuda")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=64, help="per rank")
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="sgd")
    p.add_argument("--schedule", choices=["constant", "cosine"], default="constant",
                   help="learning rate: constant, or cosine annealing to 0 over all epochs (per step)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=None, help="MNIST root (default: $DISTGRAD_DATA, then ~/.cache/distgrad)")
    p.add_argument("--backend", default="auto", choices=["auto", "mpi", "nccl"])
    p.add_argument("--checkpoint", default=None, metavar="PATH",
                   help="save model, optimizer and progress here after every epoch (its folder is created)")
    p.add_argument("--checkpoint-every", type=int, default=0, metavar="N", help="also save every N steps")
    p.add_argument("--resume", action="store_true",
                   help="continue from --checkpoint; when it does not exist yet, start fresh (for requeued jobs)")
    p.add_argument("--out", default=None, help="folder for metrics.json and curves.png")
    p.add_argument("--limit-batches", type=int, default=None, help="stop each epoch after this many batches")
    p.add_argument("--amp", choices=sorted(AMP_DTYPES), default=None,
                   help="mixed precision: autocast to bfloat16, or to float16 with loss scaling")
    args = p.parse_args(argv)
    if (args.resume or args.checkpoint_every) and not args.checkpoint:
        p.error(f"{'--resume' if args.resume else '--checkpoint-every'} needs --checkpoint PATH")
    if args.checkpoint_every < 0:
        p.error(f"--checkpoint-every must be at least 1, got {args.checkpoint_every}")
    return args


def fail(message: str, rank: int) -> None:
    """Ends this rank with status 1 after one line (from rank 0): every rank meets the same problem."""
    if rank == 0:
        print(f"mnist.py: {message}", file=sys.stderr, flush=True)
    raise SystemExit(1)


def mnist_tensors(root, train: bool, device):
    images, labels = MNIST(root, train=train).tensors(normalize=True)
    return images.to(device), labels.to(device)


def load_mnist(args, device, rank: int, distributed: bool):
    """(train, test) tensors; rank 0 first (it downloads what is missing), then the others. A
    failure is one line naming what to do, on every rank, without a traceback."""
    def attempt():
        try:
            return (mnist_tensors(args.data_dir, True, device), mnist_tensors(args.data_dir, False, device)), None
        except DatasetNotFoundError as exc:
            why = "; ".join(line.strip() for line in (exc.reason or "").splitlines()[1:3])
            return None, (f"MNIST not found in {exc.folder} (missing {', '.join(exc.files)})"
                          f"{' and the download failed: ' + why if why else ''}. Pass --data-dir DIR or set "
                          "DISTGRAD_DATA to a folder holding mnist/")
        except RuntimeError as exc:  # a corrupt or truncated file: the message names it
            return None, str(exc).splitlines()[0]

    data, error = attempt() if rank == 0 else (None, None)
    if distributed:
        verdict = [error]
        dist.broadcast_object_list(verdict, src=0)
        error = verdict[0]
        if rank != 0 and error is None:
            data, error = attempt()
    if error:
        fail(error, rank)
    return data


def evaluate(model, images, labels, batch_size: int = 1000, autocast=None) -> float:
    model.eval()
    correct = 0
    with dg.no_grad(), autocast or contextlib.nullcontext():
        for start in range(0, len(labels), batch_size):
            logits = model(images[start:start + batch_size])
            correct += int((logits.argmax(dim=1) == labels[start:start + batch_size]).sum().item())
    model.train()
    return correct / len(labels)


def progress(iterable, enabled: bool, desc: str):
    if enabled and sys.stderr.isatty():
        try:
            from tqdm import tqdm
            return tqdm(iterable, desc=desc, leave=False)
        except ImportError:
            pass
    return iterable


def save_curves(history: list, out_dir: str) -> None:
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "metrics.json"), "w") as f:
        json.dump(history, f, indent=1)
    if len(history) < 2:
        print("one epoch: wrote metrics.json; curves.png needs two epochs or more")
        return
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: wrote metrics.json without curves.png")
        return
    epochs = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax1.plot(epochs, [h["train_loss"] for h in history], marker="o")
    ax1.set(xlabel="epoch", ylabel="train loss")
    ax2.plot(epochs, [100 * h["test_accuracy"] for h in history], marker="o", color="tab:green")
    ax2.set(xlabel="epoch", ylabel="test accuracy (%)")
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "curves.png"), dpi=100)


def restore(args, model, optimizer, scaler, device, rank: int):
    """The saved progress when resuming (``--resume``, or a job restarted by distgrad-launch), else None."""
    if not args.checkpoint:
        return None
    try:
        ckpt.prepare(args.checkpoint)
        if not (args.resume or ckpt.restart_count() > 0):
            return None
        state = ckpt.resume(args.checkpoint, map_location=device, notice=rank == 0)
    except ckpt.CheckpointError as exc:
        fail(str(exc), rank)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        dg.set_rng_state(state["rng"])
        if rank == 0:
            print(f"resuming from {args.checkpoint}: epoch {state['epoch']}, step {state['step']}", flush=True)
    return state


def main(argv=None) -> dict:
    args = parse_args(argv)
    rank, world, device = dist.init_from_launcher(args.backend, args.device)
    distributed = dist.is_initialized()
    print(f"rank {rank} of world {world} on {device} (backend {dist.get_backend() if distributed else 'none'})",
          flush=True)

    dg.manual_seed(args.seed)
    model = MODELS[args.model]().to(device)
    optimizer = OPTIMIZERS[args.optimizer](model.parameters(), args)
    device_type = dg.device(device).type
    autocast = dg.autocast(device_type, dtype=AMP_DTYPES.get(args.amp), enabled=args.amp is not None)
    scaler = dg.amp.GradScaler(device_type, enabled=args.amp == "fp16")  # float16 gradients need loss scaling
    state = restore(args, model, optimizer, scaler, device, rank)
    inner = model
    if distributed:
        model = DistributedDataParallel(model)
    (train_x, train_y), (test_x, test_y) = load_mnist(args, device, rank, distributed)
    train_set = TensorDataset(train_x, train_y)
    sampler = DistributedSampler(train_set, num_replicas=world, rank=rank, shuffle=True, seed=args.seed)
    loader = DataLoader(train_set, batch_size=args.batch_size, sampler=sampler)
    scheduler = None
    if args.schedule == "cosine":
        scheduler = dg.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs * len(loader))
        if state is not None:
            scheduler.load_state_dict(state["scheduler"])

    history = state["history"] if state else []
    first_epoch, step = (state["epoch"], state["step"]) if state else (0, 0)
    done_in_epoch = state["batches_done"] if state else 0

    stop = ckpt.StopRequest() if args.checkpoint else None  # SIGUSR1: SLURM's time-limit warning

    def progress_state(epoch, batches_done, loss_sum):
        return {"model": inner.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch, "step": step,
                "batches_done": batches_done, "loss_sum": loss_sum, "history": history, "rng": dg.get_rng_state(),
                "scheduler": scheduler.state_dict() if scheduler else None, "scaler": scaler.state_dict()}

    for epoch in range(first_epoch, args.epochs):
        sampler.set_epoch(epoch)
        skip, done_in_epoch = done_in_epoch, 0  # batches the checkpoint had already trained on
        start, batches = time.perf_counter(), skip
        loss_sum = state["loss_sum"].to(device) if skip else dg.zeros((), dtype=dg.float64, device=device)
        for x, y in itertools.islice(progress(loader, rank == 0, f"epoch {epoch}"), skip, None):
            if args.limit_batches and batches >= args.limit_batches:
                break
            with autocast:
                loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            if scheduler is not None:
                scheduler.step()
            loss_sum += loss.detach().double()
            batches, step = batches + 1, step + 1
            stopping = stop is not None and stop.agreed()
            if stopping or args.checkpoint_every and step % args.checkpoint_every == 0:
                partial = loss_sum.clone()
                if distributed:  # the ranks' mean so far: the epoch's final AVG stays exact after a resume
                    dist.all_reduce(partial, op=dist.ReduceOp.AVG)
                if rank == 0:
                    ckpt.save(progress_state(epoch, batches, partial), args.checkpoint)
            if stopping:
                if rank == 0:
                    print(f"stopping on request: checkpoint at step {step} in {args.checkpoint}", flush=True)
                if distributed:
                    dist.destroy_process_group()
                return {}
        if distributed:
            dist.all_reduce(loss_sum, op=dist.ReduceOp.AVG)
        elapsed = time.perf_counter() - start
        record = {"epoch": epoch, "train_loss": loss_sum.item() / batches,
                  "test_accuracy": evaluate(model, test_x, test_y, autocast=autocast),
                  "samples_per_s": (batches - skip) * args.batch_size * world / elapsed, "seconds": elapsed}
        history.append(record)
        if rank == 0:
            print(f"epoch {epoch}: loss {record['train_loss']:.4f}  test accuracy {100 * record['test_accuracy']:.2f}%"
                  f"  {record['samples_per_s']:.0f} samples/s  ({elapsed:.1f} s)", flush=True)
            if args.checkpoint:
                ckpt.save(progress_state(epoch + 1, 0, None), args.checkpoint)
    if rank == 0 and history:
        print(f"final test accuracy {100 * history[-1]['test_accuracy']:.2f}% after {len(history)} epoch(s) "
              f"on {world} rank(s)", flush=True)
        if args.out:
            save_curves(history, args.out)
    if distributed:
        dist.destroy_process_group()
    return history[-1] if history else {}


def run() -> None:
    """The command line: Ctrl-C ends the run with one line and status 130, not a traceback per rank."""
    try:
        main()
    except KeyboardInterrupt:
        rank = dist.get_rank() if dist.is_initialized() else 0
        if rank == 0:
            print("mnist.py: interrupted", file=sys.stderr, flush=True)
        os._exit(130)  # every rank got the signal; waiting for the others in a teardown could hang


if __name__ == "__main__":
    run()
