"""DistributedSampler: PyTorch's sharding, padding and dropping; a NumPy shuffle seeded by seed + epoch."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import distgrad as dg
from distgrad.data import DataLoader, TensorDataset
from distgrad.distributed import DistributedSampler


def shards(n: int, replicas: int, **options) -> list:
    return [list(DistributedSampler(range(n), num_replicas=replicas, rank=r, **options)) for r in range(replicas)]


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 40), st.integers(1, 6), st.booleans())
def test_unshuffled_shards_are_pytorchs(n, replicas, drop_last):
    torch_data = pytest.importorskip("torch.utils.data")
    for r in range(replicas):
        ours = DistributedSampler(range(n), num_replicas=replicas, rank=r, shuffle=False, drop_last=drop_last)
        theirs = torch_data.DistributedSampler(range(n), num_replicas=replicas, rank=r, shuffle=False,
                                               drop_last=drop_last)
        assert list(ours) == list(theirs)
        assert len(ours) == len(theirs)


def test_padding_repeats_the_first_indices_so_every_rank_gets_as_many():
    assert shards(10, 4, shuffle=False) == [[0, 4, 8], [1, 5, 9], [2, 6, 0], [3, 7, 1]]


def test_padding_wraps_around_when_the_dataset_is_smaller_than_the_world():
    assert shards(2, 5, shuffle=False) == [[0], [1], [0], [1], [0]]


def test_drop_last_cuts_the_tail_to_a_multiple_of_the_world():
    assert shards(10, 4, shuffle=False, drop_last=True) == [[0, 4], [1, 5], [2, 6], [3, 7]]


def test_a_shuffled_epoch_is_one_numpy_permutation_seeded_by_seed_plus_epoch_split_across_ranks():
    sampler_shards = shards(12, 3, seed=5)
    permutation = np.random.default_rng(5).permutation(12).tolist()
    assert sampler_shards == [permutation[r::3] for r in range(3)]


def test_set_epoch_changes_the_shuffle_and_the_same_epoch_repeats_it():
    sampler = DistributedSampler(range(50), num_replicas=2, rank=1, seed=3)
    first = list(sampler)
    assert list(sampler) == first
    sampler.set_epoch(1)
    second = list(sampler)
    assert second != first
    assert second == np.random.default_rng(3 + 1).permutation(50)[1::2].tolist()


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 40), st.integers(1, 5), st.integers(0, 10))
def test_shuffled_shards_cover_the_dataset_without_overlap_beyond_padding(n, replicas, epoch):
    everything = []
    for r in range(replicas):
        sampler = DistributedSampler(range(n), num_replicas=replicas, rank=r)
        sampler.set_epoch(epoch)
        everything += list(sampler)
    assert set(everything) == set(range(n))
    assert len(everything) == -(-n // replicas) * replicas


def test_rank_out_of_range_is_an_error():
    with pytest.raises(ValueError, match=r"Invalid rank 2, rank should be in the interval \[0, 1\]"):
        DistributedSampler(range(4), num_replicas=2, rank=2)


def test_without_a_process_group_num_replicas_and_rank_must_be_given():
    with pytest.raises(RuntimeError, match="Requires distributed package to be available"):
        DistributedSampler(range(4))


def test_a_single_process_loader_visits_every_sample_once():
    data = TensorDataset(dg.arange(10))
    loader = DataLoader(data, batch_size=4, sampler=DistributedSampler(data, num_replicas=1, rank=0))
    seen = np.concatenate([batch[0].numpy() for batch in loader])
    assert sorted(seen.tolist()) == list(range(10))
