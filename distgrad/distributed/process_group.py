"""``ProcessGroup``: ranks that run collectives together, and the communicators that carry them."""
from __future__ import annotations

from distgrad import backend
from distgrad.distributed import debug
from distgrad.distributed.mpi_comm import MPICommunicator
from distgrad.distributed.progress_board import ProgressBoard


class ProcessGroup:
    """A group of ranks: an MPI communicator for host tensors (and objects), plus NCCL for device
    tensors when the backend is ``nccl``. ``ranks`` are global ranks in group-rank order.

    distgrad differs from PyTorch here: an ``nccl`` group also takes CPU tensors (they go over MPI),
    like PyTorch's combined ``cpu:gloo,cuda:nccl`` backend. ``store`` (the rendezvous ``TCPStore`` of a
    world formed through one) carries NCCL's unique id, as in PyTorch; MPI does otherwise.
    """

    def __init__(self, name: str, comm, ranks, backend_name: str, timeout_s: float, debug_detail: bool,
                 store=None):
        self.name = name
        self.ranks = tuple(ranks)
        self.backend = backend_name
        self.timeout_s = float(timeout_s)
        self.mpi = MPICommunicator(comm)
        self.board = ProgressBoard(comm)
        self.debug_comm = comm.Dup() if debug_detail else None  # fingerprints never meet tensor traffic
        self.nccl = None
        if backend_name == "nccl":
            from distgrad.distributed.nccl_comm import NCCLCommunicator
            self.nccl = NCCLCommunicator(comm, store, f"distgrad/nccl/{name}")
        self.hierarchy = None  # the node and leader communicators, made by the first hierarchical all-reduce
        self.seq = 0
        self.check_collectives = debug.check_enabled() and self.size() > 1

    def rank(self) -> int:
        return self.mpi.rank

    def size(self) -> int:
        return self.mpi.size

    def group_rank(self, global_rank: int) -> int:
        """This group's rank of global rank ``global_rank``."""
        try:
            return self.ranks.index(global_rank)
        except ValueError:
            raise ValueError(f"Global rank {global_rank} is not part of group {self.name}") from None

    def enter(self, kind: str, fingerprint: tuple | None = None, fp_hash: int | None = None) -> int:
        """Counts a new collective of ``kind`` and posts it (``debug.fingerprint``) on the progress
        board; returns its number."""
        if fingerprint is None:
            fingerprint = debug.bare_fingerprint(kind)
        self.seq += 1
        self.board.post(self.seq, hash(fingerprint) if fp_hash is None else fp_hash, fingerprint)
        return self.seq

    def communicator_for(self, array):
        """NCCL for device arrays when the group has it, MPI otherwise."""
        if self.nccl is not None and array is not None and backend.is_device_array(array):
            return self.nccl
        return self.mpi

    def destroy(self) -> None:
        """Frees the communicators (collective over the group's ranks)."""
        self.board.close()
        if self.hierarchy is not None:
            self.hierarchy.free()
        if self.debug_comm is not None:
            self.debug_comm.Free()
        if self.nccl is not None:
            self.nccl.destroy()
        self.mpi.comm.Free()

    def __repr__(self) -> str:
        return f"ProcessGroup(name={self.name!r}, backend={self.backend!r}, ranks={list(self.ranks)})"
