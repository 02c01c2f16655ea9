"""Collectives on tensors, with PyTorch's names and signatures; results land in the tensors' arrays.

``src`` and ``dst`` are global ranks. With ``async_op=True`` each returns a ``Work`` to ``wait()`` on;
otherwise None once the result is in place (for NCCL: once it is queued on the current stream).
On a rank outside ``group`` they do nothing and return None, with a warning.
"""
from __future__ import annotations

import warnings

from distgrad import backend
from distgrad.autograd.node import increment_version
from distgrad.distributed import debug, world
from distgrad.distributed.reduce_op import ReduceOp
from distgrad.tensor import Tensor

__all__ = ["all_gather", "all_gather_into_tensor", "all_reduce", "barrier", "broadcast", "gather", "reduce",
           "reduce_scatter", "reduce_scatter_tensor", "reduce_scatter_v", "scatter"]


def run_collective(group, kind: str, arrays, call, async_op: bool, **details):
    """Enters collective ``kind`` of ``group``: numbers it, checks that the ranks agree on it
    (``debug``), and runs ``call(communicator)`` under the watchdog. Returns the ``Work`` for ``async_op``."""
    if backend.capturing() and group.backend != "nccl":  # MPI runs on the host: nothing a CUDA graph can record
        backend.check_host_sync(f"{kind} over {group.backend!r}")
    checked = group.check_collectives or world.debug_detail()
    fp = debug.fingerprint(kind, arrays, **details) if checked else debug.bare_fingerprint(kind)
    fp_hash = hash(fp)  # of integers only: the same on every rank
    seq = group.enter(kind, fp, fp_hash)
    watchdog = world.watchdog()
    with watchdog.watching(group, kind, seq):
        if world.debug_detail():
            debug.check_same_collective(group, seq, fp)
        elif group.check_collectives and group.board.node_mismatches(seq, fp_hash):
            # Read again, field by field, naming every node peer that arrives soon: a mismatch must
            # be certain before it ends the job.
            fingerprints = {group.ranks[r]: other for r, other in group.board.node_fingerprints(seq).items()}
            if any(other != fp for other in fingerprints.values()):
                raise RuntimeError(debug.mismatch_message(group, seq, {group.ranks[group.rank()]: fp, **fingerprints}))
        work = call(group.communicator_for(arrays[0] if arrays else None))
    if work is None:
        return None
    if not backend.capturing():  # work recorded in a CUDA graph runs at replay, where no watchdog waits for it
        watchdog.watch_work(group, kind, seq, work)
    if async_op:
        return work
    work.wait()
    return None


def _group(group, op_name: str):
    pg = world.resolve_group(group)
    if pg is None:
        warnings.warn(f"Running {op_name} on a rank that does not belong to the given group.")
    return pg


def _array(tensor, name: str, op_name: str, written: bool = True):
    """The tensor's array, after PyTorch's checks; a tensor to be written gets its version bumped."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"Invalid function argument. Expected parameter `{name}` of type distgrad.Tensor "
                        f"but got {type(tensor)} instead.")
    if not tensor.array.flags.c_contiguous:
        raise RuntimeError(f"{op_name}: Tensors must be contiguous")
    if written:
        increment_version(tensor)
    return tensor.array


def _arrays(tensors, name: str, op_name: str, like, count: int, written: bool = True) -> list:
    """Arrays of a list of ``count`` tensors, each with the shape, dtype and device of ``like``."""
    if not isinstance(tensors, (list, tuple)) or not all(isinstance(t, Tensor) for t in tensors):
        raise TypeError(f"Invalid function argument. Expected parameter `{name}` of type List[distgrad.Tensor] "
                        f"but got {type(tensors)} instead.")
    if len(tensors) != count:
        raise ValueError(f"{op_name}: {name} has {len(tensors)} tensors but the group has {count} ranks")
    arrays = [_array(t, name, op_name, written) for t in tensors]
    for i, a in enumerate(arrays):
        if a.shape != like.shape or a.dtype != like.dtype or backend.device_of(a) != backend.device_of(like):
            raise ValueError(f"{op_name}: {name}[{i}] is {a.dtype}{list(a.shape)} on {backend.device_of(a)} but "
                             f"the tensor is {like.dtype}{list(like.shape)} on {backend.device_of(like)}")
    return arrays


def _check_op(op) -> ReduceOp:
    if not isinstance(op, ReduceOp):
        raise TypeError(f"op must be a distgrad.distributed.ReduceOp, got {op!r}")
    return op


def all_reduce(tensor: Tensor, op: ReduceOp = ReduceOp.SUM, group=None, async_op: bool = False):
    """Every rank's ``tensor`` becomes the reduction (``op``) of all ranks' tensors."""
    pg = _group(group, "all_reduce")
    if pg is None:
        return None
    a, op = _array(tensor, "tensor", "all_reduce"), _check_op(op)
    return run_collective(pg, "all_reduce", [a], lambda comm: comm.all_reduce(a, op, async_op), async_op, op=op)


def broadcast(tensor: Tensor, src: int, group=None, async_op: bool = False):
    """Every rank's ``tensor`` becomes rank ``src``'s."""
    pg = _group(group, "broadcast")
    if pg is None:
        return None
    a, root = _array(tensor, "tensor", "broadcast"), pg.group_rank(src)
    return run_collective(pg, "broadcast", [a], lambda comm: comm.broadcast(a, root, async_op), async_op, src=src)


def reduce(tensor: Tensor, dst: int, op: ReduceOp = ReduceOp.SUM, group=None, async_op: bool = False):
    """Rank ``dst``'s ``tensor`` becomes the reduction of all ranks' tensors; the others keep theirs."""
    pg = _group(group, "reduce")
    if pg is None:
        return None
    a, root, op = _array(tensor, "tensor", "reduce"), pg.group_rank(dst), _check_op(op)
    return run_collective(pg, "reduce", [a], lambda comm: comm.reduce(a, root, op, async_op), async_op,
                          dst=dst, op=op)


def all_gather(tensor_list: list, tensor: Tensor, group=None, async_op: bool = False):
    """``tensor_list[i]`` becomes group rank i's ``tensor``, on every rank."""
    pg = _group(group, "all_gather")
    if pg is None:
        return None
    a = _array(tensor, "tensor", "all_gather", written=False)
    outputs = _arrays(tensor_list, "tensor_list", "all_gather", a, pg.size())
    return run_collective(pg, "all_gather", [a], lambda comm: comm.all_gather(outputs, a, async_op), async_op)


def reduce_scatter(output: Tensor, input_list: list, op: ReduceOp = ReduceOp.SUM, group=None,
                   async_op: bool = False):
    """Group rank i's ``output`` becomes the reduction over ranks of their ``input_list[i]``."""
    pg = _group(group, "reduce_scatter")
    if pg is None:
        return None
    out, op = _array(output, "output", "reduce_scatter"), _check_op(op)
    inputs = _arrays(input_list, "input_list", "reduce_scatter", out, pg.size(), written=False)
    return run_collective(pg, "reduce_scatter", [out], lambda comm: comm.reduce_scatter(out, inputs, op, async_op),
                          async_op, op=op)


def all_gather_into_tensor(output_tensor: Tensor, input_tensor: Tensor, group=None, async_op: bool = False):
    """``output_tensor``, of group-size times ``input_tensor``'s elements, receives every rank's
    ``input_tensor`` in rank order; ``input_tensor`` may be this rank's own chunk of it (in place)."""
    pg = _group(group, "all_gather_into_tensor")
    if pg is None:
        return None
    a = _array(input_tensor, "input_tensor", "all_gather_into_tensor", written=False)
    out = _array(output_tensor, "output_tensor", "all_gather_into_tensor")
    _check_flat_sizes("all_gather_into_tensor", out, a, pg.size(),
                      "output tensor size must be equal to world_size times input tensor size")
    return run_collective(pg, "all_gather_into_tensor", [a],
                          lambda comm: comm.all_gather_into_tensor(out, a, async_op), async_op)


def reduce_scatter_tensor(output: Tensor, input: Tensor, op: ReduceOp = ReduceOp.SUM, group=None,
                          async_op: bool = False):
    """Group rank i's ``output`` becomes the reduction over ranks of chunk i of their ``input`` (group-size
    times ``output``'s elements)."""
    pg = _group(group, "reduce_scatter_tensor")
    if pg is None:
        return None
    out, op = _array(output, "output", "reduce_scatter_tensor"), _check_op(op)
    a = _array(input, "input", "reduce_scatter_tensor", written=False)
    _check_flat_sizes("reduce_scatter_tensor", a, out, pg.size(),
                      "input tensor must be the same size as output size times world size")
    return run_collective(pg, "reduce_scatter_tensor", [out],
                          lambda comm: comm.reduce_scatter_tensor(out, a, op, async_op), async_op, op=op)


def reduce_scatter_v(output: Tensor, input: Tensor, counts, op: ReduceOp = ReduceOp.SUM, group=None,
                     async_op: bool = False):
    """Like ``reduce_scatter_tensor`` with chunks of different sizes (MPI's ``MPI_Reduce_scatter``; a
    distgrad addition): ``input`` is ``counts[0]``, ``counts[1]``, ... elements one after the other, and
    group rank i's ``output`` (``counts[i]`` elements, possibly none) becomes the reduction of chunk i."""
    pg = _group(group, "reduce_scatter_v")
    if pg is None:
        return None
    out, op = _array(output, "output", "reduce_scatter_v"), _check_op(op)
    a = _array(input, "input", "reduce_scatter_v", written=False)
    counts = [int(c) for c in counts]
    if len(counts) != pg.size() or min(counts) < 0:
        raise ValueError(f"reduce_scatter_v: counts must hold one count >= 0 per rank ({pg.size()}), got {counts}")
    if a.size != sum(counts) or out.size != counts[pg.rank()]:
        raise ValueError(f"reduce_scatter_v: input has {a.size} elements and output {out.size}, but counts {counts} "
                         f"need {sum(counts)} and {counts[pg.rank()]} on group rank {pg.rank()}")
    if out.dtype != a.dtype or backend.device_of(out) != backend.device_of(a):
        raise ValueError(f"reduce_scatter_v: input and output must have the same dtype and device, got "
                         f"{a.dtype} on {backend.device_of(a)} and {out.dtype} on {backend.device_of(out)}")
    return run_collective(pg, "reduce_scatter_v", [a], lambda comm: comm.reduce_scatter_v(out, a, counts, op, async_op),
                          async_op, op=op, length=hash(tuple(counts)))  # int hashes agree across ranks


def _check_flat_sizes(op_name: str, whole, chunk, size: int, message: str) -> None:
    if whole.size != chunk.size * size:
        raise ValueError(f"{op_name}: {message} ({whole.size} != {size} x {chunk.size})")
    if whole.dtype != chunk.dtype or backend.device_of(whole) != backend.device_of(chunk):
        raise ValueError(f"{op_name}: input and output must have the same dtype and device, got "
                         f"{chunk.dtype} on {backend.device_of(chunk)} and {whole.dtype} on {backend.device_of(whole)}")


def gather(tensor: Tensor, gather_list: list | None = None, dst: int = 0, group=None, async_op: bool = False):
    """On rank ``dst``, ``gather_list[i]`` becomes group rank i's ``tensor``."""
    pg = _group(group, "gather")
    if pg is None:
        return None
    a, root = _array(tensor, "tensor", "gather", written=False), pg.group_rank(dst)
    if pg.rank() == root:
        if gather_list is None:
            raise ValueError("Argument ``gather_list`` must be specified on destination rank.")
        outputs = _arrays(gather_list, "gather_list", "gather", a, pg.size())
    elif gather_list:
        raise ValueError("Argument ``gather_list`` must NOT be specified on non-destination ranks.")
    else:
        outputs = None
    return run_collective(pg, "gather", [a], lambda comm: comm.gather(a, outputs, root, async_op), async_op, dst=dst)


def scatter(tensor: Tensor, scatter_list: list | None = None, src: int = 0, group=None, async_op: bool = False):
    """Group rank i's ``tensor`` becomes rank ``src``'s ``scatter_list[i]``."""
    pg = _group(group, "scatter")
    if pg is None:
        return None
    a, root = _array(tensor, "tensor", "scatter"), pg.group_rank(src)
    if pg.rank() == root:
        if scatter_list is None:
            raise ValueError("Argument ``scatter_list`` must be specified on source rank.")
        inputs = _arrays(scatter_list, "scatter_list", "scatter", a, pg.size(), written=False)
    elif scatter_list:
        raise ValueError("Argument ``scatter_list`` must NOT be specified on non-source ranks.")
    else:
        inputs = None
    return run_collective(pg, "scatter", [a], lambda comm: comm.scatter(a, inputs, root, async_op), async_op, src=src)


def barrier(group=None, async_op: bool = False):
    """Returns once every rank of ``group`` has called it (over MPI, whatever the backend)."""
    pg = _group(group, "barrier")
    if pg is None:
        return None
    return run_collective(pg, "barrier", [], lambda comm: comm.barrier(async_op), async_op)
