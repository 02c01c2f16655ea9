"""Train an MLP or a CNN on MNIST — on the CPU, one GPU, or N ranks under mpiexec/distgrad-launch.

    python examples/mnist.py --model mlp --epochs 10                      # one process
    distgrad-launch -n 2 examples/mnist.py --model mlp --epochs 1         # two ranks, data parallel

Each rank trains on its shard of every global batch (``--batch-size`` is per rank) and gradients
are averaged across ranks, so N ranks with batch b follow one process with batch N*b.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import distgrad as dg
import distgrad.distributed as dist
import distgrad.nn.functional as F
from distgrad import nn
from distgrad.data import DataLoader, MNIST, TensorDataset
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
    p.add_argument("--checkpoint", default=None, help="save model/optimizer/epoch here after every epoch")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    p.add_argument("--out", default=None, help="folder for metrics.json and curves.png")
    p.add_argument("--limit-batches", type=int, default=None, help="stop each epoch after this many batches")
    return p.parse_args(argv)


def mnist_tensors(root, train: bool, device):
    images, labels = MNIST(root, train=train).tensors(normalize=True)
    return images.to(device), labels.to(device)


def evaluate(model, images, labels, batch_size: int = 1000) -> float:
    model.eval()
    correct = 0
    with dg.no_grad():
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


def main(argv=None) -> dict:
    args = parse_args(argv)
    distributed = dist.launched_by_mpi()
    if distributed:
        dist.init_process_group(args.backend)
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    device = args.device
    if device == "cuda" and distributed:
        device = f"cuda:{dist.get_local_rank() % dg.cuda.device_count()}"
    print(f"rank {rank} of world {world} on {device} (backend {dist.get_backend() if distributed else 'none'})",
          flush=True)

    dg.manual_seed(args.seed)
    model = MODELS[args.model]().to(device)
    optimizer = OPTIMIZERS[args.optimizer](model.parameters(), args)
    first_epoch, history, state = 0, [], None
    if args.resume:
        state = dg.load(args.checkpoint, map_location=device)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        first_epoch, history = state["epoch"] + 1, state["history"]
        dg.set_rng_state(state["rng"])
    if distributed:
        model = DistributedDataParallel(model)

    if distributed and rank != 0:
        dist.barrier()  # rank 0 downloads MNIST (if it must) before the others read it
    train_x, train_y = mnist_tensors(args.data_dir, True, device)
    test_x, test_y = mnist_tensors(args.data_dir, False, device)
    if distributed and rank == 0:
        dist.barrier()
    train_set = TensorDataset(train_x, train_y)
    sampler = DistributedSampler(train_set, num_replicas=world, rank=rank, shuffle=True, seed=args.seed)
    loader = DataLoader(train_set, batch_size=args.batch_size, sampler=sampler)
    scheduler = None
    if args.schedule == "cosine":
        scheduler = dg.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs * len(loader))
        if args.resume:
            scheduler.load_state_dict(state["scheduler"])

    for epoch in range(first_epoch, args.epochs):
        sampler.set_epoch(epoch)
        start, loss_sum, batches = time.perf_counter(), dg.zeros((), dtype=dg.float64, device=device), 0
        for x, y in progress(loader, rank == 0, f"epoch {epoch}"):
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            loss_sum += loss.detach().double()
            batches += 1
            if args.limit_batches and batches >= args.limit_batches:
                break
        if distributed:
            dist.all_reduce(loss_sum, op=dist.ReduceOp.AVG)
        elapsed = time.perf_counter() - start
        record = {"epoch": epoch, "train_loss": loss_sum.item() / batches,
                  "test_accuracy": evaluate(model, test_x, test_y),
                  "samples_per_s": batches * args.batch_size * world / elapsed, "seconds": elapsed}
        history.append(record)
        if rank == 0:
            print(f"epoch {epoch}: loss {record['train_loss']:.4f}  test accuracy {100 * record['test_accuracy']:.2f}%"
                  f"  {record['samples_per_s']:.0f} samples/s  ({elapsed:.1f} s)", flush=True)
            if args.checkpoint:
                inner = model.module if distributed else model
                dg.save({"model": inner.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
                         "history": history, "rng": dg.get_rng_state(),
                         "scheduler": scheduler.state_dict() if scheduler else None}, args.checkpoint)
    if rank == 0:
        print(f"final test accuracy {100 * history[-1]['test_accuracy']:.2f}% after {len(history)} epoch(s) "
              f"on {world} rank(s)", flush=True)
        if args.out:
            save_curves(history, args.out)
    if distributed:
        dist.destroy_process_group()
    return history[-1]


if __name__ == "__main__":
    main()
