"""Inputs that used to escape as raw pymongo/Keras errors: each gets a TensorLab error, and nothing stored changes."""

from __future__ import annotations

import json
import time

import keras
import numpy as np
import pytest

import tensorlab
from tensorlab.errors import InvalidInput

STORED = ("samples", "sample_chunks", "sample_chunk_data", "sample_catalog", "parameters", "payload_files",
          "blobs.files", "blobs.chunks", "architectures", "jobs")


def _snapshot(tdb) -> dict:
    return {name: list(tdb.collection(name).find({}, sort=[("_id", 1)])) for name in STORED}


@pytest.fixture
def reference(tdb):
    """A lab holding data, parameters and an architecture, and the exact documents it holds."""
    rng = np.random.default_rng(0)
    X, y = rng.random((200, 8), dtype=np.float32), rng.integers(0, 3, 200)
    tdb.import_data(X, y, {"split": "train"})
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3, activation="softmax")], name="ref")
    tdb.save_model_architecture(model, name="ref")
    weights = [w.copy() for w in model.get_weights()]
    tdb.save_parameters(weights, {"which": "ref"}, run="r1")
    yield tdb, model, (X, y, weights), _snapshot(tdb)


def _unchanged(tdb, data, snapshot) -> None:
    X, y, weights = data
    assert _snapshot(tdb) == snapshot
    found_x, found_y = tdb.find_data({"tags.split": "train"})
    np.testing.assert_array_equal(found_x, X)
    np.testing.assert_array_equal(found_y, y)
    for stored, original in zip(tdb.find_parameters({"tags.which": "ref"}), weights, strict=True):
        assert stored.tobytes() == original.tobytes()


BAD_QUERIES = [
    ({"$where": "this.label == 1"}, r"\$where.*server-side code"),
    ({"label": {"$function": {"body": "return true", "args": [], "lang": "js"}}}, r"\$function"),
    ({"$expr": {"$gt": ["$label", 1]}}, r"\$expr"),
    ({"label": {"$gte": 1, "$between": [1, 2]}}, r"unknown operator \$between at label"),
    ({"$or": [{"label": 1}, {"tags.split": {"$regexp": "tr"}}]}, r"unknown operator \$regexp at \$or\[1\]"),
]


@pytest.mark.parametrize(("query", "message"), BAD_QUERIES)
def test_queries_the_server_would_reject_or_run_as_code_are_refused(reference, query, message):
    tdb, _model, data, snapshot = reference
    for call in (tdb.find_data, tdb.data_count, tdb.runs, tdb.find_parameters, tdb.delete_data,
                 tdb.delete_parameters, lambda q: tdb.update_data_tags(q, {"x": 1})):
        with pytest.raises(InvalidInput, match=message):
            call(query)
    _unchanged(tdb, data, snapshot)


def test_tags_too_large_for_a_document_are_refused_before_anything_is_written(reference):
    tdb, _model, data, snapshot = reference
    huge = {"note": "x" * (17 * 1024 * 1024)}
    with pytest.raises(InvalidInput, match=r"tags.*limited to 64 KB"):
        tdb.import_data(np.zeros((3, 8), np.float32), np.zeros(3), huge)
    with pytest.raises(InvalidInput, match="limited to 64 KB"):
        tdb.save_parameters([np.zeros(3)], huge)
    with pytest.raises(InvalidInput, match="limited to 64 KB"):
        tdb.update_data_tags({"tags.split": "train"}, huge)
    _unchanged(tdb, data, snapshot)


def test_seed_constructor_with_a_bad_port_or_address(reference):
    tdb, _model, data, snapshot = reference
    for port in ("abc", -1, 70000, 27017.5, True):
        with pytest.raises(InvalidInput, match="argument `port`"):
            tensorlab.TensorDB(ip="127.0.0.1", port=port)
    with pytest.raises(InvalidInput, match="argument `ip`"):
        tensorlab.TensorDB(ip="db/evil@host", port=27017)
    _unchanged(tdb, data, snapshot)


def test_parameter_fields_that_cannot_be_stored(reference):
    tdb, _model, data, snapshot = reference
    with pytest.raises(InvalidInput, match="argument `run`"):
        tdb.save_parameters([np.zeros(3)], run=object())
    with pytest.raises(InvalidInput, match="argument `architecture`"):
        tdb.save_parameters([np.zeros(3)], architecture=[1, 2])
    with pytest.raises(InvalidInput, match="argument `epoch`"):
        tdb.save_parameters([np.zeros(3)], epoch="3")
    with pytest.raises(InvalidInput, match="argument `step`"):
        tdb.save_parameters([np.zeros(3)], step=-2)
    _unchanged(tdb, data, snapshot)


def test_a_bad_step_is_refused_and_logging_goes_on(reference):
    tdb, _model, data, snapshot = reference
    with pytest.raises(InvalidInput, match="step"):
        tdb.train_log(step="x", loss=1.0)
    assert tdb.train_log(loss=0.5) and tdb.flush_logs()
    _unchanged(tdb, data, snapshot)


def test_stored_architectures_keras_cannot_rebuild_fail_fast_and_say_why(reference):
    tdb, model, data, _snapshot_before = reference
    config = json.loads(model.to_json())
    config["config"]["layers"][-1]["class_name"] = "NoSuchLayer"
    broken = {"study": "test", "kind": "keras_json", "tags": {"case": "unknown"}, "name": "odd",
              "config": json.dumps(config)}
    truncated = {"study": "test", "kind": "keras_json", "tags": {"case": "truncated"}, "name": "cut",
                 "config": model.to_json()[:-40]}
    tdb.collection("architectures").insert_many([broken, truncated])
    snapshot = _snapshot(tdb)
    started = time.monotonic()
    with pytest.raises(InvalidInput, match="not valid JSON"):
        tdb.load_model_architecture({"tags.case": "truncated"})
    assert time.monotonic() - started < 5  # refused at once, not after retries
    with pytest.raises(InvalidInput, match="cannot be rebuilt by Keras.*register"):
        tdb.load_model_architecture({"tags.case": "unknown"})
    _unchanged(tdb, data, snapshot)


def test_fit_with_fewer_labels_than_samples_is_refused_before_a_run_starts(reference):
    tdb, model, data, snapshot = reference
    model.compile("adam", "sparse_categorical_crossentropy")
    runs_before = tdb.collection("runs").count_documents({})
    with pytest.raises(InvalidInput, match="`x` has 200 samples but `y` has 150"):
        tensorlab.Model(model, name="short", db=tdb).fit(data[0], data[1][:150], epochs=1)
    with pytest.raises(InvalidInput, match="validation x"):
        tensorlab.Model(model, name="short", db=tdb).fit(data[0], data[1], epochs=1,
                                                         validation_data=(data[0][:10], data[1][:9]))
    assert tdb.collection("runs").count_documents({}) == runs_before
    _unchanged(tdb, data, snapshot)

