"""Ranks must agree on every collective: the fingerprint they compare, and the error when they don't.

The classic desynchronisation (one rank reduces a tensor of another shape, runs another collective,
or leaves while the others still reduce) hangs in MPI and NCCL, returns wrong values, or ends in
MPICH's "message truncated" abort that names no tensor. distgrad compares fingerprints of each
collective -- kind, dtype, device, shape, op, root -- in two ways:

* **always** (unless ``DISTGRAD_COLLECTIVE_CHECK=0``): each rank posts its fingerprint on the group's
  progress board (a few stores) and reads those of the ranks on its node that entered the same
  collective; the watchdog compares ranks on other nodes once a collective has waited a while
  (``progress_board`` explains how). About a microsecond per collective.
* ``DISTGRAD_DISTRIBUTED_DEBUG=DETAIL``: every rank first gathers every rank's fingerprint over a
  separate communicator, before every collective (exact across nodes, one extra collective each).

Either way the error names the collective's number, each fingerprint and the ranks that hold it.
"""
from __future__ import annotations

import functools
import os
import zlib

from distgrad import backend, envvars
from distgrad.distributed.progress_board import KIND_CODES, KINDS
from distgrad.distributed.reduce_op import ReduceOp

DEBUG_ENV = envvars.DISTRIBUTED_DEBUG
CHECK_ENV = envvars.COLLECTIVE_CHECK
_OPS = list(ReduceOp)
_ROOT_NAMES = {"broadcast": "src", "scatter": "src", "broadcast_object_list": "src", "reduce": "dst", "gather": "dst"}
_DTYPE_NAMES = {}  # code -> name, for every dtype fingerprinted here (and the common ones)
_FINGERPRINTS = {}  # what fingerprint() has made, by what it was made of


def detail_enabled() -> bool:
    level = os.environ.get(DEBUG_ENV, "OFF").strip().upper()
    if level not in ("OFF", "INFO", "DETAIL"):
        raise ValueError(f"{DEBUG_ENV} must be OFF, INFO or DETAIL, got {level!r}")
    return level == "DETAIL"


def check_enabled() -> bool:
    """The default check of collectives, on unless ``DISTGRAD_COLLECTIVE_CHECK=0``."""
    return os.environ.get(CHECK_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def _dtype_code(name: str) -> int:
    code = zlib.crc32(name.encode()) & 0x7FFFFFFF  # the same on every rank (str hashes are salted)
    _DTYPE_NAMES[code] = name
    return code


for _name in ("float16", "bfloat16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool"):
    _dtype_code(_name)


def fingerprint(kind: str, arrays, op=None, src=None, dst=None, length=None) -> tuple:
    """What every rank must agree on, as 11 integers: kind, dtype, device, ndim, four dims (the
    fourth is the product of the rest beyond four), op, root, length (-1 where not applicable)."""
    a = arrays[0] if arrays else None
    # The hot path: one lookup, keyed on what the fingerprint is made of (op by identity: hashing an
    # Enum member runs Python code). Training repeats a handful of collectives, so the cache stays small.
    key = (kind, id(op), src, dst, length) if a is None else (kind, a.shape, a.dtype, type(a), id(op), src, dst, length)
    fp = _FINGERPRINTS.get(key)
    if fp is None:
        fp = _FINGERPRINTS[key] = _make_fingerprint(kind, a, op, src if src is not None else dst, length)
    return fp


def _make_fingerprint(kind: str, a, op, root, length) -> tuple:
    if a is not None:
        shape = a.shape
        dims = shape[:3] + ((int(_product(shape[3:])),) if len(shape) > 3 else ())
        device = int(backend.is_device_array(a))
        head = (_dtype_code(a.dtype.name), device, len(shape)) + dims + (-1,) * (4 - len(dims))
    else:
        head = (-1, -1, -1, -1, -1, -1, -1)
    return ((KIND_CODES[kind],) + head + (_OPS.index(op) if op is not None else -1,
                                          -1 if root is None else root, -1 if length is None else length))


@functools.lru_cache(maxsize=None)
def bare_fingerprint(kind: str) -> tuple:
    """The kind alone, for a group whose check is off (the board still shows where each rank is)."""
    return fingerprint(kind, ())


def _product(values) -> int:
    result = 1
    for v in values:
        result *= v
    return result


def describe(fp) -> str:
    """``all_reduce(float32[4] on cpu, op=SUM)`` from a fingerprint."""
    kind_code, dtype, device, ndim, d0, d1, d2, d3, op, root, length = fp
    kind = KINDS[kind_code] if 0 <= kind_code < len(KINDS) else f"collective {kind_code}"
    if kind == "exit":
        return "exit (destroy_process_group at interpreter exit: the rank is leaving)"
    parts = []
    if dtype != -1:
        dims = [d0, d1, d2, d3][:min(ndim, 4)]
        shape = str(dims) if ndim <= 4 else str(dims[:3])[:-1] + f", {d3} in {ndim - 3} more dims]"
        parts.append(f"{_DTYPE_NAMES.get(dtype, f'dtype {dtype}')}{shape} on {'cuda' if device else 'cpu'}")
    if root != -1:
        parts.append(f"{_ROOT_NAMES.get(kind, 'root')}={root}")
    if op != -1:
        parts.append(f"op={_OPS[op].name}")
    if length != -1:
        parts.append(f"length={length}")
    return f"{kind}({', '.join(parts)})"


def mismatch_message(group, seq: int, fingerprints: dict) -> str:
    """The error for ``{global rank: fingerprint}`` that disagree about collective ``seq``."""
    ranks_by_fp = {}
    for rank in sorted(fingerprints):
        ranks_by_fp.setdefault(describe(fingerprints[rank]), []).append(rank)
    described = " but ".join(f"{fp} on ranks {ranks}" for fp, ranks in ranks_by_fp.items())
    message = (f"Detected mismatch between collectives on ranks: collective #{seq} of group {group.name} "
               f"is {described}")
    leaving = [r for r, fp in fingerprints.items() if KINDS[fp[0]] in ("exit", "destroy_process_group")]
    if leaving and len(leaving) < len(fingerprints):
        message += (f". Rank(s) {sorted(leaving)} left the job while the others still run collectives "
                    "(an early sys.exit, or an exception on those ranks?)")
    return message


def check_same_collective(group, seq: int, mine: tuple) -> None:
    """DETAIL mode: raises ``RuntimeError`` on every rank when the group's ranks disagree about
    collective ``seq`` (one all-gather of fingerprints over the group's debug communicator)."""
    everyone = group.debug_comm.allgather(mine)
    if any(fp != mine for fp in everyone):
        raise RuntimeError(mismatch_message(group, seq, {group.ranks[r]: fp for r, fp in enumerate(everyone)}))
