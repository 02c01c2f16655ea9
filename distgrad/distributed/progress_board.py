"""A group's progress board: the collective each rank last entered, readable without its help.

Every rank writes its own slot (sequence number, kind) as it enters a collective: a plain store in
its part of an MPI one-sided window, so the hot path costs nothing. After a timeout the watchdog
reads every slot with ``Rget`` under a passive epoch opened at creation; a rank stuck inside an MPI
call, or any rank on the same node, answers without taking part. A rank that does not answer
within a short deadline is busy outside MPI, so it is not in the collective either.
"""
from __future__ import annotations

import time

import numpy as np

from distgrad.distributed import mpi_env

KINDS = ("none", "barrier", "all_reduce", "broadcast", "reduce", "all_gather", "reduce_scatter", "gather",
         "scatter", "broadcast_object_list", "all_gather_object", "destroy_process_group",
         "all_gather_into_tensor", "reduce_scatter_tensor", "gather_object", "reduce_scatter_v")
KIND_CODES = {kind: code for code, kind in enumerate(KINDS)}


class ProgressBoard:
    def __init__(self, comm):
        MPI = mpi_env.mpi()
        self.size = comm.Get_size()
        self._window = MPI.Win.Allocate(2 * 8, 8, comm=comm)
        self._mine = memoryview(self._window.tomemory()).cast("B").cast("q")  # [seq, kind code]
        self._mine[0] = self._mine[1] = 0
        self._needs_sync = self._window.model != MPI.WIN_UNIFIED
        self._window.Lock_all()

    def post(self, seq: int, kind: str) -> None:
        """Marks this rank as having entered collective ``seq`` of kind ``kind``."""
        self._mine[1] = KIND_CODES[kind]
        self._mine[0] = seq
        if self._needs_sync:
            self._window.Sync()

    def read_all(self, deadline_s: float = 2.0) -> list:
        """Per group rank: ``(seq, kind)`` it last entered, or None when it did not answer in time."""
        slots = np.full((self.size, 2), -1, np.int64)
        requests = [self._window.Rget(slots[r], r) for r in range(self.size)]
        answered = [False] * self.size
        end = time.monotonic() + deadline_s
        while not all(answered) and time.monotonic() < end:
            answered = [done or request.Test() for done, request in zip(answered, requests)]
            time.sleep(0.001)
        return [(int(slots[r, 0]), KINDS[int(slots[r, 1])]) if answered[r] else None for r in range(self.size)]

    def close(self) -> None:
        self._window.Unlock_all()
        self._window.Free()
