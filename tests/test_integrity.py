"""Integrity and honest states (issue: nothing lost, nothing wrong, nothing stuck): each failure once seen."""

from __future__ import annotations

import math

import numpy as np
import pytest
from bson import Binary
from polling import wait_for_quiet

import tensorlab
from tensorlab import IntegrityError, InvalidInput, NotFound
from tensorlab.tensordb.data.datastore import CHUNK_DATA

keras = pytest.importorskip("keras")


def test_a_nan_in_a_run_summary_closes_the_run_and_keeps_the_connection(tdb):
    run = tdb.run_store.start("nan-loss")
    tdb.run_store.finish(run, "failed", summary={"best": {"loss": float("nan"), "val_loss": 0.3},
                                                 "last": [1.0, float("inf")]})
    doc = tdb.run_store.resolve(run)
    assert doc["status"] == "failed" and doc["summary"]["best"] == {"loss": None, "val_loss": 0.3}
    assert {(f["path"], f["value"]) for f in doc["non_finite"]} == {("summary.best.loss", "nan"),
                                                                     ("summary.last[1]", "inf")}
    assert tdb.runs({"status": "failed"})["name"].tolist() == ["nan-loss"]  # the connection still works


def test_a_nan_loss_during_fit_ends_the_run_honestly(tdb):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(1e30), "mse")  # diverges to inf/NaN at once
    x = np.full((64, 2), 1e30, np.float32)
    tensorlab.Model(model, db=tdb).fit(x, np.ones(64), epochs=2, batch_size=16, run_name="diverges")
    doc = tdb.run_store.resolve("diverges")
    assert doc["status"] == "finished" and doc["ended"] is not None
    frame = tdb.logs(run="diverges", kind="train")
    assert len(frame) == 8 and not math.isfinite(frame["loss"].iloc[-1])


def test_deletes_need_an_explicit_query(tdb):
    tdb.import_data(np.zeros((3, 2)), np.zeros(3))
    tdb.save_parameters([np.zeros(2)])
    with pytest.raises(InvalidInput, match=r"pass \{\} to delete every sample"):
        tdb.delete_data(None)
    with pytest.raises(InvalidInput, match=r"pass \{\} to delete every parameter"):
        tdb.delete_parameters(None)
    assert tdb.data_count() == 3 and len(tdb.find_all_parameters()) == 1


@pytest.mark.parametrize("query", [{"study": {"$ne": "x"}}, {"study": "other"}, {"study": {"$exists": True}}])
def test_no_query_reaches_another_study(tdb, mongo_uri, query):
    other = tensorlab.connect(mongo_uri, db=tdb.db_name, study="other")
    other.import_data(np.zeros((2, 2)), np.zeros(2))
    other.run_store.start("theirs")
    other.push_job("a")
    for read in (tdb.data_count, tdb.runs, tdb.jobs.find, tdb.find_parameters, tdb.delete_data):
        with pytest.raises(InvalidInput, match="scoped to this connection's study"):
            read(query)
    assert other.data_count() == 2 and len(other.runs()) == 1 and len(other.jobs.find()) == 1
    other.close()


def test_deletes_and_drops_of_any_size(tdb):
    count = 40_000  # FerretDB's SQLite backend refused deletes over 32,766 documents at once
    tdb.import_data(np.zeros((count, 2), np.float32), np.arange(count) % 10, tags={"split": "big"})
    tdb.import_data(np.zeros((count, 2), np.float32), np.arange(count) % 10, tags={"split": "other"})
    assert tdb.delete_data({"tags.split": "big"}) == count
    assert tdb.data_count() == count
    assert tdb.drop_study()["samples"] == count and tdb.data_count() == 0


def test_structured_dtypes_are_refused_with_the_fix_named(tdb):
    structured = np.zeros(4, dtype=[("x", "f4"), ("y", "i4")])
    with pytest.raises(InvalidInput, match="structured dtype.*structured_to_unstructured"):
        tdb.import_data(structured, np.zeros(4))
    with pytest.raises(InvalidInput, match="structured dtype"):
        tdb.save_parameters([structured])
    assert tdb.data_count() == 0


def test_a_job_for_an_architecture_that_does_not_exist_is_refused_at_push(tdb):
    with pytest.raises(NotFound, match="No architecture matches"):
        tdb.push_job({"name": "typo"}, data={"tags.split": "train"})
    from bson import ObjectId

    with pytest.raises(NotFound):
        tdb.push_job(ObjectId(), data={"tags.split": "train"})
    with pytest.raises(InvalidInput, match="finite"):
        tdb.push_job("a", priority=float("nan"))
    assert tdb.jobs.find() == []


def test_fit_refuses_epochs_and_batch_sizes_below_one(tdb):
    model = tensorlab.Model(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]), db=tdb)
    for bad in ({"epochs": -3}, {"batch_size": 0}, {"epochs": 2.5}):
        with pytest.raises(InvalidInput, match="Expected an int >= 1"):
            model.fit(np.zeros((4, 2)), np.zeros(4), **bad)
    assert tdb.runs().empty


def _flip(collection, doc_id, path, position):
    """Flip one byte of a stored binary field with plain pymongo, as a failing disk or a bad copy would."""
    doc = collection.find_one({"_id": doc_id})
    value = doc
    for key in path[:-1]:
        value = value[key]
    data = bytearray(value[path[-1]])
    data[position % len(data)] ^= 0xFF
    collection.update_one({"_id": doc_id}, {"$set": {".".join(path): Binary(bytes(data))}})


@pytest.mark.parametrize("part", ["x", "y"])
def test_every_flipped_byte_of_an_inline_sample_chunk_is_detected(tdb, part):
    rng = np.random.default_rng(0)
    tdb.import_data(rng.random((300, 8), dtype=np.float32), rng.integers(0, 10, 300))
    data = tdb.collection(CHUNK_DATA)
    chunk = data.find_one({})
    length = len(chunk[part]["payload"])
    for position in rng.choice(length, size=min(12, length), replace=False):
        _flip(data, chunk["_id"], [part, "payload"], int(position))
        with pytest.raises(IntegrityError, match=f"Sample chunk {chunk['_id']}"):
            tdb.find_data()
        with pytest.raises(IntegrityError):
            list(tdb.data_generator({}, batch_size=32))
        _flip(data, chunk["_id"], [part, "payload"], int(position))  # flip back: readable again
        assert len(tdb.find_data()[0]) == 300


def test_every_flipped_byte_of_a_gridfs_sample_chunk_is_detected(gridfs_tdb, monkeypatch):
    from tensorlab.tensordb.data import datastore

    tdb = gridfs_tdb
    monkeypatch.setattr(datastore, "INLINE_LIMIT_BYTES", 1024)  # force the GridFS path with a small import
    rng = np.random.default_rng(1)
    tdb.import_data(rng.random((500, 8), dtype=np.float32), rng.integers(0, 10, 500))
    chunks = tdb.collection("blobs.chunks")
    gridfs_chunk = chunks.find_one({})
    for position in (0, 17, 500, 1999):
        _flip(chunks, gridfs_chunk["_id"], ["data"], position)
        with pytest.raises(IntegrityError, match="Sample chunk"):
            tdb.find_data()
        _flip(chunks, gridfs_chunk["_id"], ["data"], position)
    assert len(tdb.find_data()[0]) == 500


def test_every_flipped_byte_of_a_parameter_blob_is_detected(gridfs_tdb):
    tdb = gridfs_tdb
    rng = np.random.default_rng(2)
    weights = [rng.random((40, 40), dtype=np.float32), rng.random(40, dtype=np.float32)]
    tdb.save_parameters(weights)
    chunks = tdb.collection("blobs.chunks")
    for blob_chunk in chunks.find({}, {"_id": 1}):
        for position in (0, 5, 100, 4000):
            _flip(chunks, blob_chunk["_id"], ["data"], position)
            with pytest.raises(IntegrityError, match="Parameter blob"):
                tdb.find_parameters()
            _flip(chunks, blob_chunk["_id"], ["data"], position)
    for stored, original in zip(tdb.find_parameters(), weights, strict=True):
        np.testing.assert_array_equal(stored, original)


KILLED_RUN = """
import sys, time, tensorlab
db = tensorlab.connect(sys.argv[1], db=sys.argv[2], study="test")
run = db.run_store.start("doomed")
db.run_store.heartbeat(run, epoch=3, step=1234)
print("started", flush=True)
time.sleep(600)
"""


def test_a_killed_run_reads_crashed_with_its_last_step_in_every_view(tdb, mongo_uri):
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-c", KILLED_RUN, mongo_uri, tdb.db_name], stdout=subprocess.PIPE,
                               text=True)
    assert process.stdout.readline().strip() == "started"
    assert tdb.run_store.resolve("doomed")["status"] == "running"  # alive: left alone
    process.kill()
    process.wait()
    doc = tdb.run_store.resolve("doomed")
    assert doc["status"] == "crashed" and "last step 1234" in doc["error"]
    assert tdb.runs({"status": "running"}).empty
    assert tdb.runs({"status": "crashed"})["name"].tolist() == ["doomed"]
    widgets = pytest.importorskip("tensorlab.widgets")
    panel = widgets.LivePanel("doomed", tdb, auto_refresh=False)
    panel._poll_database()
    panel.refresh(force=True)
    assert "crashed" in panel.status.value and panel.stop_button.disabled
    panel.close()


def test_a_run_on_another_host_is_crashed_only_once_its_heartbeat_is_stale(tdb):
    from datetime import timedelta

    from tensorlab.clock import utc_now
    from tensorlab.tensordb.documents.run_liveness import STALE_AFTER_S

    fresh, stale = tdb.run_store.start("fresh"), tdb.run_store.start("stale")
    tdb.collection("runs").update_many({}, {"$set": {"host": "another-machine"}})
    tdb.collection("runs").update_one({"_id": stale}, {"$set": {
        "heartbeat": utc_now() - timedelta(seconds=STALE_AFTER_S + 5)}})
    assert tdb.run_store.resolve(fresh)["status"] == "running"
    assert tdb.run_store.resolve(stale)["status"] == "crashed"


def test_fit_keeps_the_heartbeat_fresh_during_a_long_epoch(tdb, monkeypatch):
    from tensorlab import run_heartbeat

    beats = []
    original = tdb.run_store.heartbeat
    monkeypatch.setattr(tdb.run_store, "heartbeat", lambda run, **p: (beats.append(p), original(run, **p)))
    monkeypatch.setattr(run_heartbeat, "HEARTBEAT_S", 0.05)

    class Slow(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            import time

            time.sleep(0.05)

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    tensorlab.Model(model, db=tdb).fit(np.zeros((64, 2)), np.zeros(64), epochs=1, batch_size=8,
                                       run_name="slow", callbacks=[Slow()])
    assert len(beats) >= 3 and {"epoch", "step"} <= set(beats[0])  # beats inside the single epoch
    assert tdb.run_store.resolve("slow")["status"] == "finished"


def test_two_live_writers_never_share_a_run_name(tdb):
    first = tdb.run_store.start("same")
    with pytest.warns(RuntimeWarning, match="in use by a live run.*same-2"):
        second = tdb.run_store.start("same")
    assert tdb.run_store.resolve(second)["name"] == "same-2"
    for step in range(3):
        tdb.train_log(step=step, loss=1.0, run=first)
        tdb.train_log(step=step, loss=2.0, run=second)
    assert tdb.logs(run="same")["loss"].tolist() == [1.0] * 3  # one run's rows, not a mix
    tdb.run_store.finish(first, "finished")
    tdb.run_store.start("same")  # a finished run's name is free again (resolve then gives the newest)
    with pytest.raises(InvalidInput, match="non-empty string"):
        tdb.run_store.start("")


IMPORTER = """
import sys, numpy as np, tensorlab
db = tensorlab.connect(sys.argv[1], db=sys.argv[2], study="test")
print("importing", flush=True)
db.import_data(np.zeros((int(sys.argv[3]), 4), np.float32), np.arange(int(sys.argv[3])) % 10, tags={"k": "v"})
print("done", flush=True)
"""


def test_an_import_killed_at_any_point_is_all_or_nothing_and_its_leftovers_go(tdb, mongo_uri):
    import random
    import subprocess
    import sys
    import time
    from datetime import timedelta

    size, rng, outcomes = 15_000, random.Random(7), []
    for _attempt in range(20):
        process = subprocess.Popen([sys.executable, "-c", IMPORTER, mongo_uri, tdb.db_name, str(size)],
                                   stdout=subprocess.PIPE, text=True)
        assert process.stdout.readline().strip() == "importing"
        deadline = time.monotonic() + rng.uniform(0.05, 1.2)
        while time.monotonic() < deadline and process.poll() is None:
            assert tdb.data_count({"tags.k": "v"}) % size == 0  # never a part of an import
            assert tdb.data_count({"label": 3}) % (size // 10) == 0
        process.kill()
        process.wait()
        assert wait_for_quiet(tdb, ("sample_imports", "sample_chunks", "sample_chunk_data", "samples"))
        visible = tdb.data_count({"tags.k": "v"})
        assert visible % size == 0
        outcomes.append(visible // size - sum(outcomes))
        tdb.import_data(np.zeros((1, 4), np.float32), np.zeros(1), tags={"k": "probe"})  # the next write collects
        # every dead import is rolled back; a marker the dead process sent just before dying can reach the server
        # after that collection (its socket still held it), and is then collected by the next one
        for _collection in range(2):
            unfinished = [m["_id"] for m in tdb.collection("sample_imports").find({"committed": False})
                          if not m.get("rolled_back")]
            if unfinished:
                tdb.data.collect_dead_imports()
        assert not unfinished
        committed = {m["_id"] for m in tdb.collection("sample_imports").find({"committed": True})}
        rolled_back = tdb.collection("sample_imports").find({"rolled_back": {"$exists": True}})
        known = committed | {m["_id"] for m in rolled_back}
        # every chunk is of a committed import, or of a rolled-back one (a write the dead process had already sent
        # can land after its rollback: invisible, and swept again a minute later, checked at the end)
        assert all(doc["import_id"] in known for doc in tdb.collection("sample_chunk_data").find({}, {"x": 0}))
        # the running counts lost or doubled nothing (those still in flight are not trusted, hence not compared)
        assert tdb.data.counts.refresh(tdb.data.catalog.entries, write=False) == 0
    assert 0 in outcomes  # some kills did land mid-import
    a_while_ago = tensorlab.clock.utc_now() - timedelta(minutes=2)  # as if the sweep delay had passed
    tdb.collection("sample_imports").update_many({"rolled_back": {"$exists": True}},
                                                 {"$set": {"rolled_back": a_while_ago}})
    tdb.import_data(np.zeros((1, 4), np.float32), np.zeros(1), tags={"k": "probe"})  # sweeps late stragglers
    assert tdb.collection("samples").count_documents({}) == tdb.data_count()  # no leftover sample at all
    planned = sum(selection.size for selection in tdb.data.plan({"tags.k": "v"}, need_rows=False))
    assert tdb.data.count_from_documents({"tags.k": "v"}) == planned == size * sum(outcomes)  # trusted again


def test_an_import_on_another_host_is_collected_only_once_its_heartbeat_is_stale(tdb):
    from datetime import timedelta

    from tensorlab.clock import utc_now
    from tensorlab.tensordb.documents.run_liveness import STALE_AFTER_S

    long_ago = utc_now() - timedelta(hours=1)
    for name, beat in (("busy", utc_now()), ("dead", long_ago - timedelta(seconds=STALE_AFTER_S))):
        marker = {"_id": name, "study": "test", "committed": False, "samples": 10, "started": long_ago,
                  "heartbeat": beat, "host": "another-machine", "pid": 1}
        tdb.collection("sample_imports").insert_one(marker)
    tdb.import_data(np.zeros((1, 2)), np.zeros(1))  # the next write collects dead imports
    markers = {m["_id"]: m for m in tdb.collection("sample_imports").find({"_id": {"$in": ["busy", "dead"]}})}
    assert markers["busy"].get("rolled_back") is None  # started an hour ago, but still beating: left alone
    assert markers["dead"].get("rolled_back") is not None
    published = []
    with pytest.raises(tensorlab.TensorLabError, match="rolled back while it was written"):
        tdb.data.ledger.commit("dead", lambda: published.append("dead"))
    assert published == []  # a rolled-back import is never listed in the catalog
