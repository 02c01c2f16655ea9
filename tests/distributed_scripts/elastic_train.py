"""A small DDP run that resumes from its checkpoint (``distgrad.checkpoint``), as restarted jobs do.

    elastic_train.py OUT_DIR STEPS [KILL_RANK_1_AT_STEP]

Rank 0 checkpoints after every step; on the first attempt (``DISTGRAD_RESTART_COUNT`` 0) rank 1
SIGKILLs itself before step KILL_RANK_1_AT_STEP. At the end rank 0 saves the final parameters and
the attempt number in OUT_DIR/final.dg.
"""
import os
import signal
import sys

import numpy as np

import distgrad as dg
import distgrad.checkpoint as ckpt
import distgrad.distributed as dist
from distgrad import nn

out, steps = sys.argv[1], int(sys.argv[2])
kill_at = int(sys.argv[3]) if len(sys.argv) > 3 else -1
dist.init_process_group()
rank = dist.get_rank()
dg.manual_seed(0)
model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 2)).double()
optimizer = dg.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
path = os.path.join(out, "train.ckpt")
state = ckpt.resume(path, notice=rank == 0)
start = 0
if state is not None:
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    start = state["step"]
ddp = dist.DistributedDataParallel(model)
for step in range(start, steps):
    if step == kill_at and rank == 1 and ckpt.restart_count() == 0:
        os.kill(os.getpid(), signal.SIGKILL)
    data = np.random.default_rng(1000 * step + rank).standard_normal((4, 8))
    loss = (ddp(dg.tensor(data)) ** 2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if rank == 0:
        ckpt.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step + 1}, path)
if rank == 0:
    dg.save({"model": model.state_dict(), "attempt": ckpt.restart_count()}, os.path.join(out, "final.dg"))
dist.destroy_process_group()
