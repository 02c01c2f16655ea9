"""Hierarchical all-reduce: reduce inside each node, all-reduce among one leader per node, broadcast
inside each node.

Why: a flat ring over p ranks on N nodes crosses the network at each of its 2(p-1) steps, so its
latency term grows with every GPU; here only the N leaders talk across nodes (2(N-1) steps), and the
traffic inside a node stays on its fast links (NVLink, shared memory). Each node still sends and
receives about 2n bytes through its network link, as in the flat ring; the price is the reduce and
the broadcast inside the node (each about an intra-node all-reduce's time: ``docs/scaling.md``).

Nodes are the ranks that share memory (``MPI_Comm_split_type(SHARED)``, which sees the nodes of
``mpiexec``, ``srun`` and of worlds joined through a rendezvous alike); ``DISTGRAD_RANKS_PER_NODE=k``
makes nodes of k consecutive group ranks instead, to try the algorithm on one machine (4 ranks as 2
nodes of 2). A node's leader is its lowest rank.

Three communicators carry the three stages: the node's (reduce), the leaders' (all-reduce), and a
second one of the node (broadcast). On the MPI backend a stage of one all-reduce starts when its
previous stage has finished, so several asynchronous all-reduces (DDP's buckets) are in different
stages at once; MPI requires every rank to issue the collectives of one communicator in the same
order, so a stage of all-reduce i+1 never starts before the same stage of all-reduce i (the
``_Pipeline``'s rule). With NCCL the stages are queued on the GPU streams in order, and the host
never waits.
"""
from __future__ import annotations

import os
import threading

from distgrad import backend, envvars
from distgrad.distributed import mpi_env
from distgrad.distributed.collectives import _array, _check_op, _group, run_collective
from distgrad.distributed.mpi_comm import MPICommunicator
from distgrad.distributed.reduce_op import ReduceOp, divide_in_place
from distgrad.distributed.work import Work

__all__ = ["hierarchical_all_reduce", "Hierarchy", "node_colors", "hierarchy_of"]

RANKS_PER_NODE_ENV = envvars.FAKE_RANKS_PER_NODE


def node_colors(group_rank: int, shared_leader: int, ranks_per_node: int | None) -> int:
    """The node of a rank, as a number shared by the ranks of that node: the group rank of its node's
    lowest rank (``shared_leader``, from the shared-memory split) or, with ``ranks_per_node``, the
    first rank of its block of that many."""
    if ranks_per_node:
        return group_rank - group_rank % ranks_per_node
    return shared_leader


def _ranks_per_node() -> int | None:
    value = os.environ.get(RANKS_PER_NODE_ENV, "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{RANKS_PER_NODE_ENV} must be a positive integer, got {value!r}")
    return int(value)


class Hierarchy:
    """The node and leader communicators of one process group (made collectively, once)."""

    def __init__(self, group):
        MPI = mpi_env.mpi()
        comm, rank = group.mpi.comm, group.rank()
        shared = comm.Split_type(MPI.COMM_TYPE_SHARED, key=rank)
        shared_leader = shared.allreduce(rank, op=MPI.MIN)
        shared.Free()
        color = node_colors(rank, shared_leader, _ranks_per_node())
        colors = comm.allgather(color)
        self.nodes = len(set(colors))
        self.size = group.size()
        node = comm.Split(color, key=rank)
        self.is_leader = node.Get_rank() == 0
        leaders = comm.Split(0 if self.is_leader else MPI.UNDEFINED, key=rank)
        self._comms = [node, node.Dup()] + ([leaders] if self.is_leader else [])
        self.node_size = node.Get_size()
        self.reduce_comm, self.broadcast_comm = MPICommunicator(node), MPICommunicator(self._comms[1])
        self.leader_comm = MPICommunicator(leaders) if self.is_leader else None
        self.nccl_node = self.nccl_leaders = None
        if group.nccl is not None:
            from distgrad.distributed.nccl_comm import NCCLCommunicator
            self.nccl_node = NCCLCommunicator(node)
            self.nccl_leaders = NCCLCommunicator(leaders) if self.is_leader else None
        self._pipeline = _Pipeline()

    def stages(self, array, op: ReduceOp) -> list:
        """This rank's stages for ``array``: callables that start one non-blocking collective each."""
        combine = ReduceOp.SUM if op is ReduceOp.AVG else op
        stages = []
        if self.node_size > 1:
            stages.append(lambda: self.reduce_comm.reduce(array, 0, combine, True))
        if self.is_leader and self.nodes > 1:
            stages.append(lambda: self.leader_comm.all_reduce(array, combine, True))
        if self.node_size > 1:
            stages.append(lambda: self.broadcast_comm.broadcast(array, 0, True))
        return stages

    def all_reduce(self, array, op: ReduceOp) -> Work:
        """Starts the hierarchical all-reduce of ``array`` in place; ``wait()`` on the result."""
        finish = (lambda: divide_in_place(array, self.size)) if op is ReduceOp.AVG else None
        if self.nccl_node is not None and backend.is_device_array(array):
            return self._nccl_all_reduce(array, op, finish)
        return _StagedWork(self._pipeline, self.stages(array, op), finish)

    def _nccl_all_reduce(self, array, op: ReduceOp, finish) -> Work:
        """The three stages queued on the GPU streams one after the other (each waits for the last)."""
        combine = ReduceOp.SUM if op is ReduceOp.AVG else op
        work = None
        if self.node_size > 1:
            work = self.nccl_node.reduce(array, 0, combine, True)
        if self.is_leader and self.nodes > 1:
            if work is not None:
                work.wait()  # the caller's stream waits for the reduce; the next stage waits for that stream
            work = self.nccl_leaders.all_reduce(array, combine, True)
        if self.node_size > 1:
            if work is not None:
                work.wait()
            work = self.nccl_node.broadcast(array, 0, True)
        return _Then(work, finish)

    def free(self) -> None:
        for comm in self._comms:
            comm.Free()
        for nccl in (self.nccl_node, self.nccl_leaders):
            if nccl is not None:
                nccl.destroy()
        self._comms = []


class _Finishing(Work):
    """A Work whose ``wait()`` waits for the transfers (``_transfer``), then runs ``_finish()`` once."""

    _finish = None
    _finished = False

    def _transfer(self) -> None:
        raise NotImplementedError

    def wait(self) -> bool:
        if not self._finished:
            self._transfer()
            self._finished = True
            if self._finish is not None:
                self._finish()
        return True

    def is_completed(self) -> bool:
        if self.poll():
            self.wait()
        return self._finished


class _Then(_Finishing):
    """``work`` (None: nothing to wait for), then ``finish()``."""

    def __init__(self, work, finish=None):
        self._work, self._finish = work, finish

    def _transfer(self) -> None:
        if self._work is not None:
            self._work.wait()

    def poll(self) -> bool:
        return self._work is None or self._work.poll()


class _Pipeline:
    """The asynchronous all-reduces of one hierarchy in flight, in the order they were started.

    Work i may start its stage s only once work i-1 has started its stage s: each stage has its own
    communicator, so every communicator sees the all-reduces in the same order on every rank.
    """

    def __init__(self):
        self._works: list = []
        self._lock = threading.RLock()

    def add(self, work) -> None:
        with self._lock:
            self._works.append(work)
            self.advance()

    def advance(self) -> None:
        """Starts every stage that may start now (without blocking)."""
        with self._lock:
            limit = None
            for work in self._works:
                work.advance(limit)
                limit = work.started
            while self._works and self._works[0].transferred:
                self._works.pop(0)

    def wait_for(self, target) -> None:
        """Blocks until ``target``'s transfers are done, finishing earlier works' stages on the way."""
        while True:
            self.advance()
            if target.transferred:
                return
            with self._lock:
                first = self._works[0]  # never held back by another work: its stage is in flight
                stage = first.current
            stage.wait()


class _StagedWork(_Finishing):
    """One hierarchical all-reduce on MPI: its stages, started one after the other by the pipeline.

    Only the thread that started it starts stages (in ``poll``, ``wait``, ``is_completed``); the
    watchdog's ``poll`` from its own thread only asks.
    """

    def __init__(self, pipeline: _Pipeline, stages: list, finish=None):
        self._pipeline, self._stages, self._finish = pipeline, stages, finish
        self._owner = threading.get_ident()
        self.started = 0
        self.current = None  # the Work of the stage in flight
        self.transferred = not stages
        if stages:
            pipeline.add(self)

    def advance(self, limit) -> None:
        while not self.transferred:
            if self.current is not None:
                if not self.current.poll():
                    return
                self.current.wait()  # its transfer is over: this only runs its finishing steps
                self.current = None
            if self.started == len(self._stages):
                self.transferred = True
                return
            if limit is not None and self.started >= limit:
                return
            self.current = self._stages[self.started]()
            self.started += 1

    def poll(self) -> bool:
        if not self.transferred and threading.get_ident() == self._owner:
            self._pipeline.advance()
        return self.transferred

    def _transfer(self) -> None:
        if not self.transferred:
            self._pipeline.wait_for(self)


def hierarchy_of(group) -> Hierarchy:
    """The group's hierarchy, made on its first hierarchical all-reduce (collectively)."""
    if group.hierarchy is None:
        group.hierarchy = Hierarchy(group)
    return group.hierarchy


def hierarchical_all_reduce(tensor, op: ReduceOp = ReduceOp.SUM, group=None, async_op: bool = False):
    """``all_reduce`` by the hierarchical algorithm (a distgrad addition): every rank's ``tensor``
    becomes the reduction of all ranks' tensors, reduced inside each node, all-reduced among the
    nodes' leaders and broadcast inside each node. Same arguments and result as ``all_reduce``."""
    pg = _group(group, "hierarchical_all_reduce")
    if pg is None:
        return None
    a, op = _array(tensor, "tensor", "hierarchical_all_reduce"), _check_op(op)
    return run_collective(pg, "hierarchical_all_reduce", [a], lambda comm: hierarchy_of(pg).all_reduce(a, op),
                          async_op, op=op)

