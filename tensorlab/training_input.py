"""What `Model.fit` hands Keras, from whatever the caller passed: arrays, a generator, a stream or a query.

One path for every caller (cells, `%%tdb_train`, the seeds' `fit_generator`, workers): a TensorDB query
is streamed through `DataStream` with the caller's batch size, so memory stays bounded by the stream's
cache and prefetch whatever the data's size, and the epoch length comes from the sample count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .errors import InvalidInput, NotFound
from .tensordb.data.stream import DataStream

DEFAULT_BATCH_SIZE = 32


@dataclass
class TrainingInput:
    x: Any
    y: Any
    batch_size: int | None  # for Keras: None when x yields batches itself
    steps_per_epoch: int | None
    stream: DataStream | None = None  # closed after fit
    shuffle: bool = False  # for Keras: arrays only (a stream shuffles itself, a generator is the caller's)

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()


def _is_arrays(x: Any) -> bool:
    return hasattr(x, "shape") or isinstance(x, (list, tuple, dict))


def _from_stream(stream: DataStream, steps_per_epoch: int | None) -> TrainingInput:
    count = stream.store.count(stream.query)
    if count == 0:
        raise NotFound(f"The data query {stream.query!r} matches no samples in this study. Tags are queried under "
                       "`tags.` (e.g. {'tags.split': 'train'}); db.data_summary() lists what is stored.")
    steps = steps_per_epoch or math.ceil(count / stream.batch_size)
    return TrainingInput(iter(stream), None, None, steps, stream)


def training_input(db: Any, x: Any, y: Any, data: Any, batch_size: int | None, *, shuffle: bool = True,
                   steps_per_epoch: int | None = None, seed: int | None = None) -> TrainingInput:
    """Resolve fit's inputs; a query or a stream repeats for every epoch at `batch_size` samples a batch, in an
    order `seed` fixes (the run's seed: a rerun sees the batches in the same order)."""
    if batch_size is not None and (not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1):
        raise InvalidInput(f"Invalid value for argument `batch_size`: {batch_size!r}. Expected an int >= 1.")
    if data is not None:
        if x is not None:
            raise InvalidInput("Pass either arrays/generator `x` or a TensorDB query `data`, not both.")
        stream = db.data_generator(data, batch_size or DEFAULT_BATCH_SIZE, shuffle=shuffle, epochs=None, seed=seed)
        return _from_stream(stream, steps_per_epoch)
    if isinstance(x, DataStream):
        if y is not None:
            raise InvalidInput("A TensorDB stream yields (x, y) batches itself; do not pass `y` with it.")
        x.close()  # never iterated: the copy below is
        return _from_stream(x.rebatched(batch_size or x.batch_size, epochs=None), steps_per_epoch)
    if x is None:
        raise InvalidInput("Nothing to train on: pass x (arrays or a generator) or data={...} (a TensorDB query).")
    if _is_arrays(x):
        return TrainingInput(x, y, batch_size or DEFAULT_BATCH_SIZE, steps_per_epoch, shuffle=shuffle)
    return TrainingInput(x, y, None, steps_per_epoch)
