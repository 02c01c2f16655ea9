"""The collectives that ``nn.SyncBatchNorm`` needs, handed to ``distgrad.nn`` (which sits below this
package and may not import it) when ``distgrad.distributed`` is imported."""
from __future__ import annotations

from distgrad import backend
from distgrad.distributed import collectives, world
from distgrad.nn.modules import sync_batchnorm
from distgrad.tensor import Tensor


class BatchStatsCommunication:
    """What ``SyncBatchNormFunction`` calls, on arrays, for a process group (None: the default group)."""

    def world_size(self, group) -> int:
        """The group's size; 1 while no process group exists."""
        return world.get_world_size(group) if world.is_initialized() else 1

    def all_gather(self, array, group):
        """Every rank's ``array``, stacked in rank order."""
        size = world.get_world_size(group)
        with backend.cuda_device_context(backend.device_of(array)):
            gathered = backend.array_module(array).empty((size,) + array.shape, dtype=array.dtype)
        collectives.all_gather_into_tensor(Tensor(gathered), Tensor(array), group=group)
        return gathered

    def all_reduce_sum(self, array, group) -> None:
        """``array`` becomes the sum of every rank's, in place."""
        collectives.all_reduce(Tensor(array), group=group)


sync_batchnorm.bind_communication(BatchStatsCommunication())
