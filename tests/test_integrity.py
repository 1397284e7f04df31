"""Integrity and honest states (issue: nothing lost, nothing wrong, nothing stuck): each failure once seen."""

from __future__ import annotations

import math

import numpy as np
import pytest

import tensorlab
from tensorlab import InvalidInput, NotFound

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
