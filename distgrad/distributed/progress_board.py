"""A group's progress board: which collectives each rank entered, readable without that rank's help.

Every rank owns a row: the number of the last collective it entered, then a ring of its last
``RING`` collectives, each as ``[seq, fingerprint hash, kind, dtype, device, ndim, d0..d3, op, root,
length]`` (``debug.fingerprint`` makes the fields). Posting is a few plain stores into memory, so the
hot path costs about a microsecond and no message.

The rows live in MPI shared memory among the ranks of a node, so a rank entering collective #n reads
its node peers' rows directly: a peer that already posted a different #n is a mismatch caught
*before* MPI sees two shapes (MPICH aborts on a truncated message without saying whose) or two kinds
of collective (which hang or return wrong values). Whichever of two ranks arrives second sees the
other's post (``MPI_Win_sync`` orders the post before the reads). Ranks on other nodes are read with
``Rget`` through a second window over the same memory (they answer only from inside MPI), by the
watchdog only: after a timeout, and once
a collective has waited ``look_after_s``, to find a mismatch that is hanging.
"""
from __future__ import annotations

import struct
import time

import numpy as np

from distgrad.distributed import mpi_env

KINDS = ("none", "barrier", "all_reduce", "broadcast", "reduce", "all_gather", "reduce_scatter", "gather",
         "scatter", "broadcast_object_list", "all_gather_object", "destroy_process_group", "exit",
         "all_gather_into_tensor", "reduce_scatter_tensor", "gather_object", "reduce_scatter_v",
         "hierarchical_all_reduce")
KIND_CODES = {kind: code for code, kind in enumerate(KINDS)}
RING = 8  # collectives kept per rank: a peer may be a few ahead (a broadcast's root returns early)
FIELDS = 13  # seq, hash, then the 11 fields of debug.fingerprint
_ENTRY = struct.Struct(f"{FIELDS - 1}q")  # all but seq, which is stored last


class ProgressBoard:
    def __init__(self, comm):
        MPI = mpi_env.mpi()
        self.size = comm.Get_size()
        self.row = 1 + RING * FIELDS  # int64s per rank: [last seq, ring...]
        node = comm.Split_type(MPI.COMM_TYPE_SHARED, key=comm.Get_rank())
        try:
            self._shared = MPI.Win.Allocate_shared(self.row * 8, 8, comm=node)
        except MPI.Exception:
            # Processes that joined through a rendezvous (MPI_Comm_connect) share a node but, in
            # MPICH, no shared-memory window: each keeps its row alone, read remotely like other nodes'.
            node.Free()
            node = comm.Split(comm.Get_rank(), key=0)
            self._shared = MPI.Win.Allocate_shared(self.row * 8, 8, comm=node)
        memory = self._shared.tomemory()
        self._bytes = memoryview(memory).cast("B")
        self._mine = self._bytes.cast("q")
        for i in range(self.row):
            self._mine[i] = 0
        # node peers: (group rank, their row as int64s); the group ranks through the groups' translation
        peers = [r for r in range(node.Get_size()) if r != node.Get_rank()]
        group_ranks = MPI.Group.Translate_ranks(node.Get_group(), peers, comm.Get_group())
        self._peers = [(g, memoryview(self._shared.Shared_query(r)[0]).cast("B").cast("q"))
                       for g, r in zip(group_ranks, peers)]
        self._on_node = dict(self._peers)
        self._on_node[comm.Get_rank()] = self._mine
        self._node_comm = node
        self._window = MPI.Win.Create(memory, 8, comm=comm)
        self._shared.Lock_all()
        self._window.Lock_all()

    def post(self, seq: int, fp_hash: int, fingerprint: tuple) -> None:
        """Marks this rank as having entered collective ``seq`` with this fingerprint."""
        slot = 1 + (seq % RING) * FIELDS
        _ENTRY.pack_into(self._bytes, (slot + 1) * 8, fp_hash, *fingerprint)
        self._mine[slot] = seq  # last: a reader that sees this seq sees its fields (a torn read is
        self._mine[0] = seq     # still possible on weakly ordered CPUs: mismatches are confirmed)
        self._shared.Sync()  # the stores above before the peers' rows are read

    def node_mismatches(self, seq: int, fp_hash: int) -> bool:
        """Whether a node peer entered ``seq`` with another fingerprint (the hot path: a few loads)."""
        slot = 1 + (seq % RING) * FIELDS
        for _, row in self._peers:
            if row[slot] == seq and row[slot + 1] != fp_hash:
                return True
        return False

    def node_fingerprints(self, seq: int, wait_s: float = 0.5) -> dict:
        """{group rank: fingerprint} of the node peers that entered ``seq``, waiting up to ``wait_s``
        for the rest to arrive (the slow path of a mismatch, to name every rank in the error)."""
        slot = 1 + (seq % RING) * FIELDS
        end = time.monotonic() + wait_s
        while any(row[slot] != seq for _, row in self._peers) and time.monotonic() < end:
            time.sleep(0.01)
        return {g: tuple(row[slot + 2:slot + FIELDS]) for g, row in self._peers if row[slot] == seq}

    def read_all(self, deadline_s: float = 2.0) -> list:
        """Per group rank, its row as ``(last seq, {seq: (hash, fingerprint)})``, or None when it did not
        answer in time (busy outside MPI, or gone)."""
        rows = np.full((self.size, self.row), -1, np.int64)
        for r, row in self._on_node.items():  # in shared memory: read even if that rank is busy
            rows[r] = np.frombuffer(row, np.int64)
        remote = [r for r in range(self.size) if r not in self._on_node]
        requests = dict.fromkeys(range(self.size))
        requests.update({r: self._window.Rget(rows[r], r) for r in remote})
        answered = [r in self._on_node for r in range(self.size)]
        end = time.monotonic() + deadline_s
        while not all(answered) and time.monotonic() < end:
            answered = [done or requests[r].Test() for r, done in enumerate(answered)]
            time.sleep(0.001)
        return [_parse(rows[r]) if answered[r] else None for r in range(self.size)]

    def close(self) -> None:
        self._window.Unlock_all()
        self._shared.Unlock_all()
        self._window.Free()
        self._shared.Free()
        self._node_comm.Free()


def _parse(row) -> tuple:
    entries = {}
    for i in range(RING):
        entry = row[1 + i * FIELDS:1 + (i + 1) * FIELDS]
        if entry[0] > 0:
            entries[int(entry[0])] = (int(entry[1]), tuple(int(v) for v in entry[2:]))
    return int(row[0]), entries
