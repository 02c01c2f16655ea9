"""Collectives over NCCL (CuPy's ``cupy.cuda.nccl``) on CuPy arrays.

The communicator is made after the rank's GPU is bound: rank 0 draws the unique id and MPI
broadcasts it (in a world formed through a rendezvous, the ``TCPStore`` carries it, as in PyTorch).
Every collective runs on the communicator's own stream, which first waits (an event) for the work
already queued on the caller's stream; the returned ``NCCLWork`` records an event after the
collective, and its ``wait()`` makes the caller's stream wait for that event, so the host is never
blocked (as in PyTorch). Point-to-point patterns (gather, scatter) are fused in ``groupStart/groupEnd``.
"""
from __future__ import annotations

import importlib
import json

import numpy as np

from distgrad import backend
from distgrad.dtypes import bfloat16
from distgrad.distributed.reduce_op import ReduceOp
from distgrad.distributed.work import Work


def nccl_module():
    """CuPy's NCCL bindings, ``cupy.cuda.nccl``: a submodule that ``import cupy`` does not load."""
    return importlib.import_module(backend.cupy_module().__name__ + ".cuda.nccl")


def nccl_available() -> bool:
    try:
        return nccl_module().available
    except ImportError:
        return False


class NCCLWork(Work):
    """A collective queued on the NCCL stream; ``done`` is the event recorded after it."""

    def __init__(self, done, finish=None, arrays=()):
        self._done = done
        self._finish = finish
        self._arrays = arrays  # kept alive until the collective has used them
        self._finished = False

    def wait(self) -> bool:
        if not self._finished:
            self._finished = True
            backend.cupy_module().cuda.get_current_stream().wait_event(self._done)
            if self._finish is not None:
                self._finish()  # queued on the caller's stream, after the collective
        return True

    def is_completed(self) -> bool:
        if backend.capturing():  # a recorded event cannot be queried: it has not happened
            return False
        if self._done.done:
            self.wait()
            return True
        return False

    def poll(self) -> bool:
        return not backend.capturing() and self._done.done


class NCCLCommunicator:
    """An NCCL communicator over the ranks of ``mpi_comm``, on the GPU current at creation."""

    def __init__(self, mpi_comm, store=None, store_key: str = "distgrad/nccl"):
        cp, nccl = backend.cupy_module(), nccl_module()
        if not nccl.available:
            raise RuntimeError("backend 'nccl' needs CuPy built with NCCL (cupy.cuda.nccl.available is False)")
        self._cp, self._nccl = cp, nccl
        self.rank, self.size = mpi_comm.Get_rank(), mpi_comm.Get_size()
        self.device = backend.Device("cuda", backend.current_cuda_index())
        unique_id = share_unique_id(self.rank, nccl.get_unique_id, mpi_comm, store, store_key)
        self.comm = nccl.NcclCommunicator(self.size, unique_id, self.rank)
        self.stream = cp.cuda.Stream(non_blocking=True)
        self._ops = {ReduceOp.SUM: nccl.NCCL_SUM, ReduceOp.AVG: nccl.NCCL_AVG, ReduceOp.PRODUCT: nccl.NCCL_PROD,
                     ReduceOp.MIN: nccl.NCCL_MIN, ReduceOp.MAX: nccl.NCCL_MAX}
        self._dtypes = {np.dtype(name): getattr(nccl, "NCCL_" + name.upper()) for name in
                        ("float16", "float32", "float64", "int8", "uint8", "int32", "uint32", "int64", "uint64")}
        if hasattr(nccl, "NCCL_BFLOAT16"):  # NCCL 2.10+: bfloat16 on the wire, each reduction step added in float
            self._dtypes[bfloat16] = nccl.NCCL_BFLOAT16

    def knows_dtype(self, dtype) -> bool:
        """Whether NCCL reduces ``dtype`` itself (bfloat16 from NCCL 2.10)."""
        return np.dtype(dtype) in self._dtypes

    def _dtype(self, array):
        try:
            return self._dtypes[array.dtype]
        except KeyError:
            raise TypeError(f"NCCL does not support dtype {array.dtype}") from None

    def _launch(self, arrays, enqueue, finish=None) -> NCCLWork:
        """Runs ``enqueue(stream_ptr)`` on the NCCL stream, ordered after the caller's stream."""
        for a in arrays:
            if backend.device_of(a) != self.device:
                raise RuntimeError(f"tensor on {backend.device_of(a)}, but this rank's NCCL communicator "
                                   f"is bound to {self.device}")
        self.stream.wait_event(self._cp.cuda.get_current_stream().record())
        enqueue(self.stream.ptr)
        return NCCLWork(self.stream.record(), finish, tuple(arrays))

    # --- collectives (always asynchronous; the caller waits for blocking calls) ---------------------
    def all_reduce(self, array, op: ReduceOp, async_op: bool) -> NCCLWork:
        ptr = array.data.ptr
        return self._launch([array], lambda s: self.comm.allReduce(
            ptr, ptr, array.size, self._dtype(array), self._ops[op], s))

    def broadcast(self, array, root: int, async_op: bool) -> NCCLWork:
        ptr = array.data.ptr
        return self._launch([array], lambda s: self.comm.broadcast(ptr, ptr, array.size, self._dtype(array), root, s))

    def reduce(self, array, root: int, op: ReduceOp, async_op: bool) -> NCCLWork:
        ptr = array.data.ptr
        return self._launch([array], lambda s: self.comm.reduce(
            ptr, ptr, array.size, self._dtype(array), self._ops[op], root, s))

    def all_gather(self, outputs: list, array, async_op: bool) -> NCCLWork:
        gathered = self._cp.empty((self.size,) + array.shape, array.dtype)
        return self._all_gather(gathered, array, finish=lambda: _copy_rows(gathered, outputs))

    def all_gather_into_tensor(self, output, array, async_op: bool) -> NCCLWork:
        # In place when ``array`` is this rank's chunk of ``output``: NCCL allows exactly that aliasing.
        return self._all_gather(output, array)

    def _all_gather(self, output, array, finish=None) -> NCCLWork:
        return self._launch([array, output], lambda s: self.comm.allGather(
            array.data.ptr, output.data.ptr, array.size, self._dtype(array), s), finish=finish)

    def reduce_scatter(self, output, inputs: list, op: ReduceOp, async_op: bool) -> NCCLWork:
        return self.reduce_scatter_tensor(output, self._cp.stack(inputs), op, async_op)

    def reduce_scatter_tensor(self, output, array, op: ReduceOp, async_op: bool) -> NCCLWork:
        """Rank r's ``output`` becomes the reduction of every rank's chunk r of the flat ``array``."""
        return self._launch([output, array], lambda s: self.comm.reduceScatter(
            array.data.ptr, output.data.ptr, output.size, self._dtype(output), self._ops[op], s))

    def reduce_scatter_v(self, output, array, counts: list, op: ReduceOp, async_op: bool) -> NCCLWork:
        """NCCL's reduce-scatter needs equal chunks: one ``reduce`` per rank's chunk instead, to that rank,
        fused in one group (as DeepSpeed reduces a bucket to the owners of its parts)."""
        itemsize, dtype = array.dtype.itemsize, self._dtype(array)

        def reduce_each(stream):
            self._nccl.groupStart()
            start = 0
            for root, count in enumerate(counts):
                if count:
                    send = array.data.ptr + start * itemsize
                    receive = output.data.ptr if root == self.rank else send  # read on the root only
                    self.comm.reduce(send, receive, count, dtype, self._ops[op], root, stream)
                start += count
            self._nccl.groupEnd()
        return self._launch([output, array], reduce_each)

    def gather(self, array, outputs: list | None, root: int, async_op: bool) -> NCCLWork:
        if self.rank != root:
            return self._launch([array], lambda s: self.comm.send(
                array.data.ptr, array.size, self._dtype(array), root, s))
        gathered = self._cp.empty((self.size,) + array.shape, array.dtype)
        gathered[root] = array

        def receive_all(stream):
            self._nccl.groupStart()
            for peer in range(self.size):
                if peer != root:
                    self.comm.recv(gathered[peer].data.ptr, array.size, self._dtype(array), peer, stream)
            self._nccl.groupEnd()
        return self._launch([array, gathered], receive_all, finish=lambda: _copy_rows(gathered, outputs))

    def scatter(self, output, inputs: list | None, root: int, async_op: bool) -> NCCLWork:
        if self.rank != root:
            return self._launch([output], lambda s: self.comm.recv(
                output.data.ptr, output.size, self._dtype(output), root, s))
        stacked = self._cp.stack(inputs)
        output[...] = stacked[root]

        def send_all(stream):
            self._nccl.groupStart()
            for peer in range(self.size):
                if peer != root:
                    self.comm.send(stacked[peer].data.ptr, output.size, self._dtype(output), peer, stream)
            self._nccl.groupEnd()
        return self._launch([output, stacked], send_all)

    # --- health ----------------------------------------------------------------------------------
    def async_error(self) -> str | None:
        """The communicator's asynchronous error (a peer died, a network failure), or None."""
        try:
            self.comm.check_async_error()
        except Exception as e:  # cupy.cuda.nccl.NcclError
            return str(e)
        return None

    def abort(self) -> None:
        self.comm.abort()

    def destroy(self) -> None:
        self.comm.destroy()


def share_unique_id(rank: int, draw, mpi_comm=None, store=None, key: str = "distgrad/nccl"):
    """Rank 0's ``draw()`` (NCCL's unique id, a tuple of byte values) on every rank: through ``store``
    under ``key`` when given, as PyTorch's NCCL backend does, else broadcast over ``mpi_comm``."""
    if store is None:
        return mpi_comm.bcast(draw() if rank == 0 else None, root=0)
    if rank == 0:
        store.set(key, json.dumps([int(b) for b in draw()]))
    return tuple(json.loads(store.get(key)))


def _copy_rows(gathered, outputs: list) -> None:
    for row, out in zip(gathered, outputs):
        out[...] = row
