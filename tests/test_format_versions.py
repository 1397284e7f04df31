"""Readers accept every format version ever written (#14): a database written by format 1 (arrays as
python-lz4 blocks, `codec: "lz4"`), restored from tests/fixtures/format_v1, reads correctly today."""

from __future__ import annotations

from pathlib import Path

import bson
import numpy as np
import pytest

import tensorlab

keras = pytest.importorskip("keras")
FIXTURE = Path(__file__).parent / "fixtures" / "format_v1"


@pytest.fixture
def v1_lab(mongo_uri, db_name):
    db = tensorlab.connect(mongo_uri, db=db_name, study="v1")
    for path in sorted(FIXTURE.glob("*.bson")):
        db.collection(path.stem).insert_many(bson.decode_all(path.read_bytes()))
    yield db
    db.client.drop_database(db_name)
    db.close()


def test_a_format_1_lab_reads_trains_and_takes_new_versions(v1_lab):
    db = v1_lab
    codecs = {doc["metadata"]["codec"] for doc in db.collection("blobs.files").find({})}
    assert codecs == {"lz4"}  # what the fixture holds: format 1 only
    X, y = np.load(FIXTURE / "X.npy"), np.load(FIXTURE / "y.npy")
    found_x, found_y = db.find_data({"tags.split": "train"})
    np.testing.assert_array_equal(found_x, X)
    np.testing.assert_array_equal(found_y, y)
    streamed = np.concatenate([xb for xb, _ in db.data_generator({"tags.split": "train"}, batch_size=64)])
    np.testing.assert_array_equal(streamed, X)
    zeros, integers, ramp = db.find_parameters({"tags.kind": "lz4"})
    np.testing.assert_array_equal(zeros, np.zeros((300, 50), "float32"))
    np.testing.assert_array_equal(integers, np.arange(1000))
    np.testing.assert_array_equal(ramp, np.linspace(0, 1, 5000, dtype="float32"))  # shuffled block
    frame = db.logs(run="old-run", kind="valid")
    assert frame["epoch"].tolist() == [0, 1] and frame["val_accuracy"].notna().all()
    model = tensorlab.Model.from_db(db, {"name": "old"}, params="best", metric="val_accuracy")
    best = db.find_best_parameters(metric="val_accuracy")
    assert model.evaluate(X, y)["accuracy"] == pytest.approx(best["metrics"]["val_accuracy"], abs=1e-6)
    assert db.fsck(repair=False).clean
    new = db.save_parameters([ramp * 2], {"kind": "v2"})  # format 2 beside format 1
    np.testing.assert_array_equal(db.parameters.find({"_id": new})[0], ramp * 2)
