"""nn.SyncBatchNorm on real ranks: the same as BatchNorm on the global batch (all ranks' inputs together).

Each rank's loss is sum(output * weights) over its own slice, so the global loss is their sum: the
input gradients must equal the global BatchNorm's slice for slice, and the weight and bias gradients
(local sums, as in PyTorch) must add up to the global ones.
"""
from __future__ import annotations

import os
import sys
import numpy as np

import distgrad as dg
import distgrad.distributed as dist
from distgrad import nn
from distgrad.distributed import DistributedDataParallel as DDP

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # run as a script under mpiexec, or imported
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "distributed_scripts"))
from ddp_models import IN, OUT, global_batches, max_difference, shard, train  # noqa: E402

TOLERANCE = 1e-12
# Per-rank batch sizes, uneven (a rank with an empty batch on 4-d inputs), and the trailing dims.
LAYOUTS = {"2d": ([3, 5, 2], ()), "4d": ([2, 1, 0], (2, 3))}


def _bn(cls, affine, momentum, channels=4):
    dg.manual_seed(3)
    layer = cls(channels, momentum=momentum, affine=affine).double()
    if affine:  # not the initial ones and zeros, so that a wrong use of them shows
        layer.weight.array[...] = np.linspace(0.5, 2.0, channels)
        layer.bias.array[...] = np.linspace(-1.0, 1.0, channels)
    return layer


def _my_slice(array, sizes, r):
    start = sum(sizes[:r])
    return array[start:start + sizes[r]]


def sync_batchnorm_equals_batchnorm_on_the_global_batch(r, n):
    rng = np.random.default_rng(0)
    for name, (sizes, tail) in LAYOUTS.items():
        sizes = sizes[:n]
        for affine, momentum in ((True, 0.1), (False, None)):
            reference = _bn(nn.BatchNorm2d if tail else nn.BatchNorm1d, affine, momentum)
            synced = _bn(nn.SyncBatchNorm, affine, momentum)
            for step in range(2):
                x = rng.standard_normal((sum(sizes), 4) + tail) * 3 + 1
                w = rng.standard_normal(x.shape)
                xr = dg.tensor(x, requires_grad=True)
                out_ref = reference(xr)
                (out_ref * dg.tensor(w)).sum().backward()
                xs = dg.tensor(_my_slice(x, sizes, r), requires_grad=True)
                out = synced(xs)
                (out * dg.tensor(_my_slice(w, sizes, r))).sum().backward()
                where = f"{name}, affine={affine}, momentum={momentum}, step {step}"
                np.testing.assert_allclose(out.array, _my_slice(out_ref.array, sizes, r), rtol=0, atol=TOLERANCE,
                                           err_msg=where)
                np.testing.assert_allclose(xs.grad.array, _my_slice(xr.grad.array, sizes, r), rtol=0,
                                           atol=TOLERANCE, err_msg=where)
                for param_name in ("weight", "bias") if affine else ():
                    local = getattr(synced, param_name).grad
                    dist.all_reduce(local)  # local sums, as in PyTorch: they add up to the global ones
                    np.testing.assert_allclose(local.array, getattr(reference, param_name).grad.array, rtol=0,
                                               atol=TOLERANCE, err_msg=f"{where}: {param_name}")
                for p in (reference, synced):
                    p.zero_grad()
                for buffer in ("running_mean", "running_var", "num_batches_tracked"):
                    np.testing.assert_allclose(getattr(synced, buffer).array, getattr(reference, buffer).array,
                                               rtol=0, atol=TOLERANCE, err_msg=f"{where}: {buffer}")
            reference.eval()
            synced.eval()
            x = rng.standard_normal((3, 4) + tail)
            np.testing.assert_allclose(synced(dg.tensor(x)).array, reference(dg.tensor(x)).array, rtol=0,
                                       atol=TOLERANCE)


def _net():
    dg.manual_seed(0)
    return nn.Sequential(nn.Linear(IN, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, OUT)).double()


def ddp_with_sync_batchnorm_trains_like_one_process_with_batchnorm(r, n):
    b = 4
    xs, ys = global_batches(3, n, b)
    reference = _net()
    train(reference, xs, ys)
    model = nn.SyncBatchNorm.convert_sync_batchnorm(_net())
    assert isinstance(model[1], nn.SyncBatchNorm)
    ddp = DDP(model)
    train(model, [shard(x, r, b) for x in xs], [shard(y, r, b) for y in ys], wrapper=ddp)
    difference = max_difference(model, reference)
    assert difference <= TOLERANCE, f"parameters differ by {difference:g}"
    for buffer in ("running_mean", "running_var"):
        np.testing.assert_allclose(getattr(model[1], buffer).array, getattr(reference[1], buffer).array, rtol=0,
                                   atol=TOLERANCE)
    return {"parameter_difference_after_3_steps": difference}


CASES = [sync_batchnorm_equals_batchnorm_on_the_global_batch,
         ddp_with_sync_batchnorm_trains_like_one_process_with_batchnorm]
