"""Running sample counts (sample_counts.py): one small document answers a count, and stays exact through
retries, rollbacks, retags, deletes and the upgrade of a database written before it."""

from __future__ import annotations

import numpy as np
import pytest
from bson import ObjectId

from tensorlab.tensordb.data.sample_counts import COUNTS, canonical
from tensorlab.tensordb.documents.build_markers import forget_built

LABELS = np.arange(60) % 6


X = np.arange(180, dtype=np.float32).reshape(60, 3)


def _fill(tdb) -> dict[str, np.ndarray]:
    """Three imports: two tagged split=train (part 1, part 2.0), one split=test; labels 0..5 cycling."""
    tdb.import_data(X, LABELS, tags={"split": "train", "part": 1})
    tdb.import_data(X[:30] + 1000, LABELS[:30], tags={"split": "train", "part": 2.0, "flag": True})
    tdb.import_data(X[:12] + 2000, LABELS[:12], tags={"split": "test", "kinds": ["a", "b"]})
    return {"train": np.concatenate([LABELS, LABELS[:30]]), "test": LABELS[:12]}


def _fast(tdb, query: dict) -> int | None:
    """The count as the count documents give it (None when they defer to the catalog)."""
    return tdb.data.count_from_documents(query)


def test_counts_by_tag_label_and_both_come_from_one_document_and_match_the_data(tdb):
    labels = _fill(tdb)
    every = np.concatenate([labels["train"], labels["test"]])
    cases = {
        "{}": ({}, len(every)),
        "tag": ({"tags.split": "train"}, len(labels["train"])),
        "label": ({"label": 3}, int((every == 3).sum())),
        "tag and label": ({"tags.split": "train", "label": {"$in": [1, 2]}},
                          int(np.isin(labels["train"], [1, 2]).sum())),
        "$and": ({"$and": [{"tags.split": "test"}, {"label": 5}]}, int((labels["test"] == 5).sum())),
        "int equals float": ({"tags.part": 2}, 30),
        "float equals int": ({"tags.part": 1.0}, 60),
        "bool is not 1": ({"tags.flag": 1}, 0),
        "a bool": ({"tags.flag": True}, 30),
        "list element": ({"tags.kinds": "b"}, 12),
        "a value never stored": ({"tags.split": "nowhere"}, 0),
    }
    for name, (query, expected) in cases.items():
        assert _fast(tdb, query) == expected, name
        assert tdb.data_count(query) == expected, name
        assert tdb.data_count(query) == len(tdb.collection("samples").distinct("_id", {"study": "test", **query}))


def test_a_plan_by_one_tag_value_reads_that_values_imports_and_never_the_catalog(tdb, monkeypatch):
    _fill(tdb)
    assert [entry["count"] for entry in tdb.data.counts.entries_for({"tags.split": ["test"]})] == [12]
    assert sorted(e["count"] for e in tdb.data.counts.entries_for({"tags.split": ["train"]})) == [30, 60]

    def no_catalog():
        raise AssertionError("the whole catalog was read")

    monkeypatch.setattr(tdb.data.catalog, "entries", no_catalog)
    x, y = tdb.find_data({"tags.split": "test"})
    assert np.array_equal(x, X[:12] + 2000) and np.array_equal(y, LABELS[:12])
    x, y = tdb.find_data({"tags.split": "train", "label": 5})
    assert np.array_equal(x, np.concatenate([X[LABELS == 5], X[:30][LABELS[:30] == 5] + 1000]))
    assert tdb.find_data({"tags.kinds": "b"})[0].shape == (12, 3)
    assert len(list(tdb.data_generator({"tags.part": 2}, batch_size=7))) == 5  # 30 samples
    monkeypatch.undo()
    tdb.update_data_tags({"tags.split": "test", "label": 0}, {"split": "valid"})  # retagged: the catalog answers
    assert tdb.data.counts.entries_for({"tags.split": ["test"]}) is None
    assert tdb.find_data({"tags.split": "valid"})[0].shape == (2, 3)
    assert tdb.find_data({"tags.split": "test"})[0].shape == (10, 3)


def test_queries_the_documents_cannot_answer_fall_back_to_the_exact_plan(tdb):
    _fill(tdb)
    for query in ({"tags.split": "train", "tags.part": 1}, {"label": {"$gt": 3}}, {"tags.kinds": {"$in": ["a", "b"]}}):
        assert _fast(tdb, query) is None, query
        assert tdb.data_count(query) == tdb.collection("samples").count_documents({"study": "test", **query}), query


def test_a_retried_addition_counts_once_and_a_rollback_subtracts_exactly_what_was_added(tdb):
    _fill(tdb)
    counts = tdb.data.counts
    entry = {"import_id": ObjectId(), "tags": {"split": "train"}, "count": 7, "labelled": True,
             "label_counts": [{"label": 3, "count": 7}], "uniform": True}
    doc_ids = counts.doc_ids(entry["tags"])
    before = {doc["_id"]: doc for doc in tdb.collection(COUNTS).find({"_id": {"$in": doc_ids}})}
    counts.add(entry["import_id"], entry, doc_ids)
    counts.add(entry["import_id"], entry, doc_ids)  # a retry after a dropped connection
    assert _fast(tdb, {"tags.split": "train"}) is None  # in flight: not trusted yet
    assert tdb.data_count({"tags.split": "train"}) == 90  # the catalog does not list it: not visible
    after = {doc["_id"]: doc for doc in tdb.collection(COUNTS).find({"_id": {"$in": doc_ids}})}
    assert all(after[i]["count"] == before[i]["count"] + 7 for i in doc_ids)
    counts.undo(entry["import_id"], doc_ids)
    counts.undo(entry["import_id"], doc_ids)
    restored = {doc["_id"]: doc for doc in tdb.collection(COUNTS).find({"_id": {"$in": doc_ids}})}
    assert all(restored[i]["count"] == before[i]["count"] for i in doc_ids)
    assert all(restored[i]["labels"][canonical(3)] == before[i]["labels"][canonical(3)] for i in doc_ids)
    assert _fast(tdb, {"tags.split": "train"}) == 90


def test_an_import_killed_after_listing_is_settled_by_the_next_import(tdb):
    _fill(tdb)
    original_settle = tdb.data.counts.settle
    tdb.data.counts.settle = lambda *args: (_ for _ in ()).throw(KeyboardInterrupt())  # killed right there
    with pytest.raises(KeyboardInterrupt):
        tdb.import_data(np.zeros((5, 3), np.float32), np.full(5, 3), tags={"split": "train"})
    tdb.data.counts.settle = original_settle
    assert tdb.data_count({"tags.split": "train"}) == 90  # rolled back by its own failure path
    assert _fast(tdb, {"tags.split": "train"}) == 90
    assert tdb.data.counts.refresh(tdb.data.catalog.entries, write=False) == 0


def test_retags_and_deletes_defer_to_the_plan_and_whole_deletes_restore_the_documents(tdb):
    labels = _fill(tdb)
    tdb.update_data_tags({"tags.part": 1, "label": 0}, {"split": "valid"})
    assert _fast(tdb, {"tags.split": "valid"}) is None and _fast(tdb, {"tags.split": "train"}) is None
    assert tdb.data_count({"tags.split": "valid"}) == int((LABELS == 0).sum())
    assert tdb.data_count({"tags.split": "train"}) == len(labels["train"]) - int((LABELS == 0).sum())
    assert _fast(tdb, {"tags.split": "test"}) == 12  # an import nobody touched still answers alone
    tdb.delete_data({"tags.part": 1})  # the retagged import, whole
    assert _fast(tdb, {}) == 42 and _fast(tdb, {"tags.split": "train"}) == 30
    assert tdb.data_count({"label": 2}) == int((labels["train"][60:] == 2).sum() + (labels["test"] == 2).sum())
    assert tdb.data.counts.refresh(tdb.data.catalog.entries, write=False) == 0


def test_a_database_written_before_the_counts_gets_them_built_once(tdb):
    labels = _fill(tdb)
    tdb.collection(COUNTS).delete_many({})
    forget_built(tdb.data._scope, COUNTS)
    tdb.data.counts._checked_built = False
    assert tdb.data_count({"tags.split": "train", "label": 4}) == int((labels["train"] == 4).sum())
    assert _fast(tdb, {"tags.split": "train", "label": 4}) == int((labels["train"] == 4).sum())
    assert sorted(e["count"] for e in tdb.data.counts.entries_for({"tags.split": ["train"]})) == [30, 60]


def test_fsck_finds_and_repairs_a_count_that_drifted(tdb):
    _fill(tdb)
    study_doc = tdb.data.counts.study_doc()
    tdb.collection(COUNTS).update_one({"_id": study_doc}, {"$inc": {"count": 5}})
    report = tdb.fsck(repair=False)
    assert report.stale_counts == 1 and not report.clean
    assert tdb.fsck().stale_counts == 1
    assert tdb.data_count() == 102 and tdb.fsck(repair=False).stale_counts == 0
