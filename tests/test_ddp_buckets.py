"""DDP's pieces that need no ranks: bucket assignment, the model check, bfloat16 rounding, argument errors."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import distgrad as dg
from distgrad import nn
from distgrad.distributed import DistributedDataParallel
from distgrad.distributed.buckets import GradBucket, assign_buckets
from distgrad.distributed.comm_hooks import bf16_bits_to_float, float_to_bf16_bits
from distgrad.distributed.ddp import first_parameter_mismatch

KIB = 1024


def params_of_sizes(*numels, dtype=np.float32):
    return [dg.zeros(k, dtype=dtype) for k in numels]


def test_a_bucket_closes_once_it_holds_its_cap():
    params = params_of_sizes(256, 256, 256, 256, 256)  # 1 KiB each in float32
    assert assign_buckets(params, [0, 1, 2, 3, 4], bucket_cap_bytes=2 * KIB, first_bucket_bytes=KIB) == \
        [[0], [1, 2], [3, 4]]


def test_the_first_bucket_is_never_larger_than_the_others():
    params = params_of_sizes(256, 256, 256)
    assert assign_buckets(params, [0, 1, 2], bucket_cap_bytes=KIB, first_bucket_bytes=4 * KIB) == [[0], [1], [2]]


def test_buckets_follow_the_given_order():
    params = params_of_sizes(256, 256, 256, 256)
    assert assign_buckets(params, [3, 2, 1, 0], bucket_cap_bytes=2 * KIB, first_bucket_bytes=KIB) == \
        [[3], [2, 1], [0]]


def test_each_bucket_holds_one_dtype_and_buckets_are_ordered_by_their_first_parameter():
    params = params_of_sizes(4, 4) + params_of_sizes(4, dtype=np.float64) + params_of_sizes(4)
    assert assign_buckets(params, [2, 0, 1, 3], bucket_cap_bytes=KIB) == [[2], [0, 1, 3]]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 600), min_size=1, max_size=12), st.integers(1, 4 * KIB))
def test_every_parameter_lands_in_exactly_one_bucket(numels, cap):
    params = params_of_sizes(*numels)
    order = list(reversed(range(len(params))))
    buckets = assign_buckets(params, order, bucket_cap_bytes=cap)
    assert sorted(i for bucket in buckets for i in bucket) == list(range(len(params)))
    for bucket in buckets[:-1]:  # only the last bucket may hold less than the cap
        assert sum(numels[i] * 4 for i in bucket) >= cap


def test_a_bucket_buffer_is_shared_by_its_gradient_views():
    params = [dg.zeros(2, 3), dg.zeros(4)]
    bucket = GradBucket(0, [1, 0], params, is_last=True)
    assert bucket.buffer().shape == (10,) and bucket.nbytes() == 40
    bucket.views[0][...] = 1.0
    bucket.views[1][...] = 2.0
    np.testing.assert_array_equal(bucket.buffer().numpy(), [1] * 4 + [2] * 6)
    assert [g.shape for g in bucket.gradients()] == [(4,), (2, 3)]
    assert bucket.parameters() == [params[1], params[0]] and bucket.is_last() and bucket.index() == 0


def test_the_model_check_names_the_first_mismatch_and_the_ranks():
    same = [("0.weight", (4, 3), "float32"), ("0.bias", (4,), "float32")]
    other = [("0.weight", (4, 3), "float32"), ("0.bias", (5,), "float32")]
    assert first_parameter_mismatch([same, same, same], [0, 1, 2]) is None
    assert first_parameter_mismatch([same, other, same], [0, 1, 2]) == (
        "DistributedDataParallel expects the same model on every rank, but parameter #1 differs: "
        "'0.bias' of shape [4] and dtype float32 on ranks [0, 2]; '0.bias' of shape [5] and dtype float32 on rank [1]")


def test_the_model_check_names_a_parameter_missing_on_some_rank():
    full = [("w", (2,), "float64"), ("b", (1,), "float64")]
    message = first_parameter_mismatch([full, full[:1]], [0, 1])
    assert message.endswith("parameter #1 differs: 'b' of shape [1] and dtype float64 on rank [0]; "
                            "no such parameter on rank [1]")


def test_bf16_rounding_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.standard_normal(1000).astype(np.float32) * 10.0 ** rng.integers(-30, 30, 1000),
                             np.float32([0.0, -0.0, np.inf, -np.inf, 1.0 + 2.0 ** -8, 1.0 + 3 * 2.0 ** -8, 3.4e38])])
    expected = torch.from_numpy(values).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    np.testing.assert_array_equal(float_to_bf16_bits(values), expected)


def test_bf16_keeps_nan_and_round_trips_exactly_representable_values():
    assert np.isnan(bf16_bits_to_float(float_to_bf16_bits(np.float32([np.nan])))).all()
    exact = np.float32([1.0, -2.5, 0.0078125, 1.5, 65536.0])
    np.testing.assert_array_equal(bf16_bits_to_float(float_to_bf16_bits(exact)), exact)


def test_wrapping_something_that_is_not_a_module_is_a_type_error():
    with pytest.raises(TypeError, match="expects a distgrad.nn.Module, got Tensor"):
        DistributedDataParallel(dg.zeros(3))


def test_a_module_without_trainable_parameters_needs_no_ddp():
    with pytest.raises(RuntimeError, match="doesn't have any parameter that requires a gradient"):
        DistributedDataParallel(nn.ReLU())


def test_device_ids_are_for_gpu_modules_only():
    with pytest.raises(ValueError, match=r"got device_ids \[0\] and module parameters on \['cpu'\]"):
        DistributedDataParallel(nn.Linear(2, 2), device_ids=[0])


def test_ddp_needs_a_process_group():
    with pytest.raises(ValueError, match="Default process group has not been initialized"):
        DistributedDataParallel(nn.Linear(2, 2))
