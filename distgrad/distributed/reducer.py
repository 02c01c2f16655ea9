"""The reducer: DDP's gradient averaging, driven by the autograd engine's hooks.

Every parameter gets a post-accumulate-grad hook. When it fires the parameter's gradient is final:
it is copied into the parameter's slot of its bucket, and if that was the bucket's last gradient the
bucket's reduction starts at once, asynchronously, while backward goes on computing the gradients
of earlier layers. Buckets are launched strictly in index order, the same on every rank (MPI and
NCCL match collectives by the order in which ranks issue them), so a bucket that fills early waits
for the earlier ones. The first hook of a backward pass queues an end-of-backward callback, which
waits for the buckets in order and writes the averaged gradients into ``p.grad``.

Under ``Join`` a rank that has run out of inputs runs ``shadow_backward``: the same buckets, in the
same order, filled with zeros, so that the ranks still training find a partner for every collective;
the average divides by ``divisor`` (the ranks still training) when Join asks for it. ``ZeRO-2``
(``grad_sharding.py``) changes three steps of this class: how a gradient enters its bucket, how a
bucket is reduced (reduce-scatter) and what is written back (only this rank's shard).
"""
from __future__ import annotations

import weakref

import numpy as np

from distgrad.autograd.engine import queue_callback
from distgrad.autograd.node import increment_version
from distgrad.distributed import collectives, object_collectives, world
from distgrad.distributed.buckets import GradBucket, assign_buckets
from distgrad.distributed.comm_hooks import allreduce_divided_hook, default_hook
from distgrad.distributed.reduce_op import ReduceOp
from distgrad.profiler import recorder as timeline
from distgrad.tensor import Tensor

UNUSED_PARAMETERS_HELP = (
    "This error indicates that your module has parameters that were not used in producing loss. You can "
    "enable unused parameter detection by passing the keyword argument `find_unused_parameters=True` to "
    "`distgrad.distributed.DistributedDataParallel`, and by making sure all `forward` function outputs "
    "participate in calculating loss."
)


def _grad_ready_hook(reducer_ref, index: int):
    """The hook of parameter ``index``; a weak reference, so a dropped DDP stops synchronising."""
    def hook(param):
        reducer = reducer_ref()
        if reducer is not None:
            reducer.grad_ready(index)
    return hook


class Reducer:
    """Averages the gradients of ``named_params`` across ``process_group`` during each synced backward."""

    def __init__(self, named_params: list, process_group, bucket_cap_bytes: int, find_unused_parameters: bool,
                 gradient_as_bucket_view: bool):
        self.names = [name for name, _ in named_params]
        self.params = [p for _, p in named_params]
        self.process_group = process_group
        self.bucket_cap_bytes = bucket_cap_bytes
        self.find_unused_parameters = find_unused_parameters
        self.gradient_as_bucket_view = gradient_as_bucket_view
        self.comm_hook_state, self.comm_hook = process_group, default_hook()
        self._comm_hook_registered = False
        self.divisor = None  # what the built-in reduction divides the sum by; None: the group's size
        self._shadowing = False  # True while a joined rank runs shadow_backward
        # Gradients usually become ready in reverse registration order: the last layer's first.
        self._build_buckets(list(reversed(range(len(self.params)))))
        self.expect_hooks = False  # True from a synced forward until its backward has finished
        # Readiness order of the first synced backward; after it, the buckets are rebuilt in that
        # order (not with find_unused_parameters: which parameters are used may change every step).
        self._ready_order = None if find_unused_parameters else []
        self._rebuild_order = None
        self.has_rebuilt_buckets = False
        self._locally_used = np.zeros(len(self.params), dtype=bool)  # got a gradient since the last sync
        self._unused = []
        self._ready = [False] * len(self.params)
        self._next_launch = 0
        self._first_unfinished = 0
        self._callback_queued = False
        me = weakref.ref(self)
        self._handles = [p.register_post_accumulate_grad_hook(_grad_ready_hook(me, i))
                         for i, p in enumerate(self.params)]

    def __del__(self):
        for handle in getattr(self, "_handles", ()):
            handle.remove()

    def _build_buckets(self, order: list[int]) -> None:
        groups = assign_buckets(self.params, order, self.bucket_cap_bytes)
        self.buckets = [self._make_bucket(b, indices, b == len(groups) - 1) for b, indices in enumerate(groups)]
        self._slot = [None] * len(self.params)  # parameter index -> (bucket, its position in the bucket)
        for bucket in self.buckets:
            for k, i in enumerate(bucket.param_indices):
                self._slot[i] = (bucket, k)

    def _make_bucket(self, index: int, param_indices: list[int], is_last: bool) -> GradBucket:
        return GradBucket(index, param_indices, self.params, is_last)

    def held_bytes(self) -> int:
        """Bytes that the gradient buffers (the buckets) keep between steps."""
        return sum(bucket.nbytes() for bucket in self.buckets)

    def _view(self, i: int):
        """Parameter ``i``'s slice of its bucket's buffer."""
        bucket, k = self._slot[i]
        return bucket.views[k]

    def register_comm_hook(self, state, hook) -> None:
        if self._comm_hook_registered:
            raise RuntimeError("register_comm_hook or register_builtin_comm_hook can only be called once.")
        if not callable(hook):
            raise TypeError(f"hook must be callable, got {type(hook).__name__}")
        self.comm_hook_state, self.comm_hook = state, hook
        self._comm_hook_registered = True

    # --- forward side ----------------------------------------------------------------------------
    def rebuild_buckets_if_needed(self) -> None:
        """After the first synced backward: buckets in the order gradients became ready on rank 0.

        Every rank calls this in the same forward, and all take rank 0's order (ranks may see
        different orders), so they keep launching the same buckets in the same order.
        """
        if self._rebuild_order is None:
            return
        order = [self._rebuild_order]
        root = world.resolve_group(self.process_group).ranks[0]
        object_collectives.broadcast_object_list(order, src=root, group=self.process_group)
        old_views = [self._view(i) for i in range(len(self.params))] if self.gradient_as_bucket_view else []
        self._build_buckets(order[0])
        if self.gradient_as_bucket_view:  # gradients that live in the old buckets move to the new ones
            for i, (p, old_view) in enumerate(zip(self.params, old_views)):
                if p.grad is not None and p.grad.array is old_view:
                    view = self._view(i)
                    view[...] = old_view
                    p.grad = Tensor(view)
        self._rebuild_order, self.has_rebuilt_buckets = None, True

    def prepare_for_backward(self, unused: list[int]) -> None:
        """The next backward synchronises; ``unused`` are parameters the forward did not reach."""
        if any(bucket.future is not None for bucket in self.buckets):
            raise RuntimeError("DistributedDataParallel: the previous backward pass started reducing gradients "
                               "but did not finish them (did it raise?); every rank must complete each backward "
                               "pass before the next forward.")
        self.expect_hooks = True
        self._callback_queued = False
        self._ready = [False] * len(self.params)
        self._next_launch = self._first_unfinished = 0
        for bucket in self.buckets:
            bucket.pending = len(bucket.param_indices)
        self._unused = unused
        if self._ready_order is not None:
            self._ready_order = []

    def shadow_backward(self) -> None:
        """A joined rank's part in one synced backward of the ranks still training: every bucket is
        reduced, in the same order, with zeros for this rank's gradients; the averages land in ``p.grad``
        (PyTorch drops them; keeping them lets ZeroRedundancyOptimizer's join hook step this rank's shard)."""
        self.prepare_for_backward([])
        self._shadowing = True
        try:
            for i in [i for bucket in self.buckets for i in bucket.param_indices]:  # the order of the layout
                self._mark_ready(i)
            self._finalize_backward()
        finally:
            self._shadowing = False

    # --- backward side: the hooks ------------------------------------------------------------------
    def grad_ready(self, i: int) -> None:
        """Parameter ``i``'s gradient is final for this backward pass."""
        self._locally_used[i] = True
        if not self.expect_hooks:  # no_sync, or a backward that DDP's forward did not prepare
            return
        if not self._callback_queued:
            self._callback_queued = True
            queue_callback(self._finalize_backward)
            for j in self._unused:  # they get no hook: ready now, so their buckets are not held back
                self._mark_ready(j)
        if self._ready[i]:
            raise RuntimeError(f"DistributedDataParallel: parameter '{self.names[i]}' was marked ready twice in one "
                               "backward pass. Not supported: using a parameter outside the DDP module's forward "
                               "with find_unused_parameters=True (no output leads to it, so it counted as unused), "
                               "reentrant backward, or a parameter shared by two DDP modules.")
        self._mark_ready(i)
        self._drive_progress()

    def _mark_ready(self, i: int) -> None:
        bucket = self._slot[i][0]
        self._fill_slot(i)
        self._ready[i] = True
        if self._ready_order is not None:
            self._ready_order.append(i)
        bucket.pending -= 1
        if bucket.pending == 0:
            self._launch_ready_buckets()

    def _fill_slot(self, i: int) -> None:
        """Parameter ``i``'s gradient (zeros if it has none, or while shadowing) into its bucket slot."""
        view, grad = self._view(i), self.params[i].grad
        if grad is None or self._shadowing:
            view.fill(0)
        elif grad.array is not view:
            view[...] = grad.array
            if self.gradient_as_bucket_view:
                self.params[i].grad = Tensor(view)

    def _launch_ready_buckets(self) -> None:
        """Launches, in index order, every full bucket whose predecessors have all been launched."""
        buckets = self.buckets
        while self._next_launch < len(buckets) and buckets[self._next_launch].pending == 0:
            bucket = buckets[self._next_launch]
            if timeline.ACTIVE is not None:
                bucket.launched_us = timeline.ACTIVE.now_us()
            bucket.future = self._reduce(bucket)
            self._next_launch += 1

    def _reduce(self, bucket: GradBucket):
        """Starts the bucket's reduction; returns its future (``CommFuture``)."""
        if self.divisor is not None and not self._comm_hook_registered:
            return allreduce_divided_hook(self.process_group, bucket, self.divisor)
        return self.comm_hook(self.comm_hook_state, bucket)

    def _drive_progress(self) -> None:
        # MPI moves a non-blocking collective along only inside MPI calls: one test of the oldest
        # unfinished bucket per hook lets transfers advance while backward computes.
        while self._first_unfinished < self._next_launch and \
                self.buckets[self._first_unfinished].future.poll():
            _timeline_reduced(self.buckets[self._first_unfinished])
            self._first_unfinished += 1

    # --- end of backward -------------------------------------------------------------------------
    def _finalize_backward(self) -> None:
        self.expect_hooks = False
        missing = [i for i, ready in enumerate(self._ready) if not ready]
        if missing and not self.find_unused_parameters:
            self._wait_for_launched()
            rank = world.get_rank(self.process_group)
            names = ", ".join(self.names[i] for i in missing)
            raise RuntimeError(f"DistributedDataParallel: parameters that did not receive a gradient on rank "
                               f"{rank}: {names}. {UNUSED_PARAMETERS_HELP}")
        for i in missing:  # reachable from the outputs, yet no gradient came: zero, like unused ones
            self._mark_ready(i)
        globally_used = self._globally_used() if self.find_unused_parameters else None
        waiting_since = timeline.ACTIVE.now_us() if timeline.ACTIVE is not None else None
        for bucket in self.buckets:
            self._receive(bucket, bucket.future.wait())
            _timeline_reduced(bucket)
            bucket.future = None
        if waiting_since is not None and timeline.ACTIVE is not None:
            timeline.ACTIVE.complete("DDP: wait for the buckets", "comm_wait", waiting_since,
                                     timeline.ACTIVE.now_us())
        self._write_back(globally_used)
        self._locally_used[:] = False
        if self._ready_order is not None:
            self._rebuild_order, self._ready_order = self._ready_order, None

    def _receive(self, bucket: GradBucket, reduced: Tensor) -> None:
        """Takes a bucket's reduced gradients (the hook's result) into its buffer."""
        if reduced.array is not bucket.buffer().array:
            bucket.buffer().array[...] = reduced.array

    def _wait_for_launched(self) -> None:
        for bucket in self.buckets[:self._next_launch]:
            bucket.future.wait()
        for bucket in self.buckets:
            bucket.future = None

    def _globally_used(self):
        """Which parameters got a gradient on some rank since the last sync (the others keep their grad)."""
        used = Tensor(self._locally_used.astype(np.int32))
        collectives.all_reduce(used, op=ReduceOp.SUM, group=self.process_group)
        return used.array > 0

    def _write_back(self, globally_used) -> None:
        for i, p in enumerate(self.params):
            if globally_used is not None and not globally_used[i]:
                continue
            view = self._view(i)
            if self.gradient_as_bucket_view:
                if p.grad is None or p.grad.array is not view:
                    p.grad = Tensor(view)
            elif p.grad is None:
                p.grad = Tensor(view.copy())
            else:
                p.grad.array[...] = view
                increment_version(p.grad)


def _timeline_reduced(bucket: GradBucket) -> None:
    """The bucket's reduction, from launch to when this rank saw it finished, on the timeline."""
    launched, active = getattr(bucket, "launched_us", None), timeline.ACTIVE
    if launched is not None and active is not None:
        active.complete(f"all-reduce bucket {bucket.index()}", "all_reduce", launched, active.now_us(),
                        track=f"DDP bucket {bucket.index()}",
                        args={"bytes": bucket.nbytes(), "parameters": len(bucket.param_indices)})
    bucket.launched_us = None
