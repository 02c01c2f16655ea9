"""nn.SyncBatchNorm: alone it is BatchNorm; convert_sync_batchnorm; on 2 and 3 ranks it equals BatchNorm
on the global batch (``ddp_scripts/sync_batchnorm_cases.py``)."""
import numpy as np
import pytest

import distgrad as dg
import distgrad.distributed  # noqa: F401  (binds SyncBatchNorm's collectives; no process group is made)
from distgrad import nn
from ddp_scripts import sync_batchnorm_cases
from helpers import expect_case_ok, random_leaf


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5), (2, 3, 4, 4)])
def test_without_a_process_group_it_is_batchnorm(shape):
    bn_class = {2: nn.BatchNorm1d, 3: nn.BatchNorm1d, 4: nn.BatchNorm2d}[len(shape)]
    plain, synced = bn_class(3).double(), nn.SyncBatchNorm(3).double()
    x, y = random_leaf(shape, "cpu", seed=1), random_leaf(shape, "cpu", seed=1)
    w = dg.tensor(np.random.default_rng(2).standard_normal(shape))
    (plain(x) * w).sum().backward()
    (synced(y) * w).sum().backward()
    np.testing.assert_allclose(y.grad.array, x.grad.array, rtol=0, atol=1e-14)
    np.testing.assert_allclose(synced.running_var.array, plain.running_var.array, rtol=0, atol=1e-14)
    assert synced.num_batches_tracked.item() == 1


def test_convert_sync_batchnorm_replaces_every_batchnorm_sharing_its_state():
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Sequential(nn.BatchNorm2d(3, affine=False)))
    model[1].running_mean.array[...] = 7
    model.eval()
    weight, running_mean = model[1].weight, model[1].running_mean
    converted = nn.SyncBatchNorm.convert_sync_batchnorm(model, process_group="group")
    assert converted is model and isinstance(model[0], nn.Linear)
    assert isinstance(model[1], nn.SyncBatchNorm) and isinstance(model[2][0], nn.SyncBatchNorm)
    assert model[1].weight is weight and model[1].running_mean is running_mean
    assert model[2][0].weight is None and not model[2][0].affine
    assert not model[1].training and model[1].process_group == "group"
    assert [name for name, _ in converted.named_parameters()] == ["0.weight", "0.bias", "1.weight", "1.bias"]


def test_inputs_need_a_batch_and_a_channel_dim():
    with pytest.raises(ValueError, match="expected at least 2D input"):
        nn.SyncBatchNorm(3)(dg.ones(3))


@pytest.mark.parametrize("case", [case.__name__ for case in sync_batchnorm_cases.CASES])
def test_sync_batchnorm_on_ranks(scale_out_ranks, case):
    expect_case_ok(scale_out_ranks, case)
