"""The process-group API in this process (a world of one rank): arguments, errors, handles."""
import datetime

import numpy as np
import pytest

pytest.importorskip("mpi4py")

import distgrad as dg  # noqa: E402
import distgrad.distributed as dist  # noqa: E402
from distgrad import backend  # noqa: E402


@pytest.fixture
def world():
    dist.init_process_group(backend="mpi", timeout=datetime.timedelta(seconds=20))
    yield
    dist.destroy_process_group()


def test_before_init_collectives_say_so():
    assert not dist.is_initialized()
    with pytest.raises(ValueError, match="Default process group has not been initialized"):
        dist.all_reduce(dg.ones(2))
    with pytest.raises(ValueError, match="Default process group has not been initialized"):
        dist.get_rank()


def test_a_world_of_one(world):
    assert dist.is_initialized()
    assert (dist.get_rank(), dist.get_world_size()) == (0, 1)
    assert (dist.get_local_rank(), dist.get_local_world_size()) == (0, 1)
    assert dist.get_backend() == "mpi"
    t = dg.tensor([1.0, 2.0])
    work = dist.all_reduce(t, op=dist.ReduceOp.AVG, async_op=True)
    assert work.wait() and work.is_completed()
    np.testing.assert_array_equal(t.numpy(), [1.0, 2.0])


def test_init_twice_is_an_error(world):
    with pytest.raises(ValueError, match="trying to initialize the default process group twice"):
        dist.init_process_group()


def test_destroy_then_init_again():
    dist.init_process_group(backend="mpi")
    dist.destroy_process_group()
    assert not dist.is_initialized()
    dist.init_process_group(backend="mpi")
    assert dist.get_world_size() == 1
    dist.destroy_process_group()


@pytest.mark.parametrize("kwargs, error, message", [
    ({"backend": "ucc"}, ValueError, "Invalid backend: 'ucc'"),
    ({"timeout": 0}, ValueError, "timeout must be positive"),
    ({"world_size": 4}, ValueError, r"disagrees with MPI: world size 1, rank 0"),
])
def test_init_argument_errors(kwargs, error, message):
    with pytest.raises(error, match=message):
        dist.init_process_group(**kwargs)
    assert not dist.is_initialized()


@pytest.mark.skipif(backend.cuda_is_available(), reason="checks the error when there is no GPU")
def test_nccl_without_a_gpu_is_a_clear_error():
    with pytest.raises(RuntimeError, match="needs CuPy|needs a GPU"):
        dist.init_process_group(backend="nccl")


@pytest.mark.skipif(backend.cuda_is_available(), reason="checks the choice when there is no GPU")
def test_auto_picks_mpi_without_a_gpu():
    dist.init_process_group()
    try:
        assert dist.get_backend() == "mpi"
    finally:
        dist.destroy_process_group()


def test_a_launcher_that_expected_more_ranks_is_an_error(monkeypatch):
    monkeypatch.setenv("DISTGRAD_EXPECTED_WORLD_SIZE", "2")
    with pytest.raises(RuntimeError, match="started 2 ranks but this process is in an MPI world of size 1"):
        dist.init_process_group()


def test_a_bad_debug_level_is_an_error(monkeypatch):
    monkeypatch.setenv("DISTGRAD_DISTRIBUTED_DEBUG", "VERBOSE")
    with pytest.raises(ValueError, match="DISTGRAD_DISTRIBUTED_DEBUG must be OFF, INFO or DETAIL"):
        dist.init_process_group()


def test_tensor_arguments_are_checked(world):
    with pytest.raises(TypeError, match="Expected parameter `tensor` of type distgrad.Tensor"):
        dist.all_reduce(np.ones(2))
    with pytest.raises(RuntimeError, match="all_reduce: Tensors must be contiguous"):
        dist.all_reduce(dg.from_numpy(np.ones((3, 4))[:, ::2]))
    with pytest.raises(TypeError, match="op must be a distgrad.distributed.ReduceOp"):
        dist.all_reduce(dg.ones(2), op="sum")


def test_list_arguments_are_checked(world):
    with pytest.raises(ValueError, match="all_gather: tensor_list has 2 tensors but the group has 1 ranks"):
        dist.all_gather([dg.ones(2), dg.ones(2)], dg.ones(2))
    with pytest.raises(ValueError, match=r"all_gather: tensor_list\[0\] is float64\[3\] on cpu but the tensor "
                                         r"is float32\[2\] on cpu"):
        dist.all_gather([dg.ones(3, dtype=dg.float64)], dg.ones(2))
    with pytest.raises(TypeError, match="Expected parameter `input_list` of type List"):
        dist.reduce_scatter(dg.ones(2), dg.ones(2))


def test_root_only_arguments_are_checked(world):
    with pytest.raises(ValueError, match="``gather_list`` must be specified on destination rank"):
        dist.gather(dg.ones(2), dst=0)
    with pytest.raises(ValueError, match="``scatter_list`` must be specified on source rank"):
        dist.scatter(dg.ones(2), src=0)
    with pytest.raises(ValueError, match="Global rank 3 is not part of group WORLD"):
        dist.broadcast(dg.ones(2), src=3)


def test_new_group_checks_its_ranks(world):
    with pytest.raises(ValueError, match="new_group: rank 5 is not in the world of size 1"):
        dist.new_group([0, 5])
    group = dist.new_group([0])
    assert dist.get_world_size(group) == 1 and group.ranks == (0,)


def test_all_gather_object_needs_one_slot_per_rank(world):
    with pytest.raises(ValueError, match="object_list has 2 entries but the group has 1 ranks"):
        dist.all_gather_object([None, None], "x")
