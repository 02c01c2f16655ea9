"""The figures every benchmark reports, defined once: bandwidths, efficiencies, overlap, medians.

Bandwidths follow nccl-tests (``doc/PERFORMANCE.md`` there): *algorithm bandwidth* is the buffer's
bytes over the time of one collective; *bus bandwidth* rescales it to the bytes each link carries, so
that it can be compared with the hardware's peak whatever the number of ranks. For all-reduce the
factor is 2(n-1)/n: a ring all-reduce sends and receives 2(n-1)/n of the buffer on every rank.
"""
from __future__ import annotations

import re
import statistics

__all__ = ["algbw_GBps", "busbw_GBps", "allreduce_bandwidths", "allreduce_bus_factor", "scaling_efficiency",
           "hidden_fraction", "overlap_ratio", "median", "parse_count", "parse_bytes", "format_bytes"]


def algbw_GBps(nbytes: int, seconds: float) -> float:
    """Algorithm bandwidth in GB/s (10^9 bytes per second): buffer bytes / time of one collective."""
    return nbytes / seconds / 1e9


def allreduce_bus_factor(world_size: int) -> float:
    """2(n-1)/n: the share of the buffer that each rank sends (and receives) twice over in a ring."""
    return 2 * (world_size - 1) / world_size


def busbw_GBps(nbytes: int, seconds: float, world_size: int) -> float:
    """All-reduce bus bandwidth in GB/s: algbw x 2(n-1)/n (0 for one rank, which moves nothing)."""
    return algbw_GBps(nbytes, seconds) * allreduce_bus_factor(world_size)


def allreduce_bandwidths(nbytes: int, seconds: float, world_size: int) -> tuple[float | None, float | None]:
    """(algbw, busbw) of one all-reduce of ``nbytes`` that took ``seconds``; (None, None) on one rank,
    where nothing crosses a link and a bandwidth would only time a call that has nothing to do."""
    if world_size < 2:
        return None, None
    return algbw_GBps(nbytes, seconds), busbw_GBps(nbytes, seconds, world_size)


def scaling_efficiency(throughput: float, world_size: int, single_rank_throughput: float) -> float:
    """throughput(n) / (n x throughput(1)): 1.0 when n ranks are exactly n times as fast as one."""
    return throughput / (world_size * single_rank_throughput)


def hidden_fraction(backward_s: float, allreduce_s: float, backward_with_allreduce_s: float) -> float:
    """Share of the all-reduce time that overlapping hid behind backward.

    ``(backward + allreduce - backward_with_allreduce) / allreduce``: 1 when DDP's backward takes no
    longer than backward alone, 0 when it takes as long as the two run one after the other. Measured
    values may fall slightly outside [0, 1] through noise; they are not clipped.
    """
    return (backward_s + allreduce_s - backward_with_allreduce_s) / allreduce_s


def overlap_ratio(backward_s: float, allreduce_s: float, backward_with_allreduce_s: float) -> float:
    """``backward_with_allreduce / (backward + allreduce)``: below 1 when overlapping hid communication,
    1 when DDP's backward takes as long as the two one after the other."""
    return backward_with_allreduce_s / (backward_s + allreduce_s)


def median(values) -> float:
    return float(statistics.median(values))


_SUFFIX = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*$")
_DECIMAL = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}
_BINARY = {"": 1, "b": 1, "k": 2**10, "kb": 2**10, "kib": 2**10, "m": 2**20, "mb": 2**20, "mib": 2**20,
           "g": 2**30, "gb": 2**30, "gib": 2**30}


def parse_count(text) -> int:
    """A count with an optional decimal suffix: ``'25M'`` -> 25_000_000, ``'100k'``, ``'1.5G'``, ``'4096'``."""
    match = _SUFFIX.match(str(text))
    if not match or match.group(2).lower() not in _DECIMAL:
        raise ValueError(f"cannot read {text!r} as a count: use a number with an optional k, M or G suffix")
    return int(round(float(match.group(1)) * _DECIMAL[match.group(2).lower()]))


def parse_bytes(text) -> int:
    """Bytes with an optional binary suffix, as nccl-tests' ``-b``/``-e``: ``'4'``, ``'64K'``, ``'256MiB'``."""
    match = _SUFFIX.match(str(text))
    if not match or match.group(2).lower() not in _BINARY:
        raise ValueError(f"cannot read {text!r} as a size: use a number with an optional K, M or G "
                         "(KiB, MiB, GiB) suffix")
    return int(round(float(match.group(1)) * _BINARY[match.group(2).lower()]))


def format_bytes(nbytes: int) -> str:
    """``4 B``, ``64 KiB``, ``256 MiB``: the largest binary unit that divides evenly, else one decimal."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= size:
            value = nbytes / size
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{nbytes} B"
