"""Collectives over MPI on arrays (mpi4py's buffer methods, no pickling).

NumPy arrays go to MPI as they are. CuPy arrays go directly when the MPI library is CUDA-aware,
otherwise through pinned host memory: copied out before the collective and back after it. Blocking
calls use MPI's blocking collectives (the fastest path); ``async_op`` uses the non-blocking ones
(``Iallreduce``, ``Ibcast``, ...) and returns an ``MPIWork``.

16-bit floats that this MPI has no datatype for (bfloat16 always: MPI has none; float16 on Open MPI
4) are reduced through float32 copies, so they are summed in float32 and rounded once; the other
collectives move them as their 16-bit patterns (``uint16``), unchanged.
"""
from __future__ import annotations

import threading

import numpy as np

from distgrad import backend
from distgrad.dtypes import LOW_PRECISION
from distgrad.distributed import mpi_env
from distgrad.distributed.reduce_op import ReduceOp, divide_in_place
from distgrad.distributed.work import Work


class MPIWork(Work):
    """A non-blocking MPI collective and the steps that finish it once the transfer is done."""

    def __init__(self, request, finish=None):
        self._request = request
        self._finish = finish
        self._lock = threading.Lock()  # one thread at a time may test or wait on an MPI request
        self._transferred = False
        self._finished = False

    def wait(self) -> bool:
        if not self._finished:
            with self._lock:
                if not self._transferred:
                    self._request.Wait()
                    self._transferred = True
            self._run_finish()
        return True

    def is_completed(self) -> bool:
        if not self._finished and self._test(wait_for_lock=True):
            self._run_finish()
        return self._finished

    def poll(self) -> bool:
        return self._test(wait_for_lock=False)

    def _test(self, wait_for_lock: bool) -> bool:
        if self._transferred:
            return True
        if not self._lock.acquire(blocking=wait_for_lock):
            return False  # another thread is waiting on it: still in flight
        try:
            if not self._transferred:
                self._transferred = self._request.Test()
        finally:
            self._lock.release()
        return self._transferred

    def _run_finish(self) -> None:
        if not self._finished:
            self._finished = True
            if self._finish is not None:
                self._finish()


def _pinned_empty(shape, dtype):
    """A NumPy array in page-locked host memory (fast device copies), from CuPy's pinned pool."""
    dtype = np.dtype(dtype)
    count = int(np.prod(shape))
    memory = backend.cupy_module().cuda.alloc_pinned_memory(max(count * dtype.itemsize, 1))
    return np.frombuffer(memory, dtype, count).reshape(shape)


def _copy_into(dst, src) -> None:
    """``dst[...] = src`` across host and device."""
    if backend.is_device_array(dst) and not backend.is_device_array(src):
        dst.set(np.ascontiguousarray(src).reshape(dst.shape))  # ascontiguousarray makes 0-d arrays 1-d
        backend.synchronize(backend.device_of(dst))  # the pinned source returns to a pool on exit
    else:
        dst[...] = src


class MPICommunicator:
    """One MPI communicator's collectives on arrays; ranks are ranks of this communicator."""

    def __init__(self, comm, cuda_aware: bool | None = None):
        self._MPI = mpi_env.mpi()
        self.comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        self.cuda_aware = mpi_env.is_cuda_aware() if cuda_aware is None else cuda_aware
        mpi = self._MPI
        self._ops = {ReduceOp.SUM: mpi.SUM, ReduceOp.AVG: mpi.SUM, ReduceOp.PRODUCT: mpi.PROD,
                     ReduceOp.MIN: mpi.MIN, ReduceOp.MAX: mpi.MAX}

    # --- buffers MPI can use ---------------------------------------------------------------------
    def _staged(self, array) -> bool:
        return backend.is_device_array(array) and not self.cuda_aware

    def _readable(self, array):
        """What MPI reads for ``array``: itself, or a pinned host copy."""
        if backend.is_device_array(array):
            backend.synchronize(backend.device_of(array))  # queued kernels must have written it
            if not self.cuda_aware:
                return array.get(out=_pinned_empty(array.shape, array.dtype))
        return array

    def _writable(self, array):
        """What MPI writes for ``array``: itself, or a pinned host buffer to copy back from."""
        if backend.is_device_array(array):
            backend.synchronize(backend.device_of(array))  # queued kernels may still read it
            if not self.cuda_aware:
                return _pinned_empty(array.shape, array.dtype)
        return array

    def _scratch(self, shape, like):
        """An empty buffer MPI can write, where ``like``'s data would be."""
        if self._staged(like):
            return _pinned_empty(shape, like.dtype)
        with backend.cuda_device_context(backend.device_of(like)):
            return backend.array_module(like).empty(shape, like.dtype)

    def _finisher(self, array, buffer, op: ReduceOp | None = None):
        """Copies ``buffer`` back into ``array`` when they differ, then divides for ``AVG``."""
        def finish():
            if buffer is not array:
                _copy_into(array, buffer)
            if op is ReduceOp.AVG:
                divide_in_place(array, self.size)
        return finish if buffer is not array or op is ReduceOp.AVG else None

    def _run(self, name: str, args: tuple, finish, async_op: bool):
        if async_op:
            return MPIWork(getattr(self.comm, "I" + name.lower())(*args), finish)
        getattr(self.comm, name)(*args)
        if finish is not None:
            finish()
        return None

    def knows_dtype(self, dtype) -> bool:
        """Whether this MPI has a datatype for ``dtype`` (Open MPI 4 has none for float16)."""
        mpi = self._MPI
        datatype = getattr(mpi, "_typedict", {}).get(np.dtype(dtype).char)
        return datatype is not None and datatype != mpi.DATATYPE_NULL

    def _lacks(self, dtype) -> bool:
        """A 16-bit float MPI cannot reduce (bfloat16; float16 where MPI has no datatype for it)."""
        return dtype in LOW_PRECISION and not self.knows_dtype(dtype)

    def _bits(self, array):
        """What MPI moves for ``array``: itself, or its bit patterns when MPI has no datatype for it."""
        return array.view(np.uint16) if self._lacks(array.dtype) else array

    def _in_float32(self, result, reduce, async_op: bool):
        """A reduction into ``result`` (of a dtype MPI lacks) run by ``reduce(wide)`` into ``wide``, a float32
        copy of it; ``result`` gets ``wide`` rounded once the reduction is done."""
        wide = result.astype(np.float32)
        work = reduce(wide)

        def round_back():
            _copy_into(result, wide.astype(result.dtype))
        if work is None:
            round_back()
            return None
        return _Then(work, round_back)

    # --- collectives -----------------------------------------------------------------------------
    def all_reduce(self, array, op: ReduceOp, async_op: bool):
        if self._lacks(array.dtype):
            return self._in_float32(array, lambda wide: self.all_reduce(wide, op, async_op), async_op)
        buffer = self._readable(array)
        return self._run("Allreduce", (self._MPI.IN_PLACE, buffer, self._ops[op]),
                         self._finisher(array, buffer, op), async_op)

    def broadcast(self, array, root: int, async_op: bool):
        array = self._bits(array)
        buffer = self._readable(array) if self.rank == root else self._writable(array)
        finish = self._finisher(array, buffer) if self.rank != root else None
        return self._run("Bcast", (buffer, root), finish, async_op)

    def reduce(self, array, root: int, op: ReduceOp, async_op: bool):
        if self._lacks(array.dtype):
            return self._in_float32(array, lambda wide: self.reduce(wide, root, op, async_op), async_op)
        buffer = self._readable(array)
        if self.rank == root:
            return self._run("Reduce", (self._MPI.IN_PLACE, buffer, self._ops[op], root),
                             self._finisher(array, buffer, op), async_op)
        return self._run("Reduce", (buffer, None, self._ops[op], root), None, async_op)

    def all_gather(self, outputs: list, array, async_op: bool):
        array, outputs = self._bits(array), [self._bits(out) for out in outputs]
        gathered = self._scratch((self.size,) + array.shape, array)
        return self._run("Allgather", (self._readable(array), gathered),
                         lambda: _scatter_rows(gathered, outputs), async_op)

    def all_gather_into_tensor(self, output, array, async_op: bool):
        """``output`` holds ``size`` chunks of ``array``'s size; chunk r becomes rank r's ``array``."""
        if not self._staged(output) and _is_chunk_of(array, output, self.rank):
            # ZeRO's flat parameter buffer: each rank's chunk is already in place, so MPI sends it from there.
            return self._run("Allgather", (self._MPI.IN_PLACE, output), None, async_op)
        buffer = self._writable(output)
        return self._run("Allgather", (self._readable(array), buffer), self._finisher(output, buffer), async_op)

    def reduce_scatter(self, output, inputs: list, op: ReduceOp, async_op: bool):
        return self.reduce_scatter_tensor(output, backend.array_module(output).stack(inputs), op, async_op)

    def reduce_scatter_tensor(self, output, array, op: ReduceOp, async_op: bool):
        """``array`` holds ``size`` chunks of ``output``'s size; rank r's ``output`` becomes the reduction of
        every rank's chunk r. (MPI's in-place variant leaves the result where NCCL's would not: none here.)"""
        if self._lacks(output.dtype):
            wide_array = array.astype(np.float32)
            return self._in_float32(output, lambda wide: self.reduce_scatter_tensor(wide, wide_array, op, async_op),
                                    async_op)
        buffer = self._writable(output)
        return self._run("Reduce_scatter_block", (self._readable(array), buffer, self._ops[op]),
                         self._finisher(output, buffer, op), async_op)

    def reduce_scatter_v(self, output, array, counts: list, op: ReduceOp, async_op: bool):
        """Rank r's ``output`` becomes the reduction of every rank's chunk r (``counts[r]`` elements)."""
        if self._lacks(output.dtype):
            wide_array = array.astype(np.float32)
            return self._in_float32(output, lambda wide: self.reduce_scatter_v(wide, wide_array, counts, op, async_op),
                                    async_op)
        buffer = self._writable(output)
        return self._run("Reduce_scatter", (self._readable(array), buffer, counts, self._ops[op]),
                         self._finisher(output, buffer, op), async_op)

    def gather(self, array, outputs: list | None, root: int, async_op: bool):
        array, outputs = self._bits(array), outputs and [self._bits(out) for out in outputs]
        if self.rank != root:
            return self._run("Gather", (self._readable(array), None, root), None, async_op)
        gathered = self._scratch((self.size,) + array.shape, array)
        return self._run("Gather", (self._readable(array), gathered, root),
                         lambda: _scatter_rows(gathered, outputs), async_op)

    def scatter(self, output, inputs: list | None, root: int, async_op: bool):
        output, inputs = self._bits(output), inputs and [self._bits(a) for a in inputs]
        stacked = self._readable(backend.array_module(output).stack(inputs)) if self.rank == root else None
        buffer = self._writable(output)
        return self._run("Scatter", (stacked, buffer, root), self._finisher(output, buffer), async_op)

    def barrier(self, async_op: bool):
        return self._run("Barrier", (), None, async_op)


class _Then(Work):
    """``work``, then ``finish()`` once it is done (a reduction's rounding back from float32)."""

    def __init__(self, work, finish):
        self._work, self._finish, self._finished = work, finish, False

    def wait(self) -> bool:
        self._work.wait()
        self._run_finish()
        return True

    def is_completed(self) -> bool:
        if self._work.is_completed():
            self._run_finish()
            return True
        return False

    def poll(self) -> bool:
        return self._work.poll()

    def _run_finish(self) -> None:
        if not self._finished:
            self._finished = True
            self._finish()


def _is_chunk_of(array, output, rank: int) -> bool:
    """Whether ``array`` is exactly chunk ``rank`` of the contiguous ``output`` (the same memory)."""
    if array.size == 0 or array.dtype != output.dtype or not array.flags.c_contiguous:
        return False
    return _address(array) == _address(output) + rank * array.size * array.itemsize


def _address(array) -> int:
    return array.data.ptr if backend.is_device_array(array) else array.__array_interface__["data"][0]


def _scatter_rows(gathered, outputs: list) -> None:
    for row, out in zip(gathered, outputs):
        _copy_into(out, row)
