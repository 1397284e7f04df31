"""A pull-based stream of batches from TensorDB, fed by a prefetch thread and a bounded chunk cache.

The query is resolved to chunk selections at the start of each epoch (so an endless stream sees
samples imported while it runs); compressed chunks are fetched in bulk and decoded on a background
thread only a few chunks ahead of what training consumes; recently used chunks stay in an LRU cache
bounded in bytes, so small datasets are read from the server once.
"""

from __future__ import annotations

import queue
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...validation_values import check_number
from .datastore import DataStore
from .sample_plan import ChunkSelection

_END_OF_EPOCH = object()
_FETCH_GROUP = 8


@dataclass
class StreamStats:
    epochs: int = 0
    samples: int = 0
    chunks_fetched: int = 0
    cache_hits: int = 0
    bytes_decoded: int = 0
    fetch_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


class ChunkCache:
    """LRU of decoded chunks, bounded by bytes."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[Any, tuple[np.ndarray, np.ndarray | None]] = OrderedDict()
        self._bytes = 0
        self.enabled = True

    def fit_or_disable(self, epoch_bytes: int) -> None:
        """Keep caching only when an epoch fits: an LRU smaller than the scan it serves never hits, it only
        holds `max_bytes` of memory (what made 1 GB epochs grow the trainer by the whole cache)."""
        if epoch_bytes > self.max_bytes:
            self.enabled = False
            self._items.clear()
            self._bytes = 0

    @staticmethod
    def _size(item: tuple[np.ndarray, np.ndarray | None]) -> int:
        return item[0].nbytes + (item[1].nbytes if item[1] is not None else 0)

    def get(self, key: Any) -> tuple[np.ndarray, np.ndarray | None] | None:
        item = self._items.get(key)
        if item is not None:
            self._items.move_to_end(key)
        return item

    def put(self, key: Any, item: tuple[np.ndarray, np.ndarray | None]) -> None:
        size = self._size(item)
        if not self.enabled or size > self.max_bytes or key in self._items:
            return
        self._items[key] = item
        self._bytes += size
        while self._bytes > self.max_bytes:
            _, evicted = self._items.popitem(last=False)
            self._bytes -= self._size(evicted)

    def __len__(self) -> int:
        return len(self._items)

    @property
    def nbytes(self) -> int:
        return self._bytes


class DataStream:
    """Iterate batches `(x, y)` (or `x` alone for unlabeled data) of the samples a query selects."""

    def __init__(self, store: DataStore, query: Any, batch_size: int, *, shuffle: bool = False,
                 epochs: int | None = 1, cache_bytes: int = 256 * 1024 * 1024, prefetch_chunks: int = 8,
                 shuffle_window: int = 4, seed: int | None = None, poll_interval_s: float = 1.0) -> None:
        batch_size = check_number(batch_size, "batch_size", integer=True, minimum=1)
        epochs = check_number(epochs, "epochs", integer=True, minimum=1, allow_none=True)  # None: stream forever
        store.plan(query)  # validates the query now, in the caller's thread
        self.store, self.query, self.batch_size = store, query, batch_size
        self.shuffle, self.epochs, self.shuffle_window = shuffle, epochs, max(1, shuffle_window)
        self.cache = ChunkCache(cache_bytes)
        self.prefetch_chunks = max(1, prefetch_chunks)
        self.poll_interval_s = poll_interval_s
        self.stats = StreamStats()
        self._rng = np.random.default_rng(seed)
        self._stop = threading.Event()

    def close(self) -> None:
        self._stop.set()

    def rebatched(self, batch_size: int, epochs: int | None) -> DataStream:
        """The same query and options with another batch size or epoch count (a stream is iterated once)."""
        return DataStream(self.store, self.query, batch_size, shuffle=self.shuffle, epochs=epochs,
                          cache_bytes=self.cache.max_bytes, prefetch_chunks=self.prefetch_chunks,
                          shuffle_window=self.shuffle_window, poll_interval_s=self.poll_interval_s)

    # -- producer (background thread) -------------------------------------------------------------
    def _epoch_plan(self) -> list[ChunkSelection]:
        while not self._stop.is_set():
            plan = self.store.plan(self.query)
            if plan or self.epochs is not None:
                if self.shuffle:
                    order = self._rng.permutation(len(plan))
                    plan = [plan[i] for i in order]
                return plan
            self._stop.wait(self.poll_interval_s)  # endless stream on an empty query: wait for data
        return []

    def _put(self, out: queue.Queue, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                out.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self, out: queue.Queue) -> None:
        import time

        try:
            epoch = 0
            while not self._stop.is_set() and (self.epochs is None or epoch < self.epochs):
                plan = self._epoch_plan()
                epoch_samples = sum(selection.size for selection in plan)
                for start in range(0, len(plan), _FETCH_GROUP):
                    group = plan[start:start + _FETCH_GROUP]
                    missing = [s.chunk_id for s in group if self.cache.get(s.chunk_id) is None]
                    fetched = {}
                    if missing:
                        began = time.perf_counter()
                        fetched = self.store.load_chunks(missing)
                        self.stats.fetch_seconds += time.perf_counter() - began
                        self.stats.chunks_fetched += len(fetched)
                    self.stats.cache_hits += len(group) - len(missing)
                    for selection in group:
                        item = fetched.get(selection.chunk_id) or self.cache.get(selection.chunk_id)
                        if item is None:
                            continue  # deleted since the plan was made
                        x, y = item
                        if self.cache.enabled and len(x):
                            self.cache.fit_or_disable(epoch_samples * (x.nbytes + (0 if y is None else y.nbytes))
                                                      // len(x))
                        self.cache.put(selection.chunk_id, item)
                        if selection.rows is not None:
                            x, y = x[selection.rows], (None if y is None else y[selection.rows])
                        self.stats.bytes_decoded += x.nbytes
                        if not self._put(out, (x, y)):
                            return
                epoch += 1
                if not self._put(out, _END_OF_EPOCH):
                    return
        except BaseException as error:  # noqa: BLE001 - handed to the consumer, which re-raises it
            self._put(out, error)
        finally:
            self._put(out, None)

    # -- consumer (caller's thread) ---------------------------------------------------------------
    def __iter__(self) -> Iterator[Any]:
        out: queue.Queue = queue.Queue(maxsize=self.prefetch_chunks)
        worker = threading.Thread(target=self._produce, args=(out,), name="tensorlab-stream", daemon=True)
        worker.start()
        xs: list[np.ndarray] = []
        ys: list[np.ndarray | None] = []
        pending = 0
        window = 0
        try:
            while True:
                item = out.get()
                if item is None:
                    break
                if isinstance(item, BaseException):
                    raise item
                if item is _END_OF_EPOCH:
                    yield from self._drain(xs, ys, final=True)
                    xs, ys, pending, window = [], [], 0, 0
                    self.stats.epochs += 1
                    continue
                xs.append(item[0])
                ys.append(item[1])
                pending += len(item[0])
                window += 1
                if pending >= self.batch_size and (not self.shuffle or window >= self.shuffle_window):
                    xs, ys = (yield from self._drain(xs, ys, final=False))
                    pending = sum(len(x) for x in xs)
                    window = 0
        finally:
            self._stop.set()
            worker.join(timeout=5)

    def _shuffled(self, xs: list[np.ndarray], ys: list[Any]) -> tuple[np.ndarray, np.ndarray | None]:
        """The window's rows in a random order, written once: each chunk is scattered straight to its rows'
        new places (concatenating, then permuting, copied every sample twice)."""
        total = sum(len(part) for part in xs)
        order = self._rng.permutation(total)
        x = np.empty((total, *xs[0].shape[1:]), dtype=np.result_type(*xs))
        y = None if ys[0] is None else np.empty((total, *ys[0].shape[1:]), dtype=np.result_type(*ys))
        start = 0
        for index, part in enumerate(xs):
            places = order[start:start + len(part)]
            x[places] = part
            if y is not None:
                y[places] = ys[index]
            start += len(part)
        return x, y

    def _drain(self, xs: list[np.ndarray], ys: list[Any], final: bool):
        """Yield full batches from the buffered rows; return what is left (all of it is yielded when final)."""
        if not xs:
            return [], []
        if self.shuffle:
            x, y = self._shuffled(xs, ys)
        else:
            x = np.concatenate(xs) if len(xs) > 1 else xs[0]
            y = None if ys[0] is None else (np.concatenate(ys) if len(ys) > 1 else ys[0])
        full = len(x) if final else len(x) - len(x) % self.batch_size
        for start in range(0, full, self.batch_size):
            xb = x[start:start + self.batch_size]
            self.stats.samples += len(xb)
            yield xb if y is None else (xb, y[start:start + self.batch_size])
        if full == len(x):
            return [], []
        return [x[full:]], [None if y is None else y[full:]]
