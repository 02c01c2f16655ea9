"""``DataLoader``: batches from a dataset, prepared in a background thread while the caller trains."""
from __future__ import annotations

import queue
import threading
from itertools import islice, repeat
from typing import Callable

import numpy as np

from distgrad import backend
from distgrad.data.collate import batch_to_device, default_collate, default_convert
from distgrad.data.dataset import Dataset, IterableDataset, Subset, TensorDataset
from distgrad.data.sampler import BatchSampler, RandomSampler, SequentialSampler
from distgrad.profiler import recorder as timeline
from distgrad.random import Generator
from distgrad.tensor import Tensor

__all__ = ["DataLoader"]

_END = object()  # what a fetch returns, or a sampler yields, when the epoch is over


class DataLoader:
    """Iterates over ``dataset`` in batches, with PyTorch's arguments and rules.

    distgrad-specific arguments and behaviour:

    - ``prefetch`` (default True): a daemon thread prepares the next batches (indexing, collate and the
      copy to ``device``) while the caller uses the current one. Exceptions raised there are re-raised
      in the caller with their original traceback; the thread stops when iteration ends or the
      iterator is dropped (e.g. ``break``). The sampler (and so the epoch's shuffle) is always drawn in
      the caller's thread, so ``distgrad.manual_seed`` makes epochs repeatable; a dataset whose
      ``__getitem__`` itself draws random numbers should use ``prefetch=False`` for repeatable draws.
    - ``num_workers > 0`` prepares batches in that many threads (not processes), so it helps datasets
      whose ``__getitem__`` releases the GIL (file reads, NumPy); an ``IterableDataset`` uses one thread.
    - ``device`` (e.g. ``'cuda'``): every Tensor of each batch is copied there, in the prefetch thread.
    - ``pin_memory`` is accepted for compatibility and has no effect (use ``device`` instead).
    - For a ``TensorDataset`` (or a ``Subset`` of one) with the default ``collate_fn``, each batch is
      gathered with one fancy index per tensor instead of collating samples one by one.
    """

    def __init__(self, dataset: Dataset, batch_size: int | None = 1, shuffle: bool | None = False,
                 sampler=None, batch_sampler=None, num_workers: int = 0, collate_fn: Callable | None = None,
                 pin_memory: bool = False, drop_last: bool = False, generator: Generator | None = None,
                 prefetch: bool = True, device=None):
        if num_workers < 0:
            raise ValueError("num_workers option should be non-negative; use num_workers=0 to disable "
                             "multiprocessing.")
        self._iterable = isinstance(dataset, IterableDataset)
        if self._iterable:
            for name, value in (("shuffle", shuffle), ("sampler", sampler), ("batch_sampler", batch_sampler)):
                if value not in (None, False):
                    raise ValueError(f"DataLoader with IterableDataset: expected unspecified {name} option, "
                                     f"but got {name}={value}")
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("batch_sampler option is mutually exclusive with batch_size, shuffle, "
                                 "sampler, and drop_last")
            batch_size, drop_last = None, False
        elif batch_size is None and drop_last:
            raise ValueError("batch_size=None option disables auto-batching and is mutually exclusive "
                             "with drop_last")
        if sampler is None and not self._iterable:
            sampler = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
        if batch_size is not None and batch_sampler is None and not self._iterable:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)

        self.dataset = dataset
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.generator = generator
        self.prefetch = prefetch
        self.device = None if device is None else backend.Device(device)
        if self.device is not None and self.device.type == "cuda":
            backend.cupy_module()  # fail here, not in the first batch, when CuPy is missing
        auto_collation = batch_sampler is not None or (self._iterable and batch_size is not None)
        self.collate_fn = collate_fn or (default_collate if auto_collation else default_convert)

    @property
    def _index_sampler(self):
        return self.batch_sampler if self.batch_sampler is not None else self.sampler

    def __len__(self) -> int:
        if not self._iterable:
            return len(self._index_sampler)
        length = len(self.dataset)  # a TypeError when the IterableDataset has no __len__, as in torch
        if self.batch_size is not None:
            length = length // self.batch_size if self.drop_last else -(-length // self.batch_size)
        return length

    def __iter__(self) -> "_LoaderIterator":
        return _LoaderIterator(self)

    def _make_fetch(self) -> Callable:
        """``fetch(task) -> batch | _END``; a task is a list of indices, one index, or None (iterables)."""
        collate = self.collate_fn
        if self._iterable:
            items = iter(self.dataset)
            if self.batch_size is None:
                def fetch(_):
                    item = next(items, _END)
                    return item if item is _END else collate(item)
            else:
                def fetch(_):
                    batch = list(islice(items, self.batch_size))
                    short = len(batch) < self.batch_size and self.drop_last
                    return _END if not batch or short else collate(batch)
        elif self.batch_sampler is not None:
            fetch = _tensor_gather(self.dataset) if collate is default_collate else None
            if fetch is None:
                def fetch(indices):
                    return collate([self.dataset[i] for i in indices])
        else:
            def fetch(index):
                return collate(self.dataset[index])
        if self.device is None:
            return fetch
        device = self.device
        return lambda task: _END if (batch := fetch(task)) is _END else batch_to_device(batch, device)


def _index_array(indices) -> np.ndarray:
    if isinstance(indices, Tensor):
        indices = indices.array
    return np.asarray(backend.to_device(indices, backend.CPU), dtype=np.intp)


def _tensor_gather(dataset) -> Callable | None:
    """A fetch taking whole batches out of a TensorDataset (through any Subsets) with one index per tensor.

    Gives the same batches as ``default_collate`` over the samples; None when ``dataset`` is not such a
    dataset (or a subclass changes how samples are read).
    """
    index_maps = []
    while isinstance(dataset, Subset) and type(dataset).__getitem__ is Subset.__getitem__:
        index_maps.append(_index_array(dataset.indices))
        dataset = dataset.dataset
    if not isinstance(dataset, TensorDataset) or type(dataset).__getitem__ is not TensorDataset.__getitem__:
        return None
    arrays = [t.array for t in dataset.tensors]

    def gather(indices):
        idx = np.asarray(indices, dtype=np.intp)
        for index_map in index_maps:
            idx = index_map[idx]
        batch = []
        for a in arrays:
            with backend.cuda_device_context(backend.device_of(a)):
                batch.append(Tensor(a[backend.array_module(a).asarray(idx)]))
        return batch
    return gather


def _serve(fetch: Callable, tasks: queue.SimpleQueue, results: queue.SimpleQueue, stop: threading.Event) -> None:
    """A prefetch thread: fetches ``(seq, task)`` items until it gets None or ``stop`` is set."""
    while (item := tasks.get()) is not None and not stop.is_set():
        seq, task = item
        try:
            results.put((seq, fetch(task), None))
        except BaseException as exc:  # noqa: BLE001  (handed to the caller, which re-raises it)
            results.put((seq, None, exc))


class _LoaderIterator:
    """One epoch of a DataLoader; with prefetching, up to two batches per thread are in flight."""

    def __init__(self, loader: DataLoader):
        self._loader = loader
        self._finished = False
        self._threads = []
        self._fetch = loader._make_fetch()
        self._tasks = repeat(None) if loader._iterable else iter(loader._index_sampler)
        n_threads = loader.num_workers or int(bool(loader.prefetch))
        if loader._iterable:
            n_threads = min(n_threads, 1)  # one stream of items: one thread reads it, in order
        if n_threads == 0:
            return
        self._task_queue, self._result_queue = queue.SimpleQueue(), queue.SimpleQueue()
        self._stop = threading.Event()
        self._depth = 2 * n_threads
        self._sent = self._received = 0
        self._sampler_done = False
        self._ready = {}  # batches that arrived ahead of their turn, by sequence number
        for i in range(n_threads):
            thread = threading.Thread(target=_serve, name=f"distgrad-DataLoader-{i}", daemon=True,
                                      args=(self._fetch, self._task_queue, self._result_queue, self._stop))
            thread.start()
            self._threads.append(thread)
        self._send_tasks()

    def __iter__(self) -> "_LoaderIterator":
        return self

    def __len__(self) -> int:
        return len(self._loader)

    def __next__(self):
        active = timeline.ACTIVE
        if active is None:
            return self._next_batch()
        start = active.now_us()
        try:
            return self._next_batch()
        finally:  # the time the training loop waited for this batch
            active.complete("DataLoader: next batch", "data", start, active.now_us())

    def _next_batch(self):
        if self._finished:
            raise StopIteration
        if self._threads:
            batch = self._next_prefetched()
        else:
            task = next(self._tasks, _END)
            batch = _END if task is _END else self._fetch(task)
        if batch is _END:
            self._shutdown()
            raise StopIteration
        return batch

    def _send_tasks(self) -> None:
        """Keeps ``_depth`` tasks in flight; the sampler runs here, in the caller's thread."""
        try:
            while not self._sampler_done and self._sent - self._received < self._depth:
                task = next(self._tasks, _END)
                if task is _END:
                    self._sampler_done = True
                    return
                self._task_queue.put((self._sent, task))
                self._sent += 1
        except BaseException:
            self._shutdown()
            raise

    def _next_prefetched(self):
        self._send_tasks()
        if self._received == self._sent:
            return _END
        while self._received not in self._ready:
            seq, batch, exc = self._result_queue.get()
            self._ready[seq] = batch, exc
        batch, exc = self._ready.pop(self._received)
        self._received += 1
        if exc is not None:
            self._shutdown()
            raise exc  # keeps the traceback from the prefetch thread
        return batch

    def _shutdown(self) -> None:
        if self._finished:
            return
        self._finished = True
        if self._threads:
            self._stop.set()
            for _ in self._threads:
                self._task_queue.put(None)

    def __del__(self):
        if getattr(self, "_threads", None):
            self._shutdown()
