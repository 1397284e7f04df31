"""Architectures (no code runs without trust) and parameter versions (dedup, best, delete without orphans)."""

from __future__ import annotations

import numpy as np
import pytest

from tensorlab import InvalidInput, NotFound, UnsafeOperation
from tensorlab.keras_weights import apply_weights
from tensorlab.tensordb.models.architectures import build_from_source

keras = pytest.importorskip("keras")

SOURCE = """
import keras
def build_model():
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="only")])
"""


def _mlp(units=16, name="mlp"):
    return keras.Sequential([keras.Input((8,)), keras.layers.Dense(units, activation="relu"),
                             keras.layers.Dense(3, activation="softmax")], name=name)


def test_keras_architecture_round_trip(tdb):
    arch_id = tdb.save_model_architecture(_mlp(), tags={"family": "mlp"})
    rebuilt = tdb.load_model_architecture({"tags.family": "mlp"})
    assert [type(layer).__name__ for layer in rebuilt.layers] == ["Dense", "Dense"]
    assert rebuilt.count_params() == _mlp().count_params()
    assert tdb.architectures.find({"_id": arch_id})["kind"] == "keras_json"


def test_source_architecture_is_text_unless_trusted(tdb):
    tdb.save_model_architecture(SOURCE, tags={"family": "src"})
    assert tdb.load_model_architecture({"tags.family": "src"}) == SOURCE
    model = tdb.load_model_architecture({"tags.family": "src"}, trust=True)
    assert model.layers[0].name == "only"
    with pytest.raises(UnsafeOperation, match="trust=True"):
        build_from_source(SOURCE)


def test_architecture_errors(tdb):
    with pytest.raises(InvalidInput, match="Keras model or Python source"):
        tdb.save_model_architecture(42)
    with pytest.raises(NotFound):
        tdb.load_model_architecture({"tags.family": "none"})


def test_parameter_versions_round_trip_and_best(tdb):
    model = _mlp()
    ids = []
    for epoch, accuracy in enumerate([0.5, 0.9, 0.7]):
        for variable in model.trainable_variables:
            variable.assign(variable.numpy() + 1.0)
        ids.append(tdb.save_parameters(model, {"val_accuracy": accuracy}, epoch=epoch, run="r1"))
    latest = tdb.find_parameters({"run": "r1"})
    for stored, current in zip(latest, model.get_weights(), strict=True):
        np.testing.assert_array_equal(stored, current)
        assert stored.dtype == current.dtype
    best = tdb.find_best_parameters({"run": "r1"}, "val_accuracy")
    assert best["_id"] == ids[1] and best["epoch"] == 1 and best["version"] == 2
    by_sort = tdb.find_parameters({"run": "r1"}, sort=[("val_accuracy", -1)])
    np.testing.assert_array_equal(by_sort[0], tdb.parameters.load(best)[0])
    assert len(tdb.find_all_parameters({"run": "r1"})) == 3
    names = [entry["name"] for entry in best["arrays"]]
    assert len(names) == 4 and all(isinstance(name, str) for name in names)


def _stored_files(tdb) -> int:
    """Payloads held: files on disk beside the managed server, plus GridFS files."""
    on_disk = 0
    if tdb.blobs.uses_files and tdb.blobs.local_files.folder.exists():
        on_disk = sum(1 for path in tdb.blobs.local_files.folder.rglob("*") if path.is_file())
    return on_disk + tdb.collection("blobs.files").count_documents({})


def test_identical_blobs_are_stored_once_and_deletes_leave_no_orphans(any_tdb):
    tdb = any_tdb
    frozen = np.random.default_rng(0).random((200, 200)).astype(np.float32)
    first = tdb.save_parameters([frozen, np.zeros(3)], {"n": 1})
    tdb.save_parameters([frozen, np.ones(3)], {"n": 2})
    assert tdb.blobs.count() == 3 and _stored_files(tdb) == 3  # frozen stored once
    tdb.delete_parameters({"_id": first})
    assert tdb.blobs.count() == 2 and _stored_files(tdb) == 2  # zeros(3) gone, frozen still referenced
    np.testing.assert_array_equal(tdb.find_parameters()[0], frozen)
    assert tdb.delete_parameters({}) == 1
    assert tdb.blobs.count() == 0 and _stored_files(tdb) == 0
    assert tdb.collection("blobs.chunks").count_documents({}) == 0


def test_dtypes_shapes_and_non_finite_metrics(tdb):
    arrays = [np.arange(6, dtype=np.int8).reshape(2, 3), np.array(2.5, np.float16), np.zeros((0, 4), np.float64)]
    tdb.save_parameters(arrays, {"loss": float("nan"), "note": "odd"})
    back = tdb.find_parameters()
    for original, stored in zip(arrays, back, strict=True):
        assert stored.dtype == original.dtype and stored.shape == original.shape
        np.testing.assert_array_equal(stored, original)
    doc = tdb.parameters.find_doc()
    assert doc["non_finite"] == {"loss": "nan"} and doc["metrics"]["loss"] is None


def test_weights_that_do_not_match_an_architecture(tdb):
    tdb.save_parameters(_mlp(units=32), {"which": "wide"})
    narrow = _mlp(units=16)
    before = [w.copy() for w in narrow.get_weights()]
    with pytest.raises(InvalidInput, match="another architecture"):
        apply_weights(narrow, tdb.find_parameters({"tags.which": "wide"}))
    for kept, now in zip(before, narrow.get_weights(), strict=True):
        np.testing.assert_array_equal(kept, now)  # nothing half-applied
    with pytest.raises(InvalidInput, match="list of arrays"):
        tdb.save_parameters("not weights")
    with pytest.raises(NotFound):
        tdb.find_parameters({"tags.which": "missing"})


def test_blobs_are_addressed_by_content_and_old_layout_blobs_still_load(gridfs_tdb):
    import gridfs

    tdb = gridfs_tdb
    from tensorlab.tensordb.payloads import codec

    weights = np.random.default_rng(1).random((64, 64)).astype(np.float32)
    version = tdb.parameters.find_doc({"_id": tdb.save_parameters([weights])})
    digest = version["arrays"][0]["blob"]
    file = tdb.collection("blobs.files").find_one({"_id": digest})  # the hash is the `_id`: one lookup
    assert file is not None and file["filename"] == digest
    payload = gridfs.GridFSBucket(tdb.db, bucket_name="blobs").open_download_stream(digest).read()
    meta = codec.ArrayMeta.from_doc(file["metadata"])
    np.testing.assert_array_equal(codec.decode(payload, meta, file["metadata"].get("frames", 1)), weights)
    # a blob of the first layout: ObjectId `_id`, the hash only as filename
    old = np.arange(10, dtype=np.int16)
    old_digest = codec.content_hash(old)
    encoded, old_meta = codec.encode(old)
    tdb.blobs.put_bytes(old_digest, encoded, {**old_meta.to_doc(), "frames": 1, "nbytes": old.nbytes})
    np.testing.assert_array_equal(tdb.blobs.get_array(old_digest), old)
    assert tdb.blobs.collect_garbage([old_digest], lambda _digest: False) == 1
    with pytest.raises(gridfs.errors.NoFile):
        tdb.blobs.get_array(old_digest)


def test_best_and_sorted_parameters_agree_between_index_and_scan(tdb):
    rng = np.random.default_rng(2)
    accuracies = [0.5, 0.9, float("nan"), 0.7, None]
    for epoch, accuracy in enumerate(accuracies):
        metrics = {} if accuracy is None else {"val_accuracy": accuracy}
        tdb.save_parameters([rng.random(3)], {"epoch": epoch}, run="r", metrics={**metrics, "loss": 1.0 - epoch / 10})
    tdb.save_parameters([rng.random(3)], {"epoch": 0}, run="other", metrics={"val_accuracy": 0.99})
    by_index, by_scan = {"run": "r"}, {"run": {"$in": ["r"]}}  # equality: run index; operator: collection scan
    for metric, mode in (("val_accuracy", "max"), ("val_accuracy", "min"), ("loss", "min")):
        assert tdb.find_best_parameters(by_index, metric, mode)["_id"] == \
            tdb.find_best_parameters(by_scan, metric, mode)["_id"]
    assert tdb.find_best_parameters(by_index)["metrics"]["val_accuracy"] == 0.9
    for sort in (None, [("loss", 1)], [("epoch", -1)]):
        assert [d["_id"] for d in tdb.parameters.find_docs(by_index, sort)] == \
            [d["_id"] for d in tdb.parameters.find_docs(by_scan, sort)]
    assert tdb.delete_parameters({"run": "r", "tags.epoch": 1}) == 1
    assert tdb.find_best_parameters(by_index)["metrics"]["val_accuracy"] == 0.7
