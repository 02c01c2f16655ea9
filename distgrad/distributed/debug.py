"""``DISTGRAD_DISTRIBUTED_DEBUG=DETAIL``: ranks compare each collective before running it.

The classic desynchronisation (one rank reduces a tensor of another shape, or runs another
collective) hangs silently in MPI and NCCL. In DETAIL mode every rank first gathers every rank's
fingerprint of the collective over a separate communicator and raises an error naming the ranks
that differ. Off, it costs one boolean test per collective.
"""
from __future__ import annotations

import os

from distgrad import backend, envvars

DEBUG_ENV = envvars.DISTRIBUTED_DEBUG


def detail_enabled() -> bool:
    level = os.environ.get(DEBUG_ENV, "OFF").strip().upper()
    if level not in ("OFF", "INFO", "DETAIL"):
        raise ValueError(f"{DEBUG_ENV} must be OFF, INFO or DETAIL, got {level!r}")
    return level == "DETAIL"


def fingerprint(kind: str, arrays, **details) -> str:
    """What every rank must agree on, e.g. ``all_reduce(float32[4] on cpu, op=SUM)``."""
    parts = [f"{a.dtype}{list(a.shape)} on {backend.device_of(a).type}" for a in arrays]
    parts += [f"{key}={getattr(value, 'name', value)}" for key, value in details.items()]
    return f"{kind}({', '.join(parts)})"


def check_same_collective(group, seq: int, mine: str) -> None:
    """Raises ``RuntimeError`` on every rank when the group's ranks disagree about collective ``seq``."""
    everyone = group.debug_comm.allgather(mine)
    if all(fp == mine for fp in everyone):
        return
    ranks_by_fingerprint = {}
    for group_rank, fp in enumerate(everyone):
        ranks_by_fingerprint.setdefault(fp, []).append(group.ranks[group_rank])
    described = " but ".join(f"{fp} on ranks {ranks}" for fp, ranks in ranks_by_fingerprint.items())
    raise RuntimeError(f"Detected mismatch between collectives on ranks: collective #{seq} of group "
                       f"{group.name} is {described}")
