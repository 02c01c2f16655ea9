"""CUDA graphs without a GPU: what a capture refuses (host synchronisation, named), what it skips, the
workloads' steps run clean under a simulated capture, make_graphed_step's warm-up / capture / replay / shape
keys / static buffers / eager fallbacks (on the CPU stand-in), the dropout counter of a capture, and the
cuBLAS arguments of a captured GEMM checked against NumPy."""
import warnings

import numpy as np
import pytest

import distgrad as dg
import distgrad.nn.functional as F
from distgrad import backend, cublas, cuda_graphs
from distgrad.cuda_graphs import make_graphed_step, shape_key, simulated_capture, static_buffers
from distgrad.kernels import emulator, policy
from helpers import training_step


# --- what a capture refuses ----------------------------------------------------------------------------
SYNCHRONISING = {
    "Tensor.item()": lambda t: t.sum().item(),
    "Tensor.tolist()": lambda t: t.tolist(),
    "bool(Tensor)": lambda t: bool(t.sum() > 0),
    "Tensor.item()  (float)": lambda t: float(t.sum()),
    "printing a Tensor": lambda t: repr(t),
    "nonzero": lambda t: t.nonzero(),
    "where(condition)": lambda t: dg.where(t > 0),
    "boolean mask": lambda t: t[t > 0],
    "repeat_interleave without output_size": lambda t: dg.repeat_interleave(dg.tensor([1, 2])),
}


@pytest.mark.parametrize("op", sorted(SYNCHRONISING))
def test_a_capture_refuses_host_synchronisation_naming_the_op(op):
    t = dg.randn(4, 3)
    with simulated_capture("test graph"):
        with pytest.raises(RuntimeError, match="synchronizes with the host.*CUDA graph \\(test graph\\)") as caught:
            SYNCHRONISING[op](t)
    assert op.split("  ")[0].split(" (")[0].split(" without")[0] in str(caught.value)
    SYNCHRONISING[op](t)  # outside the capture: fine
    assert not backend.capturing()


def test_host_side_checks_are_skipped_inside_a_capture_not_outside():
    weight = dg.randn(5, 3)
    with pytest.raises(IndexError):
        F.embedding(dg.tensor([7]), weight)
    with simulated_capture():  # the range check would read the indices on the host: skipped
        with pytest.raises(IndexError, match="out of bounds"):  # NumPy's own indexing still catches this one
            F.embedding(dg.tensor([7]), weight)
        F.embedding(dg.tensor([4]), weight)


def _mlp_step(seed=0, width=16):
    dg.manual_seed(seed)
    model = dg.nn.Sequential(dg.nn.Linear(12, width), dg.nn.ReLU(), dg.nn.Linear(width, 10))
    optimizer = dg.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    return model, optimizer, training_step(model, optimizer)


def _batch(seed, n=8):
    rng = np.random.default_rng(seed)
    return dg.tensor(rng.standard_normal((n, 12)).astype(np.float32)), dg.tensor(rng.integers(0, 10, n))


def test_the_workloads_steps_run_clean_under_a_capture():
    _, _, step = _mlp_step()
    x, y = _batch(0)
    step(x, y)  # warm-up: the momentum buffers exist before the capture, as on the GPU
    with simulated_capture():
        step(x, y)  # W1's step: linear, relu, cross-entropy, backward, SGD with momentum
        w = dg.randn(16, requires_grad=True)
        out = w
        for _ in range(20):  # W3's chain
            out = (out * 1.0001 + 0.001).tanh()
        out.sum().backward()


# --- make_graphed_step (the CPU stand-in runs the same logic) ----------------------------------------------
def test_graphed_step_warms_up_captures_then_replays_with_the_eager_results():
    model, _, step = _mlp_step()
    reference, _, eager_step = _mlp_step()
    graphed = make_graphed_step(step, _batch(0), warmup=2)
    outputs = []
    for i in range(5):
        x, y = _batch(i)
        outputs.append(graphed(x, y))
        expected = eager_step(x, y)
        np.testing.assert_allclose(outputs[-1].numpy(), expected.detach().numpy(), rtol=1e-6)
    assert graphed.calls == {shape_key(_batch(0)): 5} and len(graphed.graphs) == 1
    assert outputs[2] is outputs[3] is outputs[4]  # replays write into the capture's outputs
    assert outputs[0] is not outputs[1]  # warm-up calls are plain eager steps
    for p, q in zip(model.parameters(), reference.parameters()):
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=1e-6, atol=1e-7)


def test_a_new_input_shape_gets_its_own_warm_up_and_capture():
    _, _, step = _mlp_step()
    graphed = make_graphed_step(step, _batch(0), warmup=1)
    for n in (8, 8, 4, 8, 4, 4):
        graphed(*_batch(n, n))
    assert graphed.calls == {shape_key(_batch(0, 8)): 3, shape_key(_batch(0, 4)): 3}
    assert len(graphed.graphs) == 2


def test_static_buffers_copy_the_inputs_layout():
    x = dg.randn(6, 4).t()  # not contiguous: the buffer is
    (buffer,) = static_buffers([x])
    assert buffer.shape == x.shape and buffer.dtype == x.dtype and buffer.array.flags.c_contiguous
    assert shape_key([x]) == (((4, 6), np.dtype(np.float32).str, "cpu"),)


def test_graphed_step_inputs_are_tensors_that_need_no_grad():
    _, _, step = _mlp_step()
    with pytest.raises(TypeError, match="input 1 is a int"):
        make_graphed_step(step, (dg.randn(2, 12), 3))
    with pytest.raises(ValueError, match="input 0 requires grad"):
        make_graphed_step(step, (dg.randn(2, 12, requires_grad=True),))


def test_steps_that_cannot_be_captured_run_eagerly_with_one_warning():
    dg.manual_seed(0)
    model = dg.nn.Linear(12, 10)
    optimizer = dg.optim.Adam(model.parameters())
    graphed = make_graphed_step(training_step(model, optimizer), _batch(0), optimizer=optimizer)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in range(5):
            graphed(*_batch(i))
    assert len(caught) == 1 and "Adam.step reads host-side state" in str(caught[0].message)
    assert graphed.graphs == {}


def test_ddp_over_mpi_is_not_captured(monkeypatch):
    from distgrad.distributed import world

    class DistributedDataParallel:  # the reason reads only the type's name and the group's backend
        process_group = None

    class Group:
        backend = "mpi"
    monkeypatch.setattr(world, "resolve_group", lambda group: Group())
    assert "over 'mpi'" in cuda_graphs.eager_reason(model=DistributedDataParallel())
    Group.backend = "nccl"
    assert cuda_graphs.eager_reason(model=DistributedDataParallel()) is None


def test_nccl_work_is_not_polled_inside_a_capture():
    from distgrad.distributed.nccl_comm import NCCLWork

    class RecordedEvent:
        @property
        def done(self):
            raise AssertionError("queried a recorded event")
    work = NCCLWork(RecordedEvent())
    with simulated_capture():
        assert not work.poll() and not work.is_completed()


@pytest.mark.skipif(not emulator.available(), reason="the kernel emulator needs a C++20 compiler")
def test_dropout_inside_a_capture_draws_from_the_graphs_counter():
    x = dg.tensor(np.ones((4, 64), np.float32))
    with policy.emulated():
        with simulated_capture() as rng:
            rng.counter[0] = 1000  # what the device counter holds at some replay
            first, second = F.dropout(x, 0.5), F.dropout(x, 0.5)
        assert rng.total == 2 * x.numel()
    from distgrad.kernels.pointwise import reference_keep
    np.testing.assert_array_equal(first.numpy() != 0, reference_keep(256, 0.5, rng.seed, 1000).reshape(4, 64))
    np.testing.assert_array_equal(second.numpy() != 0, reference_keep(256, 0.5, rng.seed, 1256).reshape(4, 64))


def test_cuda_graph_needs_cupy_and_a_gpu():
    if backend.cuda_is_available():
        pytest.skip("a GPU is here")
    with pytest.raises(RuntimeError, match="needs CuPy|CUDA"):
        with dg.cuda.graph(dg.cuda.CUDAGraph()):
            pass


# --- the cuBLAS arguments of a captured GEMM ---------------------------------------------------------------
def _laid_out(buffer, shape, order):
    """A view of ``shape`` over the start of ``buffer``: row-major ('C'), column-major ('F'), or row-major
    with padded rows ('pad', leading dimension cols + 3)."""
    rows, cols = shape[-2:]
    batch = shape[0] if len(shape) == 3 else 1
    if order == "C":
        view = buffer[:batch * rows * cols].reshape((batch, rows, cols))
    elif order == "F":
        view = buffer[:batch * rows * cols].reshape((batch, cols, rows)).transpose(0, 2, 1)
    else:
        view = buffer[:batch * rows * (cols + 3)].reshape((batch, rows, cols + 3))[:, :, :cols]
    return view if len(shape) == 3 else view[0]


@pytest.mark.parametrize("a_order", ["C", "F", "pad"])
@pytest.mark.parametrize("b_order", ["C", "F", "pad"])
@pytest.mark.parametrize("shapes", [((5, 3), (3, 4)), ((1, 6), (6, 2)), ((2, 5, 3), (2, 3, 4)), ((2, 5, 3), (3, 4))],
                         ids=["2d", "row", "batched", "batched-shared-b"])
def test_gemm_arguments_reproduce_numpys_product(a_order, b_order, shapes):
    a_shape, b_shape = shapes
    rng = np.random.default_rng(0)
    a_buffer, b_buffer = rng.standard_normal(200), rng.standard_normal(200)
    a, b = _laid_out(a_buffer, a_shape, a_order), _laid_out(b_buffer, b_shape, b_order)
    args = cublas.gemm_arguments(a.shape, a.strides, b.shape, b.strides, a.itemsize)
    assert args is not None
    got = cublas.reference_gemm(args, b_buffer, a_buffer)
    np.testing.assert_allclose(got.reshape((a @ b).shape), a @ b, rtol=1e-12)


def test_gemm_arguments_refuse_layouts_that_need_a_copy():
    a = np.zeros((4, 6))[:, ::2]  # neither rows nor columns contiguous
    assert cublas.gemm_arguments(a.shape, a.strides, (3, 2), (16, 8), 8) is None
    b = np.broadcast_to(np.zeros(3), (3, 3))
    assert cublas.gemm_arguments((2, 3), (24, 8), b.shape, b.strides, 8) is None


def test_the_compute_type_follows_the_tf32_switch():
    assert cublas.compute_type(np.float32, False) == cublas.COMPUTE_32F
    assert cublas.compute_type(np.float32, True) == cublas.COMPUTE_32F_FAST_TF32
    assert cublas.compute_type(np.float64, True) == cublas.COMPUTE_64F
    assert cublas.compute_type(dg.bfloat16, True) == cublas.COMPUTE_32F
