"""``distgrad.distributed``: process groups and collectives over MPI (mpi4py) and NCCL (CuPy).

Start ranks with ``mpiexec -n N python train.py``, ``distgrad-launch -n N train.py`` or SLURM's
``srun``; each calls ``init_process_group()``. Ranks started the PyTorch way (``torchrun``,
``distgrad.multiprocessing.spawn``) meet through ``init_method="env://"`` (the default when
``MASTER_ADDR`` is set) or ``"tcp://host:port"``. Nothing starts MPI before that call.
"""
from distgrad.distributed.collectives import (all_gather, all_gather_into_tensor, all_reduce,  # noqa: F401
                                              barrier, broadcast, gather, reduce, reduce_scatter,
                                              reduce_scatter_tensor, reduce_scatter_v, scatter)
from distgrad.distributed.object_collectives import (all_gather_object, broadcast_object_list,  # noqa: F401
                                                     gather_object)
from distgrad.distributed.process_group import ProcessGroup  # noqa: F401
from distgrad.distributed.reduce_op import ReduceOp  # noqa: F401
from distgrad.distributed.work import Work  # noqa: F401
from distgrad.distributed.teardown import destroy_process_group  # noqa: F401
from distgrad.distributed.world import (GroupMember, get_backend,  # noqa: F401
                                        get_local_rank, get_local_world_size, get_rank, get_world_size,
                                        init_from_launcher, init_process_group, is_initialized, launched,
                                        launched_by_mpi, new_group)
from distgrad.distributed.hierarchical import hierarchical_all_reduce  # noqa: F401
from distgrad.distributed.store import TCPStore  # noqa: F401
from distgrad.distributed.ddp import DistributedDataParallel  # noqa: F401
from distgrad.distributed.sampler import DistributedSampler  # noqa: F401
from distgrad.distributed import batch_stats  # noqa: F401,E402  (gives nn.SyncBatchNorm its collectives)


def is_available() -> bool:
    """True when mpi4py is installed (collectives can run)."""
    import importlib.util
    return importlib.util.find_spec("mpi4py") is not None


def is_mpi_available() -> bool:
    return is_available()


def is_nccl_available() -> bool:
    """True when CuPy, NCCL and a GPU are all there."""
    from distgrad import backend
    from distgrad.distributed.nccl_comm import nccl_available
    return backend.cuda_is_available() and nccl_available()
