"""distgrad.bench's figures: nccl-tests' bandwidth definitions, efficiencies, overlap, size parsing,
and the all-reduce correctness check."""
import numpy as np
import pytest

from distgrad.bench import allreduce, metrics


def test_algbw_is_bytes_over_time_in_GB_per_s():
    assert metrics.algbw_GBps(10**9, 0.5) == pytest.approx(2.0)


@pytest.mark.parametrize("ranks, factor", [(1, 0.0), (2, 1.0), (4, 1.5), (8, 1.75)])
def test_allreduce_busbw_is_algbw_times_2_n_minus_1_over_n(ranks, factor):
    assert metrics.allreduce_bus_factor(ranks) == pytest.approx(factor)
    assert metrics.busbw_GBps(10**9, 0.5, ranks) == pytest.approx(2.0 * factor)


def test_scaling_efficiency_is_throughput_over_n_times_one_rank():
    assert metrics.scaling_efficiency(180.0, 2, 100.0) == pytest.approx(0.9)
    assert metrics.scaling_efficiency(400.0, 4, 100.0) == pytest.approx(1.0)


@pytest.mark.parametrize("ddp_backward, hidden", [(10.0, 1.0), (11.0, 0.75), (14.0, 0.0), (15.0, -0.25)])
def test_hidden_fraction_compares_ddp_backward_with_backward_plus_allreduce(ddp_backward, hidden):
    assert metrics.hidden_fraction(10.0, 4.0, ddp_backward) == pytest.approx(hidden)


@pytest.mark.parametrize("text, value", [("25M", 25_000_000), ("100k", 100_000), ("1.5G", 1_500_000_000),
                                         ("4096", 4096)])
def test_parse_count_reads_decimal_suffixes(text, value):
    assert metrics.parse_count(text) == value


@pytest.mark.parametrize("text, value", [("4", 4), ("64K", 65536), ("256MiB", 256 << 20), ("1G", 1 << 30),
                                         ("0.5KB", 512)])
def test_parse_bytes_reads_binary_suffixes_like_nccl_tests(text, value):
    assert metrics.parse_bytes(text) == value


@pytest.mark.parametrize("bad", ["", "12Q", "M", "-3"])
def test_unreadable_sizes_are_errors(bad):
    with pytest.raises(ValueError, match="cannot read"):
        metrics.parse_bytes(bad)
    with pytest.raises(ValueError, match="cannot read"):
        metrics.parse_count(bad)


def test_format_bytes_picks_the_largest_binary_unit():
    assert [metrics.format_bytes(n) for n in (4, 2048, 3 << 19, 256 << 20, 1 << 30)] == \
        ["4 B", "2 KiB", "1.5 MiB", "256 MiB", "1 GiB"]


def test_message_sizes_double_from_4_bytes_to_256_MiB():
    sizes = allreduce.message_sizes(4, 256 << 20)
    assert sizes[0] == 4 and sizes[-1] == 256 << 20 and len(sizes) == 27
    assert allreduce.message_sizes(4, 100, factor=4) == [4, 16, 64]
    with pytest.raises(ValueError, match="min_bytes"):
        allreduce.message_sizes(64, 4)


def _summed_patterns(world, count, dtype, ranks=None):
    summed = np.zeros(count, np.float64)
    for rank in range(world) if ranks is None else ranks:
        mine = np.empty(count, dtype)
        allreduce.fill_periodic(mine, allreduce.pattern_period(rank, world, dtype))
        summed += mine
    return summed


def test_the_pattern_check_passes_a_true_sum_and_catches_a_lost_or_doubled_rank_or_a_max():
    world, count = 3, 11  # not a multiple of the pattern's period
    expected = allreduce.expected_period(world, np.float32)
    assert allreduce.max_error(_summed_patterns(world, count, np.float32), expected) == 0.0
    assert allreduce.max_error(_summed_patterns(world, count, np.float32, ranks=[0, 1]), expected) >= 1.0
    assert allreduce.max_error(_summed_patterns(world, count, np.float32, ranks=[0, 1, 2, 2]), expected) >= 1.0
    maximum = np.maximum.reduce([np.resize(allreduce.pattern_period(r, world, np.float32), count) for r in range(3)])
    assert allreduce.max_error(maximum, expected) >= 1.0


def test_past_exact_float16_sums_the_pattern_is_all_ones_and_still_exact():
    assert allreduce.pattern_period(3, 512, np.float16).tolist() == [4, 1, 2, 3]
    assert allreduce.pattern_period(3, 1024, np.float16).tolist() == [1, 1, 1, 1]
    assert allreduce.expected_period(1024, np.float16).tolist() == [1024] * 4
    assert allreduce.tolerance(np.float16, 1024) == 0.0
    assert allreduce.tolerance(np.float32, 2) == 0.0 and allreduce.tolerance(np.int32, 4096) == 0.0
    assert allreduce.tolerance(np.float16, 4096) > 0.0
