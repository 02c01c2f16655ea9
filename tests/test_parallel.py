"""distgrad.parallel: an op's blocks shared among threads give bitwise the serial result; the pool uses the
thread count it is given, runs tasks concurrently, and starts no thread for small work."""
import threading

import numpy as np
import pytest

import distgrad as dg
import distgrad.nn.functional as F
from distgrad import parallel, threads


@pytest.fixture
def pool(monkeypatch):
    """A pool of its own for the test (no workers yet), and a way to set the thread count it sees."""
    fresh = parallel._Pool()
    monkeypatch.setattr(parallel, "_pool", fresh)

    def use_threads(n):
        monkeypatch.setattr(threads, "cached_num_threads", lambda: n)
    fresh.use_threads = use_threads
    return fresh


def _workers(pool) -> int:
    return len(pool._inbox)


# --- the pool ---------------------------------------------------------------------------------------
def test_tasks_run_concurrently_on_as_many_threads_as_asked(pool):
    pool.use_threads(3)
    meeting = threading.Barrier(3, timeout=30)  # three tasks wait for each other: three threads or an error
    ran_on = [None] * 6

    def task(i):
        if i < 3:
            meeting.wait()
        ran_on[i] = threading.get_ident()
    parallel.run(task, 6, np.empty(parallel.MIN_PARALLEL_ELEMENTS))
    assert None not in ran_on
    assert len(set(ran_on[:3])) == 3 and set(ran_on) <= set(ran_on[:3])
    assert _workers(pool) == 2  # the caller is the third


def test_one_thread_runs_every_task_here_in_order(pool):
    pool.use_threads(1)
    order = []
    parallel.run(lambda i: order.append((i, threading.get_ident())), 5, np.empty(1 << 20))
    assert order == [(i, threading.get_ident()) for i in range(5)]
    assert _workers(pool) == 0


def test_small_work_starts_no_thread(pool):
    pool.use_threads(2)
    x = dg.randn(10, 10, requires_grad=True)
    F.gelu(x).sum().backward()
    F.layer_norm(x, (10,)).sum().backward()
    assert _workers(pool) == 0
    assert not parallel.worth_splitting(np.empty(parallel.MIN_PARALLEL_ELEMENTS - 1))
    assert parallel.worth_splitting(np.empty(parallel.MIN_PARALLEL_ELEMENTS))


def test_arrays_off_the_host_are_never_split(pool):
    pool.use_threads(2)

    class DeviceArray:  # what the pool sees of a CuPy array: a size, and not a NumPy array
        size = 1 << 30
    assert not parallel.worth_splitting(DeviceArray())


def test_a_task_error_is_raised_in_the_caller_after_every_task_ran(pool):
    pool.use_threads(2)
    ran = []

    def task(i):
        ran.append(i)
        if i == 1:
            raise ValueError("block 1")
    with pytest.raises(ValueError, match="block 1"):
        parallel.run(task, 8, np.empty(1 << 20))
    assert sorted(ran) == list(range(8))


def test_a_task_that_splits_again_runs_its_blocks_itself(pool):
    pool.use_threads(2)
    inner = [[] for _ in range(4)]

    def task(i):
        parallel.run(lambda j: inner[i].append(threading.get_ident()), 3, np.empty(1 << 20))
    parallel.run(task, 4, np.empty(1 << 20))
    assert all(len(set(ids)) == 1 and len(ids) == 3 for ids in inner)


def test_row_blocks_cover_the_rows_once(monkeypatch):
    monkeypatch.setattr(parallel, "BLOCK_ELEMENTS", 100)
    blocks = parallel.row_blocks(23, 30)  # 3 rows of 30 elements per block
    assert [(b.start, b.stop) for b in blocks] == [(i, min(i + 3, 23)) for i in range(0, 23, 3)]
    assert parallel.row_blocks(5, 1000) == [slice(i, i + 1) for i in range(5)]  # at least one row


# --- the ops that use it: bitwise the serial result -------------------------------------------------
def _gelu(approximate, dtype):
    def compute():
        x = dg.tensor(np.random.default_rng(0).standard_normal((37, 50)) * 3, dtype=dtype, requires_grad=True)
        y = F.gelu(x, approximate=approximate)
        y.backward(dg.tensor(np.random.default_rng(1).standard_normal((37, 50)), dtype=dtype))
        return [y.detach().numpy(), x.grad.numpy()]
    return compute


def _norm(kind, dtype):
    def compute():
        rng = np.random.default_rng(2)
        x = dg.tensor(rng.standard_normal((41, 24)) + 2, dtype=dtype, requires_grad=True)
        w = dg.tensor(rng.standard_normal(24), dtype=dtype, requires_grad=True)
        b = dg.tensor(rng.standard_normal(24), dtype=dtype, requires_grad=True)
        y = F.layer_norm(x, (24,), w, b) if kind == "layer" else F.rms_norm(x, (24,), w)
        y.backward(dg.tensor(rng.standard_normal((41, 24)), dtype=dtype))
        return [y.detach().numpy()] + [t.grad.numpy() for t in ((x, w, b) if kind == "layer" else (x, w))]
    return compute


def _attention(options, dtype):
    def compute():
        rng = np.random.default_rng(3)
        # (batch, length, heads, features) leaves, heads moved forward as a view: strided, as in a transformer
        q, k, v = (dg.tensor(rng.standard_normal((2, 8, 3, 4)), dtype=dtype, requires_grad=True) for _ in range(3))
        dg.manual_seed(5)
        y = F.scaled_dot_product_attention(*(t.transpose(1, 2) for t in (q, k, v)), **options)
        y.backward(dg.tensor(rng.standard_normal(y.shape), dtype=dtype))
        return [y.detach().numpy()] + [t.grad.numpy() for t in (q, k, v)]
    return compute


CASES = {"gelu": _gelu("none", dg.float32), "gelu_tanh": _gelu("tanh", dg.float32),
         "gelu_float64": _gelu("none", dg.float64), "layer_norm": _norm("layer", dg.float32),
         "rms_norm": _norm("rms", dg.float32), "layer_norm_float64": _norm("layer", dg.float64),
         "causal_attention": _attention({"is_causal": True}, dg.float32),
         "attention_dropout": _attention({"dropout_p": 0.3}, dg.float32)}


@pytest.mark.parametrize("case", sorted(CASES))
def test_an_op_split_among_threads_is_bitwise_the_serial_op(case, pool, monkeypatch):
    monkeypatch.setattr(parallel, "BLOCK_ELEMENTS", 64)  # many blocks of these small arrays
    monkeypatch.setattr(parallel, "MIN_PARALLEL_ELEMENTS", 0)
    pool.use_threads(1)
    serial = CASES[case]()
    pool.use_threads(3)
    for _ in range(3):  # blocks go to whichever thread asks first: the result must not depend on it
        split = CASES[case]()
        assert _workers(pool) == 2
        for a, b in zip(split, serial):
            assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
