"""ZeRO: the partition and the chunked layout alone, then ZeroRedundancyOptimizer (ZeRO-1) and DDP's
gradient_sharding (ZeRO-2) on 2 and 3 ranks (cases in ``ddp_scripts/zero_cases.py``)."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import distgrad as dg
from distgrad.distributed.buckets import chunked_layout
from distgrad.distributed.optim.partition import partition_parameters
from ddp_scripts import zero_cases
from helpers import expect_case_ok


def params_of_sizes(*numels):
    return [dg.zeros(k) for k in numels]


def test_the_largest_parameters_go_first_each_to_the_rank_holding_least():
    a, b, c, d, e = params_of_sizes(10, 40, 30, 20, 5)
    ranks = partition_parameters([{"params": [a, b, c, d, e], "lr": 0.1}], 2)
    # 40 -> rank 0; 30 -> rank 1; 20 -> rank 1 (30 < 40); 10 -> rank 0 (40 < 50); 5 -> rank 0 (50 = 50: lowest)
    assert [[id(p) for p in group["params"]] for group in (ranks[0][0], ranks[1][0])] == \
        [[id(b), id(a), id(e)], [id(c), id(d)]]
    assert ranks[0][0]["lr"] == ranks[1][0]["lr"] == 0.1


def test_sizes_carry_over_from_group_to_group_and_a_rank_may_own_nothing_of_a_group():
    first, second = params_of_sizes(100), params_of_sizes(7)
    ranks = partition_parameters([{"params": first}, {"params": second}], 3)
    assert [len(groups[0]["params"]) for groups in ranks] == [1, 0, 0]
    assert [len(groups[1]["params"]) for groups in ranks] == [0, 1, 0]  # rank 1: the first with fewest


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 1000), min_size=1, max_size=20), st.integers(1, 4))
def test_the_partition_covers_every_parameter_once_and_is_balanced_within_the_largest(numels, world_size):
    params = params_of_sizes(*numels)
    ranks = partition_parameters([{"params": params}], world_size)
    owned = [p for groups in ranks for p in groups[0]["params"]]
    assert sorted(map(id, owned)) == sorted(map(id, params))
    loads = [sum(p.numel() for p in groups[0]["params"]) for groups in ranks]
    assert max(loads) - min(loads) <= max(numels)


def test_chunked_layout_puts_each_ranks_items_in_its_chunk_padded_to_the_longest():
    offsets, chunk = chunked_layout(owners=[1, 0, 1, 2], numels=[3, 4, 2, 1], world_size=3)
    assert chunk == 5  # rank 1: 3 + 2
    assert offsets == [5, 0, 8, 10]


def test_partition_rejects_an_empty_world():
    with pytest.raises(ValueError, match="world_size"):
        partition_parameters([{"params": params_of_sizes(3)}], 0)


@pytest.mark.parametrize("case", [case.__name__ for case in zero_cases.CASES])
def test_zero_on_ranks(scale_out_ranks, case):
    expect_case_ok(scale_out_ranks, case)


def test_state_bytes_split_across_ranks(scale_out_ranks):
    per_rank = scale_out_ranks[0]["data"]["each_rank_keeps_adam_state_only_for_its_shard"]
    assert len(per_rank) == len(scale_out_ranks) and all(b > 0 for b in per_rank)
