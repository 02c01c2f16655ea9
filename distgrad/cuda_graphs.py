"""CUDA graphs: record a training step's GPU work once, then replay it with one launch per step.

An eager distgrad step costs the GPU little and the host a lot: every recorded op is Python (a Function,
a Tensor, CuPy's launch), tens of microseconds while the kernel itself takes a few (W3 on an H100: 70 us
per op). A CUDA graph replays the kernels without the Python. PyTorch's names: ``CUDAGraph``
(``capture_begin/capture_end/replay/reset/pool``), the context ``graph(g)``, and, for the common case,
``make_graphed_step(step, sample_inputs)`` which captures a whole step (forward, backward, DDP's NCCL
all-reduces, the optimizer) and replays it.

How a capture works:

- **Stream.** Work is recorded from one non-blocking side stream (``graph`` makes one current; CUDA
  cannot capture the legacy default stream). Warm-up runs there too, so lazily made state (optimizer
  buffers, CuPy's compiled kernels, cuBLAS's handle, DDP's bucket order) exists before the capture.
- **Memory (CuPy issue 9655).** Every array allocated during the capture comes from a ``MemoryPool`` that
  belongs to the graph (``cupy.cuda.using_allocator`` around the capture) and lives as long as it. An
  intermediate freed after the capture returns to that pool, which nothing else allocates from, so the
  next replay cannot find its memory reused by other work. Arrays made before the capture and read by
  the graph (parameters, optimizer state, the static inputs) stay alive with their owners; the graph keeps
  the static inputs and outputs.
- **GEMMs.** CuPy refuses cuBLAS on a capturing stream (``cublas.setStream`` raises NotImplementedError
  in CuPy 14), although cuBLAS's GEMMs can be captured. Options weighed: (1) nvmath-python's cuBLAS/cuBLASLt
  bindings: complete and maintained, but not in the GPU image (a wheel to carry) and one more dependency
  for two calls; (2) CUDA Python (cuda-bindings): driver, runtime and NVRTC only, no cuBLAS; (3) graphs
  split around each GEMM, the GEMMs eager: keeps Python on the path of every linear layer, which is most
  of W1's ops, so most of the gain goes; (4) cuBLAS itself through ctypes, on the library CuPy has loaded:
  no dependency, two functions (``cublasGemmEx``, ``cublasGemmStridedBatchedEx``), a handle and a workspace
  of our own. Chosen: (4), ``distgrad/cublas.py``; ``backend.matmul`` uses it while capturing.
- **Host synchronisation.** While capturing, ``backend.capturing()`` is true and ops that would make the
  host wait for the GPU (``item()``, ``tolist()``, ``bool()``, printing, copies to the host, data-dependent
  shapes: ``nonzero``, boolean masks, ``repeat_interleave`` without ``output_size``) raise an error naming
  the op. Checks that read values on the host (index ranges of embedding, cross-entropy, indexing) are
  skipped inside a capture.
- **Random numbers.** Dropout on the GPU draws from a counter-based hash; inside a capture its offset is
  read from a device counter that the graph advances at the end of each replay, so replays draw new masks.
- **Distributed.** NCCL collectives are captured (the NCCL stream joins the capture through events; DDP's
  progress polls and the watchdog leave captured work alone). MPI collectives run on the host and cannot
  be: ``make_graphed_step`` runs such a step eagerly and says so once. So does it for optimizers whose
  step reads host-side counters (Adam's bias correction): only SGD is captured today.

Replays reuse the outputs of the capture: the tensors ``make_graphed_step`` returns are overwritten by the
next call (clone them to keep them), and a learning rate changed on the host after the capture is not seen.
On the CPU there is nothing to capture: ``make_graphed_step`` then runs the step on its static buffers under
the same checks (``SimulatedGraph``), which is also how the tests exercise this module without a GPU.
"""
from __future__ import annotations

import contextlib
import itertools
import warnings

import numpy as np

from distgrad import backend, cublas, random
from distgrad.kernels import pointwise
from distgrad.tensor import Tensor

__all__ = ["CUDAGraph", "graph", "graph_pool_handle", "make_graphed_step", "GraphedStep"]

CAPTURABLE_OPTIMIZERS = ("SGD",)
_graph_numbers = itertools.count(1)


class GraphRandom:
    """The counter-based draws of one capture: ``seed``, a device ``counter`` that the graph advances by
    ``total`` after each replay, and ``take(count)``, each draw's offset from it within the step."""

    def __init__(self, counter, number: int):
        self.seed = (random.default_generator.cuda_seed * 0x9E3779B97F4A7C15 + number) % 2**64
        self.counter = counter
        self.total = 0

    def take(self, count: int) -> int:
        start = self.total
        self.total += int(count)
        return start


def graph_pool_handle():
    """A memory pool that graphs can share (``graph(g, pool=...)``): PyTorch's ``graph_pool_handle``."""
    return backend.cupy_module().cuda.MemoryPool()


class CUDAGraph:
    """GPU work recorded from a stream, replayed with ``replay()`` (PyTorch's ``torch.cuda.CUDAGraph``)."""

    def __init__(self):
        self._graph = self._pool = self._stream = self._allocator = self._rng = None
        self.number = next(_graph_numbers)

    def capture_begin(self, pool=None) -> None:
        """Starts recording the current stream (a side stream: ``graph()`` makes one current)."""
        cp = backend.cupy_module()
        if self._graph is not None:
            raise RuntimeError("this CUDAGraph already holds a capture: reset() it first")
        stream = cp.cuda.get_current_stream()
        if stream.ptr == 0:
            raise RuntimeError("CUDA graphs cannot capture the default stream: capture inside dg.cuda.graph(g), "
                               "which makes a side stream current")
        cublas.handle(cp)  # made now: creating a handle inside the capture would allocate and synchronise
        self._stream, self._pool = stream, cp.cuda.MemoryPool() if pool is None else pool
        self._rng = GraphRandom(cp.zeros(1, np.uint64), self.number)  # zeroed now, not by every replay
        self._allocator = cp.cuda.using_allocator(self._pool.malloc)
        self._allocator.__enter__()
        backend.set_capture(f"CUDAGraph {self.number}", rng=self._rng)
        try:
            stream.begin_capture()
        except Exception:
            self._end_state()
            raise

    def capture_end(self) -> None:
        """Ends the recording and instantiates the graph (the recorded work has not run yet)."""
        try:
            if self._rng.total:
                pointwise.advance_counter(self._rng.counter, self._rng.total)  # recorded: runs after each replay
            self._graph = self._stream.end_capture()
        finally:
            self._end_state()

    def _end_state(self) -> None:
        backend.set_capture(None)
        self._allocator.__exit__(None, None, None)
        self._allocator = None

    def replay(self) -> None:
        """Launches the recorded work on the current stream."""
        if self._graph is None:
            raise RuntimeError("replay() of a CUDAGraph that has not captured anything")
        self._graph.launch(stream=backend.cupy_module().cuda.get_current_stream())

    def reset(self) -> None:
        """Drops the graph and its memory pool."""
        self._graph = self._pool = self._rng = None

    def pool(self):
        """The graph's memory pool, to share with another capture (``graph(g2, pool=g1.pool())``)."""
        return self._pool


@contextlib.contextmanager
def graph(cuda_graph: CUDAGraph, pool=None, stream=None):
    """Records the GPU work of the ``with`` block into ``cuda_graph`` (PyTorch's ``torch.cuda.graph``).

    The block runs on ``stream`` (by default a new non-blocking stream), after the work already queued;
    nothing it queues runs until ``cuda_graph.replay()``.
    """
    cp = backend.cupy_module()
    cp.cuda.get_current_stream().synchronize()
    stream = cp.cuda.Stream(non_blocking=True) if stream is None else stream
    with stream:
        cuda_graph.capture_begin(pool)
        try:
            yield cuda_graph
        except BaseException:
            with contextlib.suppress(Exception):  # the capture is broken; the block's error is the one to see
                cuda_graph.capture_end()
            cuda_graph.reset()
            raise
        cuda_graph.capture_end()


@contextlib.contextmanager
def simulated_capture(name: str = "simulated capture"):
    """The capture state without a GPU: host-synchronising ops raise as in a real capture, and dropout draws
    from a host counter. For tests, and for ``make_graphed_step`` on the CPU."""
    rng = GraphRandom(np.zeros(1, np.uint64), 0)
    backend.set_capture(name, simulated=True, rng=rng)
    try:
        yield rng
    finally:
        backend.set_capture(None)


# --- one call: make_graphed_step ------------------------------------------------------------------------
def shape_key(inputs) -> tuple:
    """What decides whether a captured graph fits these inputs: each tensor's shape, dtype and device."""
    key = []
    for i, t in enumerate(inputs):
        if not isinstance(t, Tensor):
            raise TypeError(f"make_graphed_step: input {i} is a {type(t).__name__}; a graphed step takes tensors "
                            f"only (numbers are fixed when the step is captured: close over them instead)")
        if t.requires_grad:
            raise ValueError(f"make_graphed_step: input {i} requires grad; the step's inputs are data, copied into "
                             f"static buffers on each call")
        key.append((tuple(t.shape), t.dtype.str, str(t.device)))
    return tuple(key)


def static_buffers(inputs) -> list:
    """Tensors laid out like ``inputs`` (same shape, dtype, device, C-contiguous) that a graph reads from."""
    return [Tensor(t._xp.empty(t.shape, t.dtype)) for t in inputs]


def eager_reason(optimizer=None, model=None) -> str | None:
    """Why a step with ``optimizer`` and ``model`` cannot be captured (it then runs eagerly), or None."""
    if optimizer is not None and type(optimizer).__name__ not in CAPTURABLE_OPTIMIZERS:
        return (f"{type(optimizer).__name__}.step reads host-side state that changes every step (a step count for "
                f"bias correction), which a captured graph would freeze; only {', '.join(CAPTURABLE_OPTIMIZERS)} "
                f"is captured")
    if model is not None and type(model).__name__ == "DistributedDataParallel":
        from distgrad.distributed import world
        group = world.resolve_group(model.process_group)
        if group is not None and group.backend != "nccl":
            return (f"DistributedDataParallel over {group.backend!r}: its collectives run on the host and cannot be "
                    f"captured; use backend='nccl' for a graphed data-parallel step")
    return None


class SimulatedGraph:
    """The CPU's stand-in for a captured step: ``capture`` runs the step under the capture checks and keeps
    its outputs; ``replay`` runs it again and writes the results into those same output tensors."""

    runs_when_captured = True  # a real capture only records: its step runs at the first replay

    def __init__(self, step, static_inputs):
        self.step, self.static_inputs = step, static_inputs

    def capture(self):
        with simulated_capture("make_graphed_step (simulated: no GPU)"):
            self.outputs = _detached(self.step(*self.static_inputs))
        return self.outputs

    def replay(self) -> None:
        for kept, new in zip(_as_tuple(self.outputs), _as_tuple(self.step(*self.static_inputs))):
            kept.array[...] = new.array


class _DeviceGraph:
    """A step captured in a ``CUDAGraph`` on ``stream``."""

    runs_when_captured = False

    def __init__(self, step, static_inputs, stream):
        self.step, self.static_inputs, self.stream = step, static_inputs, stream
        self.graph = CUDAGraph()

    def capture(self):
        with graph(self.graph, stream=self.stream):
            self.outputs = _detached(self.step(*self.static_inputs))
        return self.outputs

    def replay(self) -> None:
        self.graph.replay()


def _as_tuple(outputs) -> tuple:
    return tuple(outputs) if isinstance(outputs, (tuple, list)) else (outputs,)


def _detached(outputs):
    """The step's outputs without their autograd graph (which would keep the step's activations alive)."""
    if isinstance(outputs, (tuple, list)):
        return type(outputs)(_detached(o) for o in outputs)
    return outputs.detach() if isinstance(outputs, Tensor) else outputs


class GraphedStep:
    """``step`` captured once per input shape and replayed (see ``make_graphed_step``)."""

    def __init__(self, step, sample_inputs, warmup: int = 3, optimizer=None, model=None):
        if warmup < 1:
            raise ValueError(f"make_graphed_step: warmup must be at least 1 (eager steps before the capture), got {warmup}")
        self.step, self.warmup = step, warmup
        self.reason = eager_reason(optimizer, model)
        self.graphs = {}  # shape key -> captured graph (SimulatedGraph on the CPU)
        self.calls = {}  # shape key -> calls so far
        self.device = sample_inputs[0].device if sample_inputs else backend.CPU
        shape_key(sample_inputs)  # checks the inputs now rather than at the first call
        self._stream = None
        self._warned = False

    def __call__(self, *inputs):
        key = shape_key(inputs)
        self.calls[key] = self.calls.get(key, 0) + 1
        if self.reason is not None:
            if not self._warned:
                warnings.warn(f"make_graphed_step runs the step eagerly: {self.reason}", stacklevel=2)
                self._warned = True
            return _detached(self.step(*inputs))
        if key not in self.graphs and self.calls[key] <= self.warmup:
            return self._eager(inputs)
        if key not in self.graphs:
            return self._capture(key, inputs)
        found = self.graphs[key]
        _copy_into(found.static_inputs, inputs)
        found.replay()
        return found.outputs

    def _eager(self, inputs):
        """A warm-up step, on the side stream that the capture will use."""
        if self.device.type == "cpu":
            return _detached(self.step(*inputs))
        cp = backend.cupy_module()
        current, side = cp.cuda.get_current_stream(), self._side_stream()
        side.wait_event(current.record())
        with side:
            cublas.handle(cp)
            out = _detached(self.step(*inputs))
        current.wait_event(side.record())
        return out

    def _capture(self, key, inputs):
        static = static_buffers(inputs)
        _copy_into(static, inputs)
        captured = SimulatedGraph(self.step, static) if self.device.type == "cpu" else \
            _DeviceGraph(self.step, static, self._side_stream())
        captured.capture()
        self.graphs[key] = captured
        if not captured.runs_when_captured:
            captured.replay()  # the capture recorded this call's step; now it runs
        return captured.outputs

    def _side_stream(self):
        if self._stream is None:
            self._stream = backend.cupy_module().cuda.Stream(non_blocking=True)
        return self._stream


def _copy_into(static, inputs) -> None:
    for buffer, t in zip(static, inputs):
        buffer.array[...] = t.array


def make_graphed_step(step, sample_inputs, warmup: int = 3, *, optimizer=None, model=None) -> GraphedStep:
    """``step(*inputs)`` (forward, backward, optimizer step; returns tensors such as the loss) as a callable
    that replays a CUDA graph of it; the tensors it returns are detached from the autograd graph.

    For each input shape the first ``warmup`` calls run eagerly (real steps, on a side stream), the next
    one captures the step on static copies of its inputs and replays it, and later calls copy their inputs
    into the static buffers and replay. The returned tensors are the capture's outputs, overwritten by
    every call. Pass ``optimizer`` and (for DDP) ``model`` so that a step that cannot be captured (see
    ``eager_reason``) runs eagerly, with one warning, instead of replaying frozen host values.
    """
    return GraphedStep(step, tuple(sample_inputs), warmup, optimizer, model)
