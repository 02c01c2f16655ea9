"""The default process group and its life: ``init_process_group`` ... ``destroy_process_group``.

Rank and world size come from MPI, the local rank from ``MPI_Comm_split_type(SHARED)``. Ranks that
no MPI launcher started (``torchrun``, ``distgrad.multiprocessing.spawn``) meet through PyTorch's
``env://`` or ``tcp://`` rendezvous and join one MPI world (``rendezvous.py``). Started without
either, mpi4py makes a singleton world of size 1.
"""
from __future__ import annotations

import datetime
import os
import warnings

from distgrad import envvars, threads
from distgrad.backend import cuda_device_count, cupy_module
from distgrad.distributed import debug, failure, mpi_env, rendezvous
from distgrad.distributed.nccl_comm import nccl_available
from distgrad.distributed.process_group import ProcessGroup
from distgrad.distributed.store import TCPStore
from distgrad.distributed.watchdog import Watchdog
from distgrad.profiler import session as timeline

EXPECTED_WORLD_SIZE_ENV = envvars.EXPECTED_WORLD_SIZE  # set by distgrad-launch
DEFAULT_TIMEOUT = datetime.timedelta(minutes=30)  # PyTorch's default_pg_timeout
NOT_INITIALIZED = ("Default process group has not been initialized, please make sure to call "
                   "init_process_group.")


class GroupMember:
    """``NON_GROUP_MEMBER`` is what ``new_group`` returns on ranks outside the new group."""

    NON_GROUP_MEMBER = object()


class _World:
    def __init__(self):
        self.default = None  # the WORLD ProcessGroup
        self.groups = []  # every group made by new_group, in creation order (same on every rank)
        self.group_count = 0
        self.watchdog = None
        self.debug_detail = False
        self.local_rank = 0
        self.local_world_size = 1
        self.store = None  # the rendezvous TCPStore, when the world was formed through one
        self.owns_store = False  # made by init_process_group (not the user's or torchrun's): closed with the world


_world = _World()


def _seconds(timeout) -> float:
    if timeout is None:
        return DEFAULT_TIMEOUT.total_seconds()
    seconds = timeout.total_seconds() if isinstance(timeout, datetime.timedelta) else float(timeout)
    if seconds <= 0:
        raise ValueError(f"timeout must be positive, got {timeout!r}")
    return seconds


def _backend_name(name) -> str:
    """``'auto'``, ``'mpi'`` or ``'nccl'``; PyTorch's ``'gloo'`` (and ``'cpu:gloo,cuda:nccl'``) run on MPI
    (and NCCL), which is said once."""
    name = "auto" if name is None else str(name).lower().replace(" ", "")
    if name in ("gloo", "cpu:gloo,cuda:nccl", "cuda:nccl,cpu:gloo"):
        warnings.warn("distgrad has no Gloo: backend 'gloo' runs on distgrad's MPI backend, which takes the same "
                      "CPU tensors (get_backend() says 'mpi')", stacklevel=3)
        return "mpi" if name == "gloo" else "nccl"
    if name not in ("auto", "mpi", "nccl"):
        raise ValueError(f"Invalid backend: '{name}'; distgrad supports 'auto', 'mpi', 'nccl' and 'gloo' (on MPI)")
    return name


def _resolve_backend(name: str, local_world_size: int) -> str:
    """``'auto'`` becomes NCCL when every rank on the node can have a GPU of its own, else MPI
    (NCCL refuses two ranks on one GPU; MPI shares it)."""
    gpus = cuda_device_count()
    if name == "auto":
        return "nccl" if 0 < local_world_size <= gpus and nccl_available() else "mpi"
    if name == "nccl" and gpus == 0:
        cupy_module()  # raises the clear "needs CuPy" error when CuPy is missing
        raise RuntimeError("backend 'nccl' needs a GPU, but CuPy sees none")
    if name == "nccl" and local_world_size > gpus:
        raise RuntimeError(f"backend 'nccl' needs a GPU per rank, but {local_world_size} ranks on this node share "
                           f"{gpus} GPU(s); use backend 'mpi' to share GPUs")
    return name


def init_process_group(backend=None, init_method=None, timeout=None, world_size: int = -1, rank: int = -1,
                       store=None, group_name: str = "") -> None:
    """Joins the job's ranks (PyTorch's signature): ``backend`` is ``'auto'`` (NCCL when CuPy sees a GPU
    for every rank of the node, else MPI), ``'mpi'``, ``'nccl'`` or ``'gloo'`` (MPI, said once);
    ``timeout`` (a ``timedelta`` or seconds) bounds every collective.

    Where the ranks come from: an MPI launcher (``mpiexec``, ``srun``, ``distgrad-launch``) gives the
    world, and ``world_size``/``rank`` are only checked against it. Otherwise ``init_method="env://"``
    (also the default when ``MASTER_ADDR`` and a world size are set) or ``"tcp://host:port"``, or a
    ``store`` with ``rank`` and ``world_size``, is a PyTorch rendezvous: the ranks meet at rank 0's
    ``TCPStore`` and join one MPI world. Without either, the process is a world of one. Each rank binds
    GPU ``local_rank % device_count`` when CuPy sees GPUs. ``group_name`` is accepted and unused.
    """
    if _world.default is not None:
        raise ValueError("trying to initialize the default process group twice!")
    name, timeout_s, _world.debug_detail = _backend_name(backend), _seconds(timeout), debug.detail_enabled()
    comm = _world_communicator(init_method, store, world_size, rank, timeout_s)
    MPI = mpi_env.mpi()
    my_rank, size = comm.Get_rank(), comm.Get_size()
    local = comm.Split_type(MPI.COMM_TYPE_SHARED, key=my_rank)
    _world.local_rank, _world.local_world_size = local.Get_rank(), local.Get_size()
    threads.choose_for_ranks(local)  # ranks sharing cores share them, under any launcher
    local.Free()
    if cuda_device_count() > 0:
        cupy_module().cuda.Device(_world.local_rank % cuda_device_count()).use()
    name = _resolve_backend(name, _world.local_world_size)
    threads_ok = MPI.Query_thread() == MPI.THREAD_MULTIPLE
    if not threads_ok:
        warnings.warn("MPI was initialised without MPI_THREAD_MULTIPLE: collective timeouts are not enforced")
    _world.watchdog = Watchdog(my_rank, enabled=threads_ok)
    _world.default = _make_group("WORLD", comm.Dup(), range(size), name, timeout_s, _world.store)
    if comm is not MPI.COMM_WORLD:
        failure.set_world_communicator(_world.default.mpi.comm)
    failure.install_excepthook(my_rank, size)
    timeline.start_from_environment(my_rank)  # DISTGRAD_TIMELINE=folder


def _world_communicator(init_method, store, world_size: int, rank: int, timeout_s: float):
    """The communicator of the whole world: the MPI launcher's, or one joined through a rendezvous."""
    if store is not None:
        if rank < 0 or world_size < 1:
            raise ValueError("init_process_group(store=...) needs rank and world_size")
        _world.store = store
        return rendezvous.join_mpi_world(store, rank, world_size, timeout_s)
    # PyTorch's default is env://; a stray MASTER_ADDR without a world size leaves a world of one
    wants_rendezvous = init_method is not None or (envvars.MASTER_ADDR in os.environ and (
        envvars.WORLD_SIZE in os.environ or world_size >= 1))
    if wants_rendezvous and not launched_by_mpi():
        _world.store, rank, world_size = rendezvous.rendezvous(init_method or "env://", rank, world_size, timeout_s)
        _world.owns_store = isinstance(_world.store, TCPStore)
        return rendezvous.join_mpi_world(_world.store, rank, world_size, timeout_s)
    comm = mpi_env.mpi().COMM_WORLD
    my_rank, size = comm.Get_rank(), comm.Get_size()
    expected = os.environ.get(EXPECTED_WORLD_SIZE_ENV)
    if expected and int(expected) != size:
        raise RuntimeError(f"the launcher started {expected} ranks but this process is in an MPI world of size "
                           f"{size}: the launch mode does not match the MPI library (srun needs --mpi=pmi2 "
                           "for MPICH, --mpi=pmix for Open MPI; mpiexec must belong to the MPI under mpi4py)")
    if world_size not in (-1, size) or rank not in (-1, my_rank):
        raise ValueError(f"init_process_group(world_size={world_size}, rank={rank}) disagrees with MPI: "
                         f"world size {size}, rank {my_rank}")
    return comm


def _make_group(name, comm, ranks, backend_name, timeout_s, store=None) -> ProcessGroup:
    group = ProcessGroup(name, comm, ranks, backend_name, timeout_s, _world.debug_detail, store)
    _world.watchdog.add_group(group)
    if group.nccl is not None:
        failure.add_abort_callback(group.nccl.abort)
    return group


LAUNCHER_RANK_VARIABLES = ("PMI_RANK", "PMIX_RANK", "OMPI_COMM_WORLD_RANK", EXPECTED_WORLD_SIZE_ENV)


def launched_by_mpi() -> bool:
    """True when an MPI launcher (mpiexec, srun with a PMI mode, distgrad-launch) started this
    process, judged from its environment alone: MPI is not started by asking."""
    return any(name in os.environ for name in LAUNCHER_RANK_VARIABLES)


def launched() -> bool:
    """True when a launcher started this process as one rank of several: an MPI launcher, or a
    PyTorch-style one (torchrun, ``spawn``) that sets ``RANK``, ``WORLD_SIZE`` and ``MASTER_ADDR``."""
    return launched_by_mpi() or all(name in os.environ for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR"))


def init_from_launcher(backend: str | None = None, device: str = "cpu") -> tuple:
    """Joins the world when a launcher started this process (``launched()``), else stays a world
    of one. Returns ``(rank, world_size, device)``, the device being this rank's GPU
    (``cuda:<local rank modulo the GPUs>``) when ``device`` is ``"cuda"``: the start of a script
    that runs unchanged alone, under ``mpiexec``/``srun``/``distgrad-launch`` or under ``torchrun``."""
    if not launched():
        return 0, 1, device
    init_process_group(backend)
    if device == "cuda":
        device = f"cuda:{get_local_rank() % cuda_device_count()}"
    return get_rank(), get_world_size(), device


def is_initialized() -> bool:
    return _world.default is not None


def _default_group() -> ProcessGroup:
    if _world.default is None:
        raise ValueError(NOT_INITIALIZED)
    return _world.default


def resolve_group(group) -> ProcessGroup | None:
    """``group`` itself, the default group for None, or None on ranks outside ``group``."""
    default = _default_group()
    if group is None:
        return default
    if group is GroupMember.NON_GROUP_MEMBER:
        return None
    return group


def watchdog() -> Watchdog:
    return _world.watchdog


def debug_detail() -> bool:
    return _world.debug_detail


def get_rank(group=None) -> int:
    """This process's rank in ``group`` (the world by default); -1 outside the group."""
    pg = resolve_group(group)
    return -1 if pg is None else pg.rank()


def get_world_size(group=None) -> int:
    """The number of ranks in ``group`` (the world by default); -1 outside the group."""
    pg = resolve_group(group)
    return -1 if pg is None else pg.size()


def get_local_rank() -> int:
    """This process's rank among the ranks on its node (``MPI_Comm_split_type(SHARED)``)."""
    _default_group()
    return _world.local_rank


def get_local_world_size() -> int:
    """The number of ranks on this process's node."""
    _default_group()
    return _world.local_world_size


def get_backend(group=None) -> str:
    pg = resolve_group(group)
    if pg is None:
        raise ValueError("Invalid process group specified")
    return pg.backend


def new_group(ranks=None, timeout=None, backend=None):
    """A group of the global ``ranks`` (all by default). Every rank of the world must call it, in the
    same order; ranks outside the group get ``GroupMember.NON_GROUP_MEMBER``."""
    default = _default_group()
    world_size = default.size()
    ranks = sorted(set(range(world_size) if ranks is None else ranks))
    for r in ranks:
        if not 0 <= r < world_size:
            raise ValueError(f"new_group: rank {r} is not in the world of size {world_size}")
    me = default.rank()
    MPI = mpi_env.mpi()
    comm = default.mpi.comm.Split(0 if me in ranks else MPI.UNDEFINED, key=me)
    _world.group_count += 1
    if comm == MPI.COMM_NULL:
        return GroupMember.NON_GROUP_MEMBER
    timeout_s = default.timeout_s if timeout is None else _seconds(timeout)
    group = _make_group(f"group{_world.group_count}", comm, ranks,
                        default.backend if backend is None else
                        _resolve_backend(_backend_name(backend), _world.local_world_size), timeout_s)
    _world.groups.append(group)
    return group


def forget_group(group) -> None:
    """Drops a destroyed group from the world; the default group (None) resets the whole world."""
    if group is None:
        _world.watchdog.stop()
        failure.uninstall_excepthook()
        failure.set_world_communicator(None)
        if _world.owns_store:
            _world.store.close()
        timeline.stop_from_environment()
        _world.__init__()
    else:
        _world.groups.remove(group)


def all_groups() -> list:
    """Every group made with ``new_group``, then the default one (the order they are freed in)."""
    return _world.groups + [_world.default] if _world.default is not None else list(_world.groups)
