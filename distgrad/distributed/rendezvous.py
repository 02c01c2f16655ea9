"""Forming a world without an MPI launcher: PyTorch's ``env://`` and ``tcp://`` rendezvous.

Ranks started by ``torchrun``-style launchers or by ``distgrad.multiprocessing.spawn`` know their
rank, the world size and where rank 0 is (``MASTER_ADDR``/``MASTER_PORT``, or ``tcp://host:port``),
and nothing else. Rank 0 serves a ``TCPStore`` there; every rank connects to it. Then:

1. each rank initialises MPI as a world of one (with MPICH through ``pmi_service``, which gives the
   world a name of its own: MPICH's singletons cannot connect to each other otherwise);
2. rank 0 opens an MPI port (``MPI_Open_port``) and publishes its name in the store;
3. ranks 1, 2, ... join one at a time, in rank order: rank k says it is coming (store key
   ``connecting/k``), the ranks already joined ``MPI_Comm_accept`` it together while it
   ``MPI_Comm_connect``s, and both sides merge the intercommunicator into one intracommunicator
   (``MPI_Intercomm_merge``, the newcomer ranked last), so that merged rank = rank.

The store's waits bound every step by the timeout: a rank that never comes fails the others with
a ``TimeoutError`` naming it, instead of leaving them in ``MPI_Comm_accept`` for ever.
"""
from __future__ import annotations

import datetime
import os
import sys
import urllib.parse

from distgrad import envvars
from distgrad.distributed import mpi_env, pmi_service
from distgrad.distributed.store import TCPStore

__all__ = ["rendezvous", "join_mpi_world"]

_PREFIX = "distgrad/world/"
TORCHELASTIC_AGENT_STORE = "TORCHELASTIC_USE_AGENT_STORE"
_generation = [0]  # worlds formed by this process so far: a second world's keys do not meet the first's


def _from_env(name: str, given: int, what: str) -> int:
    if given is not None and given >= 0:
        return int(given)
    value = os.environ.get(name)
    if value is None:
        raise ValueError(f"Error initializing distgrad.distributed using env:// rendezvous: environment variable "
                         f"{name} expected, but not set ({what}; or pass it to init_process_group)")
    return int(value)


def parse_init_method(init_method: str, rank: int = -1, world_size: int = -1) -> tuple[str, int, int, int]:
    """``(host, port, rank, world_size)`` from ``env://`` (``MASTER_ADDR``, ``MASTER_PORT``, ``RANK``,
    ``WORLD_SIZE``; arguments win over variables, as in PyTorch) or ``tcp://host:port`` (rank and
    world size given as arguments or as ``?rank=..&world_size=..``)."""
    url = urllib.parse.urlparse(init_method)
    query = dict(urllib.parse.parse_qsl(url.query))
    rank = int(query.get("rank", rank))
    world_size = int(query.get("world_size", world_size))
    if url.scheme == "env":
        host = os.environ.get(envvars.MASTER_ADDR)
        if not host:
            raise ValueError("Error initializing distgrad.distributed using env:// rendezvous: environment variable "
                             "MASTER_ADDR expected, but not set")
        port = _from_env(envvars.MASTER_PORT, None, "the port of rank 0's store")
        rank = _from_env(envvars.RANK, rank, "this process's rank")
        world_size = _from_env(envvars.WORLD_SIZE, world_size, "the number of ranks")
    elif url.scheme == "tcp":
        if not url.hostname or url.port is None:
            raise ValueError(f"init_method {init_method!r}: expected tcp://host:port")
        host, port = url.hostname, url.port
        if rank < 0 or world_size < 1:
            raise ValueError(f"init_method {init_method!r} needs rank and world_size (arguments of "
                             "init_process_group, or ?rank=..&world_size=..)")
    else:
        raise ValueError(f"init_method {init_method!r}: distgrad supports env://, tcp://host:port and, "
                         "without one, the world of the MPI launcher")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in a world of size {world_size}")
    return host, port, rank, world_size


def rendezvous(init_method: str, rank: int, world_size: int, timeout_s: float) -> tuple[TCPStore, int, int]:
    """Connects to (rank 0: serves) the rendezvous store; returns ``(store, rank, world_size)``.

    Under ``torchrun`` the launcher's agent already serves a store at ``MASTER_PORT``
    (``TORCHELASTIC_USE_AGENT_STORE=True``, in PyTorch's own protocol): every rank is a client of it,
    through PyTorch's ``TCPStore`` (torchrun comes with PyTorch).
    """
    host, port, rank, world_size = parse_init_method(init_method, rank, world_size)
    if init_method.startswith("env://") and os.environ.get(TORCHELASTIC_AGENT_STORE) == "True":
        from torch.distributed import TCPStore as AgentStore
        store = AgentStore(host, port, world_size, False, datetime.timedelta(seconds=timeout_s))
        return store, rank, world_size
    store = TCPStore(host, port, world_size, is_master=rank == 0, timeout=timeout_s, wait_for_workers=False)
    return store, rank, world_size


def _start_mpi(name: str):
    """``mpi4py.MPI``, initialised as a world of one named ``name`` (MPICH) or as a plain singleton."""
    import mpi4py
    if "mpi4py.MPI" not in sys.modules:
        mpi4py.rc.initialize = False  # initialised below, once the environment is ready
    from mpi4py import MPI
    if MPI.Is_initialized():
        if not _generation[0] and "MPICH" in MPI.Get_library_version():
            raise RuntimeError("init_process_group(init_method=...): MPI was initialised before (something "
                               "imported mpi4py.MPI), as a singleton that MPICH cannot connect to other "
                               "processes; call init_process_group before using mpi4py")
        return MPI
    served = pmi_service.start(name) if "MPICH" in MPI.Get_library_version() else {}
    os.environ.update(served)
    try:
        return mpi_env.mpi()
    finally:
        for key in served:  # processes this rank starts later must not take its PMI channel for theirs
            os.environ.pop(key, None)


def join_mpi_world(store: TCPStore, rank: int, world_size: int, timeout_s: float):
    """An MPI intracommunicator of the ``world_size`` ranks meeting in ``store``, ranked by ``rank``."""
    # torchrun restarts reuse its store: the run and attempt keep their keys apart
    attempt = f"{os.environ.get('TORCHELASTIC_RUN_ID', '')}.{os.environ.get('TORCHELASTIC_RESTART_COUNT', '')}"
    prefix = f"{_PREFIX}{attempt}/{_generation[0]}/"
    MPI = _start_mpi(f"distgrad_{store.port}_rank{rank}_pid{os.getpid()}")
    _generation[0] += 1
    if rank == 0:
        port = MPI.Open_port()
        store.set(prefix + "port", port)
        comm = MPI.COMM_SELF.Dup()
    else:
        port = store.get(prefix + "port").decode()
        _wait(store, [f"{prefix}joined/{rank - 1}"], timeout_s, f"rank {rank - 1} to join")
        store.set(f"{prefix}connecting/{rank}", b"")
        intercomm = MPI.COMM_SELF.Connect(port, root=0)
        comm = intercomm.Merge(high=True)
        intercomm.Free()
    store.set(f"{prefix}joined/{comm.Get_size() - 1}", b"")
    while comm.Get_size() < world_size:
        newcomer = comm.Get_size()
        _wait(store, [f"{prefix}connecting/{newcomer}"], timeout_s, f"rank {newcomer} to connect")
        intercomm = comm.Accept(port, root=0)
        merged = intercomm.Merge(high=False)
        intercomm.Free()
        comm.Free()
        comm = merged
    if rank == 0:
        MPI.Close_port(port)
    if comm.Get_rank() != rank:
        raise RuntimeError(f"the rendezvous ranked this process {comm.Get_rank()}, not {rank}")
    return comm


def _wait(store, keys: list, timeout_s: float, what: str) -> None:
    try:
        store.wait(keys, datetime.timedelta(seconds=timeout_s))
    except (TimeoutError, RuntimeError) as e:  # PyTorch's store raises its DistStoreError, a RuntimeError
        raise TimeoutError(f"init_process_group: waited {timeout_s:g} s for {what} at the rendezvous "
                           f"({store.host}:{store.port}); did every rank start? ({e})") from None
