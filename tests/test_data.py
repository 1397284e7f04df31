"""Data and labels: two-layer storage round trips, queries, the 16 MB case, bad input, no partial writes."""

from __future__ import annotations

import numpy as np
import pytest
from bson import ObjectId

from tensorlab import InvalidInput, NotFound
from tensorlab.tensordb.data.datastore import CHUNK_DATA, CHUNKS, SAMPLES
from tensorlab.tensordb.payloads import codec


def _counts(tdb) -> tuple[int, int, int]:
    return tuple(tdb.collection(name).count_documents({}) for name in (SAMPLES, CHUNKS, CHUNK_DATA))


def test_round_trip_images_with_labels_and_tags(tdb):
    rng = np.random.default_rng(0)
    X = rng.integers(0, 255, size=(3000, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, size=3000)
    result = tdb.import_data(X, y, tags={"dataset": "mnist-like", "split": "train"})
    assert result.count == 3000 and result.chunks >= 1
    X2, y2 = tdb.find_data({"tags.dataset": "mnist-like"})
    np.testing.assert_array_equal(X2, X)
    np.testing.assert_array_equal(y2, y)
    assert X2.dtype == np.uint8 and y2.dtype == y.dtype
    every_doc = tdb.collection(SAMPLES).find_one()
    assert set(every_doc) >= {"study", "chunk", "row", "label", "tags"} and every_doc["study"] == "test"


def test_label_queries_use_the_per_sample_index(tdb):
    X = np.arange(500 * 4, dtype=np.float32).reshape(500, 4)
    y = np.arange(500) % 5
    tdb.import_data(X, y, tags={"split": "train"})
    X3, y3 = tdb.find_data({"label": 3, "tags.split": "train"})
    np.testing.assert_array_equal(X3, X[y == 3])
    assert set(y3.tolist()) == {3}
    assert tdb.data_count({"label": {"$in": [1, 2]}}) == 200


def test_any_dtype_and_shape_and_unlabeled_data(tdb):
    sequences = np.random.default_rng(1).normal(size=(40, 7, 3)).astype(np.float64)
    tdb.import_data(sequences, None, tags={"kind": "seq"})
    X, y = tdb.find_data({"tags.kind": "seq"})
    assert y is None
    np.testing.assert_array_equal(X, sequences)
    masks = np.random.default_rng(2).integers(0, 2, size=(10, 5, 5)).astype(bool)
    tdb.import_data(np.ones((10, 5, 5), np.int16), masks, tags={"kind": "seg"})
    _, y2 = tdb.find_data({"tags.kind": "seg"})
    np.testing.assert_array_equal(y2, masks)
    tdb.import_data(np.zeros((3, 2)), np.array(["cat", "dog", "cat"]), tags={"kind": "named"})
    _, names = tdb.find_data({"label": "cat"})
    assert names.tolist() == ["cat", "cat"]


def test_samples_past_the_16mb_document_limit(any_tdb):
    tdb = any_tdb
    big = np.random.default_rng(3).random((2, 3000, 1000)).astype(np.float32)  # 12 MB a sample, incompressible
    tdb.import_data(big, np.array([0, 1]), tags={"kind": "big"})
    X, y = tdb.find_data({"tags.kind": "big"})
    np.testing.assert_array_equal(X, big)
    stored_in = "payload_files" if tdb.blobs.uses_files else "blobs.files"
    assert tdb.collection(stored_in).count_documents({}) >= 2  # payloads went to files or GridFS
    tdb.delete_data({"tags.kind": "big"})
    assert tdb.blobs.count() == 0
    assert _counts(tdb) == (0, 0, 0)


def test_tag_updates_and_deletes_keep_queries_exact(tdb):
    X = np.arange(100, dtype=np.int32).reshape(100, 1)
    tdb.import_data(X, np.arange(100), tags={"split": "train"})
    moved = tdb.update_data_tags({"label": {"$gte": 80}}, {"split": "valid"})
    assert moved == 20
    train, _ = tdb.find_data({"tags.split": "train"})
    valid, _ = tdb.find_data({"tags.split": "valid"})
    assert train[:, 0].tolist() == list(range(80)) and valid[:, 0].tolist() == list(range(80, 100))
    assert tdb.delete_data({"label": {"$lt": 10}}) == 10
    assert tdb.data_count({"tags.split": "train"}) == 70
    assert tdb.delete_data({}) == 90
    assert _counts(tdb) == (0, 0, 0)


def test_queries_never_leak_across_studies(tdb, mongo_uri):
    import tensorlab

    tdb.import_data(np.ones((5, 2)), np.zeros(5), tags={"split": "train"})
    other = tensorlab.connect(mongo_uri, db=tdb.db_name, study="other")
    other.import_data(np.zeros((3, 2)), np.ones(3), tags={"split": "train"})
    assert tdb.data_count({"tags.split": "train"}) == 5
    assert other.data_count({"tags.split": "train"}) == 3
    with pytest.raises(InvalidInput, match="scoped"):  # the study scope cannot be overridden by a query
        tdb.data_count({"study": "other"})
    other.close()


@pytest.mark.parametrize(("X", "y", "tags", "message"), [
    (np.ones((5, 2)), np.ones(4), {}, "5 samples but `y` has 4"),
    ([[1, 2], [3]], None, {}, "ragged"),
    (np.array([{"a": 1}, None], dtype=object), None, {}, "dtype object"),
    (np.ones((2, 2)), None, {"$where": 1}, "may not start with '\\$'"),
    (np.ones((2, 2)), None, {"a.b": 1}, "contain '.'"),
    (np.ones((2, 2)), None, {"when": object()}, "JSON-like"),
    (np.ones((2, 2)), None, "split=train", "must be a dict"),
    (np.ones((0, 2)), None, {}, "empty"),
])
def test_bad_imports_are_rejected_and_store_nothing(tdb, X, y, tags, message):
    with pytest.raises(InvalidInput, match=message):
        tdb.import_data(X, y, tags)
    assert _counts(tdb) == (0, 0, 0)


def test_failed_import_is_rolled_back(tdb, monkeypatch):
    calls = {"n": 0}
    real_encode = codec.encode

    def failing_encode(array):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk on fire")
        return real_encode(array)

    tdb.import_data(np.ones((10, 2)), np.zeros(10), tags={"keep": True})
    before = _counts(tdb)
    monkeypatch.setattr(codec, "encode", failing_encode)
    with pytest.raises(OSError, match="disk on fire"):
        tdb.data.import_data(np.ones((5000, 1000), np.uint8), np.zeros(5000), {"keep": False}, chunk_bytes=1_000_000)
    assert _counts(tdb) == before  # the earlier import is intact, nothing of the failed one remains


def test_bad_queries_and_unknown_ids(tdb):
    tdb.import_data(np.ones((3, 2)), np.zeros(3))
    with pytest.raises(InvalidInput, match="MongoDB filter dict"):
        tdb.find_data("tags.split == 'train'")
    with pytest.raises(NotFound, match="No samples match"):
        tdb.find_data({"_id": ObjectId()})


def test_data_summary_groups_imports(tdb):
    tdb.import_data(np.ones((7, 4, 4), np.uint8), np.zeros(7), tags={"dataset": "a"})
    tdb.import_data(np.ones((3, 2)), None, tags={"dataset": "b"})
    summary = tdb.data_summary().sort_values("samples")
    assert summary["samples"].tolist() == [3, 7]
    assert summary["sample_shape"].tolist() == [(2,), (4, 4)]


def test_indexes_exist_on_queried_fields(tdb):
    tdb.import_data(np.ones((3, 2)), np.zeros(3), tags={"split": "train"})
    keys = [list(index["key"]) for index in tdb.collection(SAMPLES).list_indexes()]
    assert ["study", "tags.split"] in keys and ["study", "chunk"] in keys


def test_label_filters_are_answered_from_chunks_without_reading_samples(tdb):
    rng = np.random.default_rng(3)
    y = rng.integers(0, 10, 3000)
    X = rng.random((3000, 4), dtype=np.float32)
    tdb.data.import_data(X, y, {"split": "train"}, chunk_bytes=4096)  # many chunks, each with a mix of labels
    tdb.import_data(X[:100], np.full(100, 3), {"split": "valid"})
    tdb.collection(SAMPLES).delete_many({})  # the per-sample index is gone: chunk descriptions must answer
    assert tdb.data_count({"label": 3}) == int((y == 3).sum()) + 100
    assert tdb.data_count({"label": {"$in": [1, 2]}, "tags.split": "train"}) == int(np.isin(y, [1, 2]).sum())
    assert tdb.data_count({"$and": [{"tags.split": "train"}, {"label": 7}]}) == int((y == 7).sum())
    X7, y7 = tdb.find_data({"label": 7, "tags.split": "train"})
    np.testing.assert_array_equal(X7, X[y == 7])
    assert set(y7.tolist()) == {7}
    streamed = np.concatenate([yb for _, yb in tdb.data_generator({"label": 5}, batch_size=64)])
    assert len(streamed) == int((y == 5).sum()) and set(streamed.tolist()) == {5}


def test_label_operators_chunks_cannot_answer_use_the_per_sample_index(tdb):
    y = np.arange(100) % 10
    tdb.import_data(np.zeros((100, 2), np.float32), y, {"split": "train"})
    assert tdb.data_count({"label": {"$gte": 8}}) == 20
    assert tdb.data_count({"$or": [{"label": 1}, {"tags.split": "none"}]}) == 10
    tdb.collection(CHUNKS).update_many({}, {"$unset": {"label_counts": ""}})  # chunks of the first layout,
    tdb.data.catalog.drop_study()  # from before the catalog too
    tdb.data.catalog = type(tdb.data.catalog)(tdb.data._scope)
    assert tdb.data_count({"label": 4}) == 10 and len(tdb.find_data({"label": 4})[0]) == 10


def test_tag_and_label_counts_read_only_the_catalog_and_the_matching_import(tdb):
    rng = np.random.default_rng(4)
    for part in range(3):
        tdb.data.import_data(rng.random((300, 4), dtype=np.float32), rng.integers(0, 10, 300),
                             {"split": "filler", "part": part}, chunk_bytes=2048)
    y = np.arange(200) % 4
    probe = tdb.import_data(np.arange(800, dtype=np.float32).reshape(200, 4), y, {"split": "probe"})
    other = [doc["_id"] for doc in tdb.collection(CHUNKS).find({"import_id": {"$ne": probe.import_id}})]
    tdb.collection(CHUNKS).delete_many({"_id": {"$in": other}})  # no other import's chunk may be read
    tdb.collection(SAMPLES).delete_many({})  # nor the per-sample index
    assert tdb.data_count({"tags.split": "filler"}) == 900  # counted from the catalog alone
    assert tdb.data_count({"tags.split": "probe"}) == 200
    assert tdb.data_count({"tags.split": "probe", "label": {"$in": [1, 3]}}) == 100
    assert tdb.data_count({"tags.part": {"$in": [0, 2]}}) == 600
    assert tdb.data_count({"tags.part": 1.0, "tags.split": "filler"}) == 300  # numbers match across types
    assert tdb.data_count({"tags.split": True}) == 0
    X, labels = tdb.find_data({"tags.split": "probe", "label": 2})
    assert labels.tolist() == [2] * 50 and X[:, 0].tolist() == [float(4 * i) for i in range(2, 200, 4)]
    assert [row["samples"] for row in tdb.data_summary().to_dict("records")] == [300, 300, 300, 200]


def test_a_database_from_before_the_catalog_gets_it_built_once(tdb, mongo_uri, db_name):
    from tensorlab import connect

    tdb.import_data(np.zeros((50, 2), np.float32), np.arange(50) % 5, {"split": "train"})
    tdb.import_data(np.ones((30, 2), np.float32), np.arange(30) % 3, {"split": "valid"})
    tdb.update_data_tags({"label": 0, "tags.split": "train"}, {"split": "holdout"})
    tdb.data.catalog.drop_study()  # the layout before the catalog: chunk descriptions only
    assert tdb.collection("sample_catalog").count_documents({}) == 0
    reopened = connect(mongo_uri, db=db_name, study="test")
    try:
        assert reopened.data_count({"tags.split": "train"}) == 40
        assert reopened.data_count({"tags.split": "holdout"}) == 10
        assert reopened.data_count({"label": 1}) == 20
        assert tdb.collection("sample_catalog").count_documents({}) == 1
    finally:
        reopened.close()
