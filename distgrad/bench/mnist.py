"""MNIST benchmarks: W1's epoch in one process, and time to a target test accuracy on N ranks.

W1 (``w1_epoch``): one epoch of the MLP over the 60000 training images in a fixed shuffled order,
batch 64, then the test accuracy, in distgrad or in PyTorch on the same arrays.

Time to accuracy (``worker``, W1's MLP or W2's CNN, per-rank batch 64):

Each rank trains on its shard of every epoch (``DistributedSampler``: one shuffle shared by all
ranks); N ranks therefore take global batches of N x 64 with the same learning rate, so they need
fewer steps per epoch but may need more epochs. Every ``eval_every`` steps all ranks score their
share of the test set and add the counts. The clock counts training only: evaluations are paused out.
"""
from __future__ import annotations

import time

import numpy as np

from distgrad.bench import frameworks
from distgrad.bench.ranks import rank_device
from distgrad.bench.timing import synchronized_clock
from distgrad.bench.workloads import BATCH, build_model, sgd, train_step

__all__ = ["worker", "w1_arrays", "w1_epoch"]


def w1_arrays(root: str | None):
    """((train images, labels), (test images, labels)) as NumPy arrays: float32 (N, 1, 28, 28), scaled
    to [0, 1] and standardised with MNIST's mean and std, and int64 labels."""
    from distgrad.data import MNIST
    return tuple(tuple(t.numpy() for t in MNIST(root, train=train).tensors(normalize=True)) for train in (True, False))


def w1_epoch(fw, arrays, device: str, seed: int = 0) -> dict:
    """W1 in ``fw``: seconds for one epoch (the clock stops once the device has finished), samples/s,
    and the test accuracy after it."""
    (train_x, train_y), (test_x, test_y) = arrays
    model = build_model("mlp", device=device, seed=seed, fw=fw)
    optimizer = sgd(fw, model)
    x_all, y_all = fw.lib.tensor(train_x, device=device), fw.lib.tensor(train_y, device=device)
    order = np.random.default_rng(seed).permutation(len(train_y))
    clock = synchronized_clock(fw.synchronizer(device))
    start = clock()
    for i in range(0, len(order), BATCH):
        index = fw.lib.tensor(order[i:i + BATCH], device=device)
        train_step(fw, model, optimizer, x_all[index], y_all[index])
    seconds = clock() - start
    with fw.lib.no_grad():
        predicted = model(fw.lib.tensor(test_x, device=device)).argmax(dim=1)
        accuracy = float((predicted == fw.lib.tensor(test_y, device=device)).double().mean().item())
    return {"seconds": seconds, "samples_per_s": len(train_y) / seconds, "test_accuracy": accuracy}


def worker(params: dict, progress) -> dict:
    """One rank (started by ``distgrad-bench mnist``)."""
    import distgrad as dg
    import distgrad.distributed as dist
    from distgrad.data import MNIST
    from distgrad.distributed import DistributedDataParallel, DistributedSampler, ReduceOp

    dist.init_process_group(params["backend"])
    rank, world = dist.get_rank(), dist.get_world_size()
    device = rank_device(params["device"])
    fw = frameworks.load("distgrad")
    synchronize = fw.synchronizer(device)
    train_x, train_y = MNIST(params["data_dir"], train=True).tensors(normalize=True, device=device)
    test_x, test_y = MNIST(params["data_dir"], train=False).tensors(normalize=True, device=device)
    test_x, test_y = test_x[rank::world], test_y[rank::world]
    model = build_model(params["model"], device=device, seed=params["seed"])
    trained = DistributedDataParallel(model) if world > 1 else model
    optimizer = sgd(fw, trained, lr=params["lr"])
    sampler = DistributedSampler(range(len(train_y)), num_replicas=world, rank=rank, shuffle=True, seed=params["seed"])
    batch = params["batch"]

    def accuracy() -> float:
        correct = dg.zeros((), dtype=dg.int64, device=device)
        with dg.no_grad():
            for start in range(0, len(test_y), 1000):
                logits = model(test_x[start:start + 1000])
                correct += (logits.argmax(dim=1) == test_y[start:start + 1000]).sum()
        dist.all_reduce(correct, op=ReduceOp.SUM)
        return int(correct.item()) / 10000

    steps, train_seconds, history, reached = 0, 0.0, [], False
    wall_start = time.perf_counter()
    for epoch in range(params["max_epochs"]):
        sampler.set_epoch(epoch)
        order = np.fromiter(iter(sampler), dtype=np.int64)
        dist.barrier()
        segment_start = time.perf_counter()
        for start in range(0, len(order) - batch + 1, batch):
            index = dg.tensor(order[start:start + batch], device=device)
            train_step(fw, trained, optimizer, train_x[index], train_y[index])
            steps += 1
            if steps % params["eval_every"] == 0:
                synchronize()
                train_seconds += time.perf_counter() - segment_start
                history.append({"steps": steps, "train_seconds": train_seconds, "test_accuracy": accuracy()})
                progress(f"{world} rank(s): step {steps}, accuracy {history[-1]['test_accuracy']:.4f}")
                reached = history[-1]["test_accuracy"] >= params["target"]
                if reached:
                    break
                dist.barrier()
                segment_start = time.perf_counter()
        if reached:
            break
        synchronize()
        train_seconds += time.perf_counter() - segment_start
    if not history or history[-1]["steps"] != steps:
        history.append({"steps": steps, "train_seconds": train_seconds, "test_accuracy": accuracy()})
    final = history[-1]
    return {"world_size": world, "model": params["model"], "per_rank_batch": batch, "lr": params["lr"],
            "target": params["target"], "reached": reached, "test_accuracy": final["test_accuracy"],
            "steps": steps, "epochs": steps * batch * world / len(train_y),
            "train_seconds": final["train_seconds"], "wall_seconds": time.perf_counter() - wall_start,
            "history": history}
