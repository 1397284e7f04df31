"""The streaming pipeline: bulk chunk fetches, a bounded cache, shuffling, and endless streams."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from tensorlab import InvalidInput


def _import_numbered(tdb, n, tags, offset=0):
    X = np.arange(offset, offset + n, dtype=np.int64).reshape(n, 1).repeat(64, axis=1)
    tdb.data.import_data(X, np.arange(offset, offset + n), tags, chunk_bytes=100 * (64 * 8 + 8))  # 100 rows a chunk
    return X


def test_stream_yields_every_sample_once_per_epoch(tdb):
    _import_numbered(tdb, 1050, {"split": "train"})
    stream = tdb.data_generator({"tags.split": "train"}, batch_size=64, epochs=2)
    batches = list(stream)
    sizes = [len(x) for x, _ in batches]
    assert sizes == ([64] * 16 + [26]) * 2  # batches never straddle epochs
    labels = np.concatenate([y for _, y in batches])
    assert sorted(labels[:1050].tolist()) == list(range(1050)) == sorted(labels[1050:].tolist())
    assert all(np.array_equal(x[:, 0], y) for x, y in batches)
    assert stream.stats.epochs == 2 and stream.stats.chunks_fetched == 11  # second epoch from cache


def test_more_data_than_the_cache(tdb):
    _import_numbered(tdb, 2000, {"split": "train"})
    chunk_bytes = 100 * 64 * 8 + 100 * 8
    stream = tdb.data_generator({"tags.split": "train"}, batch_size=100, epochs=3, cache_bytes=3 * chunk_bytes)
    seen = np.concatenate([y for _, y in stream])
    assert len(seen) == 6000 and sorted(seen.tolist()) == sorted(list(range(2000)) * 3)
    assert stream.stats.chunks_fetched == 20 * 3  # the cache cannot hold an epoch: every chunk is refetched
    assert not stream.cache.enabled and stream.cache.nbytes == 0  # so it holds no memory for nothing


def test_shuffle_changes_order_but_not_content(tdb):
    _import_numbered(tdb, 1000, {"split": "train"})
    ordered = np.concatenate([y for _, y in tdb.data_generator({"tags.split": "train"}, batch_size=50)])
    shuffled = np.concatenate([y for _, y in tdb.data_generator({"tags.split": "train"}, batch_size=50,
                                                                 shuffle=True, seed=7)])
    assert ordered.tolist() == list(range(1000))
    assert sorted(shuffled.tolist()) == list(range(1000)) and shuffled.tolist() != ordered.tolist()


def test_endless_stream_sees_samples_imported_while_it_runs(tdb):
    _import_numbered(tdb, 300, {"split": "live"})
    stream = tdb.data_generator({"tags.split": "live"}, batch_size=100, epochs=None, prefetch_chunks=1)
    iterator = iter(stream)
    first_epoch = [next(iterator)[1] for _ in range(3)]
    assert sorted(np.concatenate(first_epoch).tolist()) == list(range(300))
    _import_numbered(tdb, 200, {"split": "live"}, offset=300)
    later = np.concatenate([next(iterator)[1] for _ in range(10)])  # rest of a prefetched epoch, then new ones
    assert set(range(300, 500)) <= set(later.tolist())
    stream.close()


def test_endless_stream_waits_for_data_and_closes(tdb):
    stream = tdb.data_generator({"tags.split": "later"}, batch_size=10, epochs=None, poll_interval_s=0.1)
    got = []

    def consume():
        for _, y in stream:
            got.append(y)
            break

    reader = threading.Thread(target=consume)
    reader.start()
    reader.join(0.5)
    assert reader.is_alive() and not got  # no data yet: it waits instead of ending
    _import_numbered(tdb, 10, {"split": "later"})
    reader.join(10)
    assert not reader.is_alive() and got[0].tolist() == list(range(10))


def test_stream_plugs_into_keras_fit(tdb):
    keras = pytest.importorskip("keras")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(512, 8)).astype("float32")
    y = (X[:, 0] > 0).astype("int64")
    tdb.import_data(X, y, {"split": "train"})
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    stream = tdb.data_generator({"tags.split": "train"}, batch_size=64, epochs=None, shuffle=True, seed=1)
    history = model.fit(iter(stream), steps_per_epoch=8, epochs=3, verbose=0)
    stream.close()
    assert len(history.history["loss"]) == 3 and history.history["loss"][-1] < history.history["loss"][0]


@pytest.mark.parametrize(("kwargs", "message"), [({"batch_size": 0}, "batch_size"), ({"epochs": 0}, "epochs")])
def test_bad_stream_arguments(tdb, kwargs, message):
    with pytest.raises(InvalidInput, match=message):
        tdb.data_generator({}, **{"batch_size": 8, **kwargs})
