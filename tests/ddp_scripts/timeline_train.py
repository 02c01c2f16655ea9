"""A few DDP training steps with a DataLoader, for the timeline: run it with ``DISTGRAD_TIMELINE=folder``.

    DISTGRAD_TIMELINE=tl mpiexec -n 2 python timeline_train.py [--steps 3 --width 64 --depth 4 --bucket-mb 0.01]

``tests/test_timeline.py`` runs the small default; ``docs/distributed.md``'s picture comes from
``--steps 4 --width 1024 --depth 6 --bucket-mb 4 --batch 64`` (see there).
"""
from __future__ import annotations

import argparse

import distgrad as dg
import distgrad.distributed as dist
import distgrad.nn.functional as F
from distgrad import nn
from distgrad.distributed import DistributedDataParallel as DDP


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--batch", type=int, default=16, help="per rank")
    p.add_argument("--bucket-mb", type=float, default=0.01)
    args = p.parse_args()
    dist.init_process_group(backend="mpi", timeout=60)
    dg.manual_seed(0)
    layers = [nn.Linear(32, args.width), nn.ReLU()]
    for _ in range(args.depth - 2):
        layers += [nn.Linear(args.width, args.width), nn.ReLU()]
    model = DDP(nn.Sequential(*layers, nn.Linear(args.width, 10)), bucket_cap_mb=args.bucket_mb)
    optimizer = dg.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    n = args.batch * args.steps * dist.get_world_size()
    data = dg.data.TensorDataset(dg.randn(n, 32), dg.randint(0, 10, (n,)))
    loader = dg.data.DataLoader(data, batch_size=args.batch, sampler=dist.DistributedSampler(data, shuffle=False))
    for x, y in loader:
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    dist.destroy_process_group()  # writes this rank's timeline


if __name__ == "__main__":
    main()
