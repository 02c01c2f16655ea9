"""distgrad.data: datasets, samplers, collate and the prefetching DataLoader."""
import threading
import time
import traceback
from collections import namedtuple

import numpy as np
import pytest

import distgrad as dg
from distgrad import backend
from distgrad.data import (BatchSampler, ConcatDataset, DataLoader, Dataset, IterableDataset, RandomSampler,
                           SequentialSampler, Subset, SubsetRandomSampler, TensorDataset, default_collate,
                           random_split)


def range_dataset(n=10):
    """x[i] = [i, i + 0.5] (float32), y[i] = i (int64)."""
    x = dg.Tensor(np.stack([np.arange(n), np.arange(n) + 0.5], axis=1).astype(np.float32))
    return TensorDataset(x, dg.Tensor(np.arange(n)))


def labels_of(loader):
    return [int(v) for _, y in loader for v in y.numpy()]


def values_of(batches):
    return [int(v) for batch in batches for v in batch.numpy()]


def loader_threads():
    return [t for t in threading.enumerate() if t.name.startswith("distgrad-DataLoader")]


def wait_until_no_loader_threads(seconds=2.0):
    deadline = time.monotonic() + seconds
    while loader_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    return loader_threads()


# --- datasets ---------------------------------------------------------------------------------------
def test_tensor_dataset_sample_is_a_tuple_of_rows():
    x, y = range_dataset()[3]
    assert x.numpy().tolist() == [3.0, 3.5] and y.shape == () and int(y) == 3
    assert len(range_dataset(7)) == 7


def test_tensor_dataset_size_mismatch_names_the_sizes():
    with pytest.raises(ValueError, match=r"Size mismatch between tensors: first dimensions are \[4, 5\]"):
        TensorDataset(dg.zeros(4, 2), dg.zeros(5))


def test_subset_and_concat_index_through_to_the_samples():
    ds = range_dataset()
    assert int(Subset(ds, [7, 2])[1][1]) == 2
    both = ConcatDataset([Subset(ds, [0, 1, 2]), range_dataset(4)])
    assert len(both) == 7 and both.cumulative_sizes == [3, 7]
    assert int(both[3][1]) == 0 and int(both[-1][1]) == 3
    assert len(ds + ds) == 20
    with pytest.raises(IndexError, match="out of range"):
        both[7]


def test_concat_rejects_iterable_datasets():
    with pytest.raises(TypeError, match="does not support IterableDataset"):
        ConcatDataset([range_dataset(), Stream(3)])


def test_random_split_is_a_seeded_partition():
    parts = random_split(range_dataset(10), [7, 3], generator=dg.Generator().manual_seed(1))
    again = random_split(range_dataset(10), [7, 3], generator=dg.Generator().manual_seed(1))
    assert [len(p) for p in parts] == [7, 3]
    assert sorted(parts[0].indices + parts[1].indices) == list(range(10))
    assert parts[0].indices == again[0].indices


def test_random_split_fractions_hand_the_remainder_to_the_first_splits():
    assert [len(p) for p in random_split(range_dataset(10), [0.45, 0.45, 0.1])] == [5, 4, 1]
    with pytest.raises(ValueError, match="does not equal the length"):
        random_split(range_dataset(10), [5, 4])


# --- samplers ---------------------------------------------------------------------------------------
def test_sequential_and_random_samplers_visit_every_index_once():
    ds = range_dataset(50)
    assert list(SequentialSampler(ds)) == list(range(50))
    order = list(RandomSampler(ds))
    assert sorted(order) == list(range(50)) and order != list(range(50))


def test_random_sampler_epochs_repeat_after_manual_seed():
    sampler = RandomSampler(range(100))
    dg.manual_seed(3)
    first, second = list(sampler), list(sampler)
    dg.manual_seed(3)
    assert first != second and list(sampler) == first and list(sampler) == second


def test_random_sampler_generator_argument_drives_the_order():
    a = RandomSampler(range(20), generator=dg.Generator().manual_seed(5))
    b = RandomSampler(range(20), generator=dg.Generator().manual_seed(5))
    assert list(a) == list(b)


def test_random_sampler_num_samples_with_and_without_replacement():
    with_replacement = list(RandomSampler(range(5), replacement=True, num_samples=40))
    assert len(with_replacement) == 40 and set(with_replacement) <= set(range(5))
    without = list(RandomSampler(range(5), num_samples=12))
    assert sorted(without[:5]) == sorted(without[5:10]) == list(range(5)) and len(without) == 12
    with pytest.raises(ValueError, match="num_samples should be a positive integer value, but got num_samples=0"):
        RandomSampler(range(5), num_samples=0)


def test_subset_random_sampler_permutes_the_given_indices():
    assert sorted(SubsetRandomSampler([10, 20, 30])) == [10, 20, 30]


@pytest.mark.parametrize("drop_last, lengths", [(False, [3, 3, 1]), (True, [3, 3])])
def test_batch_sampler_groups_indices(drop_last, lengths):
    sampler = BatchSampler(range(7), batch_size=3, drop_last=drop_last)
    assert [len(b) for b in sampler] == lengths and len(sampler) == len(lengths)
    assert next(iter(sampler)) == [0, 1, 2]


def test_batch_sampler_validates_its_arguments():
    with pytest.raises(ValueError, match="batch_size should be a positive integer value, but got batch_size=0"):
        BatchSampler(range(3), 0, False)
    with pytest.raises(ValueError, match="drop_last should be a boolean value"):
        BatchSampler(range(3), 2, 1)


# --- collate ----------------------------------------------------------------------------------------
Point = namedtuple("Point", "x y")


def test_default_collate_stacks_tensors_arrays_and_numbers():
    assert default_collate([dg.ones(2, 3), dg.zeros(2, 3)]).shape == (2, 2, 3)
    stacked = default_collate([np.zeros(3, np.int32), np.ones(3, np.int32)])
    assert isinstance(stacked, dg.Tensor) and stacked.dtype == np.int32 and stacked.shape == (2, 3)
    assert default_collate([1.5, 2.0]).dtype == np.float64
    assert default_collate([1, 2]).dtype == np.int64
    assert default_collate([np.float32(1), np.float32(2)]).dtype == np.float32
    assert default_collate(["a", "b"]) == ["a", "b"]


def test_default_collate_recurses_into_dicts_tuples_lists_and_namedtuples():
    samples = [{"image": dg.ones(2), "meta": (i, [float(i), "s"]), "p": Point(i, 2 * i)} for i in range(3)]
    batch = default_collate(samples)
    assert batch["image"].shape == (3, 2)
    ids, (floats, strings) = batch["meta"]
    assert ids.numpy().tolist() == [0, 1, 2] and floats.numpy().tolist() == [0.0, 1.0, 2.0]
    assert strings == ["s", "s", "s"]
    assert isinstance(batch["p"], Point) and batch["p"].y.numpy().tolist() == [0, 2, 4]


def test_default_collate_errors_name_the_problem():
    with pytest.raises(RuntimeError, match=r"stack expects each tensor to be equal size, but got \[3\] at "
                                           r"entry 0 and \[4\] at entry 1"):
        default_collate([dg.zeros(3), dg.zeros(4)])
    with pytest.raises(RuntimeError, match="each element in list of batch should be of equal size"):
        default_collate([[1, 2], [1]])
    with pytest.raises(TypeError, match="batch must contain tensors, numpy arrays, numbers, dicts or lists"):
        default_collate([object(), object()])


# --- DataLoader -------------------------------------------------------------------------------------
@pytest.mark.parametrize("drop_last, sizes", [(False, [4, 4, 2]), (True, [4, 4])])
def test_loader_batches_in_order(drop_last, sizes):
    loader = DataLoader(range_dataset(10), batch_size=4, drop_last=drop_last)
    batches = list(loader)
    assert [len(y) for _, y in batches] == sizes and len(loader) == len(sizes)
    x, y = batches[0]
    assert x.shape == (4, 2) and x.dtype == np.float32 and y.dtype == np.int64
    assert y.numpy().tolist() == [0, 1, 2, 3]


def test_loader_shuffle_repeats_with_a_seed_and_varies_across_epochs():
    loader = DataLoader(range_dataset(40), batch_size=8, shuffle=True)
    dg.manual_seed(0)
    epoch1, epoch2 = labels_of(loader), labels_of(loader)
    dg.manual_seed(0)
    assert labels_of(loader) == epoch1 and labels_of(loader) == epoch2
    assert epoch1 != epoch2 and sorted(epoch1) == list(range(40))
    dg.manual_seed(0)
    assert labels_of(DataLoader(range_dataset(40), batch_size=8, shuffle=True, prefetch=False)) == epoch1


def test_loader_generator_argument_makes_shuffling_independent_of_the_global_seed():
    orders = [labels_of(DataLoader(range_dataset(30), batch_size=4, shuffle=True,
                                   generator=dg.Generator().manual_seed(9))) for _ in range(2)]
    assert orders[0] == orders[1]


def test_tensor_dataset_fast_path_equals_per_sample_collate():
    images = dg.Tensor(np.random.default_rng(0).random((50, 1, 4, 4), dtype=np.float32))
    ds = Subset(TensorDataset(images, dg.Tensor(np.arange(50) % 10)), list(range(49, -1, -2)))
    fast = list(DataLoader(ds, batch_size=8, shuffle=True, generator=dg.Generator().manual_seed(2)))
    slow = list(DataLoader(ds, batch_size=8, shuffle=True, generator=dg.Generator().manual_seed(2),
                           collate_fn=lambda samples: default_collate(samples)))
    assert len(fast) == len(slow) == 4
    for fast_batch, slow_batch in zip(fast, slow):
        assert isinstance(fast_batch, list) and isinstance(slow_batch, list)
        for f, s in zip(fast_batch, slow_batch):
            assert f.dtype == s.dtype and f.shape == s.shape and np.array_equal(f.numpy(), s.numpy())


def test_mnist_sized_epoch_loads_well_under_a_second():
    ds = TensorDataset(dg.zeros(60000, 1, 28, 28), dg.zeros(60000, dtype=dg.int64))
    loader = DataLoader(ds, batch_size=64, shuffle=True)
    start = time.perf_counter()
    count = sum(len(y) for _, y in loader)
    assert count == 60000 and time.perf_counter() - start < 1.0


class Faulty(Dataset):
    def __len__(self):
        return 10

    def __getitem__(self, index):
        if index == 5:
            raise KeyError(f"sample {index} is unreadable")
        return np.float32(index)


@pytest.mark.parametrize("prefetch, num_workers", [(True, 0), (False, 0), (True, 2)])
def test_exception_in_a_batch_reaches_the_caller_with_its_traceback(prefetch, num_workers):
    batches = []
    with pytest.raises(KeyError, match="sample 5 is unreadable") as info:
        for batch in DataLoader(Faulty(), batch_size=2, prefetch=prefetch, num_workers=num_workers):
            batches.append(batch.numpy().tolist())
    assert batches == [[0.0, 1.0], [2.0, 3.0]]
    assert "__getitem__" in [frame.name for frame in traceback.extract_tb(info.value.__traceback__)]
    assert wait_until_no_loader_threads() == []


def test_breaking_out_of_the_loop_stops_the_prefetch_thread():
    for _ in DataLoader(range_dataset(100), batch_size=2):
        assert len(loader_threads()) == 1
        break
    assert wait_until_no_loader_threads() == []


class Recording(Dataset):
    """Sets ``fetched[i]`` when sample ``i`` is read."""

    def __init__(self, n):
        self.fetched = [threading.Event() for _ in range(n)]

    def __len__(self):
        return len(self.fetched)

    def __getitem__(self, index):
        self.fetched[index].set()
        return index


def test_next_batch_is_prepared_while_the_caller_holds_the_current_one():
    ds = Recording(8)
    it = iter(DataLoader(ds, batch_size=2))
    assert next(it).numpy().tolist() == [0, 1]
    assert ds.fetched[3].wait(timeout=2.0)  # batch [2, 3] read without asking for it
    assert values_of(it) == [2, 3, 4, 5, 6, 7]


def test_worker_threads_keep_the_sampler_order():
    loader = DataLoader(Recording(23), batch_size=3, num_workers=3, shuffle=True)
    dg.manual_seed(4)
    threaded = values_of(loader)
    dg.manual_seed(4)
    assert threaded == values_of(DataLoader(Recording(23), batch_size=3, shuffle=True, prefetch=False))


class SlowStart(Dataset):
    """Sample 0 takes a while, so that later batches are ready before the first one."""

    def __len__(self):
        return 12

    def __getitem__(self, index):
        if index == 0:
            time.sleep(0.05)
        return index


def test_worker_threads_deliver_batches_in_order_whatever_finishes_first():
    assert values_of(DataLoader(SlowStart(), batch_size=2, num_workers=3)) == list(range(12))


def test_batch_size_none_yields_converted_samples():
    samples = list(DataLoader([np.arange(3), np.arange(3) + 1], batch_size=None))
    assert [s.numpy().tolist() for s in samples] == [[0, 1, 2], [1, 2, 3]]


def test_custom_sampler_and_batch_sampler():
    loader = DataLoader(range_dataset(10), batch_size=3, sampler=[9, 8, 7, 6])
    assert labels_of(loader) == [9, 8, 7, 6] and len(loader) == 2
    loader = DataLoader(range_dataset(10), batch_sampler=[[1, 2], [5]])
    assert [y.numpy().tolist() for _, y in loader] == [[1, 2], [5]]


class Stream(IterableDataset):
    def __init__(self, n):
        self.n = n

    def __iter__(self):
        return iter(range(self.n))

    def __len__(self):
        return self.n


@pytest.mark.parametrize("drop_last, batches", [(False, [[0, 1, 2], [3, 4, 5], [6]]), (True, [[0, 1, 2], [3, 4, 5]])])
def test_iterable_dataset_is_batched_in_stream_order(drop_last, batches):
    loader = DataLoader(Stream(7), batch_size=3, drop_last=drop_last, num_workers=2)
    assert [b.numpy().tolist() for b in loader] == batches and len(loader) == len(batches)


@pytest.mark.parametrize("kwargs, message", [
    (dict(shuffle=True), "DataLoader with IterableDataset: expected unspecified shuffle option"),
    (dict(sampler=[0]), "DataLoader with IterableDataset: expected unspecified sampler option"),
])
def test_iterable_dataset_rejects_samplers(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DataLoader(Stream(3), **kwargs)


@pytest.mark.parametrize("kwargs, message", [
    (dict(sampler=[0], shuffle=True), "sampler option is mutually exclusive with shuffle"),
    (dict(batch_sampler=[[0]], batch_size=2), "batch_sampler option is mutually exclusive with batch_size"),
    (dict(batch_size=None, drop_last=True), "batch_size=None option disables auto-batching"),
    (dict(num_workers=-1), "num_workers option should be non-negative"),
])
def test_loader_rejects_conflicting_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DataLoader(range_dataset(), **kwargs)


def test_loader_puts_batches_on_the_requested_device(device):
    batches = list(DataLoader(range_dataset(6), batch_size=4, device=device, pin_memory=True))
    assert all(t.device == dg.device(device) for batch in batches for t in batch)
    assert backend.to_device(batches[1][1].array, backend.CPU).tolist() == [4, 5]
