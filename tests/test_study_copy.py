"""Moving a lab between servers (#14): `tensorlab copy` between two managed servers (two homes), killed
half-way with SIGKILL, run again: everything arrives once, verified, and the copy trains and streams."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas
import pytest

import tensorlab
from tensorlab.tensordb.server.localserver import LocalServer
from tensorlab.tensordb.transfer.study_copy import DERIVED, PRIMARY, copy_study, document_hash

keras = pytest.importorskip("keras")
STUDY = "moving"
DB = "lab"
SAMPLES = 40_000


@pytest.fixture
def two_servers(tmp_path):
    servers = [LocalServer(tmp_path / name) for name in ("source", "target")]
    infos = [server.start() for server in servers]
    yield infos[0].uri, infos[1].uri
    for server in servers:
        server.stop()


def _fill(uri: str) -> dict:
    db = tensorlab.connect(uri, db=DB, study=STUDY)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(SAMPLES, 16)).astype("float32")
    y = (X[:, 0] > 0).astype("int64")
    db.import_data(X[: SAMPLES // 2], y[: SAMPLES // 2], {"split": "train"})
    db.import_data(X[SAMPLES // 2:], y[SAMPLES // 2:], {"split": "valid"})
    model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(2, activation="softmax")], name="mover")
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    tensorlab.Model(model, db=db).fit(data={"tags.split": "train"}, validation_data={"tags.split": "valid"},
                                      epochs=2, batch_size=512, run_name="r1", monitor="val_accuracy")
    db.save_parameters([rng.normal(size=(400_000,)).astype("float32")], {"kind": "big"})  # a payload file
    db.push_job({"name": "mover"}, data={"tags.split": "train"}, tags={"queue": "cpu"})
    db.flush_logs()
    expected = {"logs": db.logs(run="r1"),
                "best": db.find_best_parameters(metric="val_accuracy")["_id"],
                "counts": {name: db.collection(name).count_documents({"study": STUDY}) for name in PRIMARY}}
    db.close()
    return expected


def _copy_cli(source: str, target: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tensorlab.cli", "copy", "--from", source, "--to", target,
                             "--db", DB, "--study", STUDY], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def test_copy_killed_half_way_then_rerun_arrives_once_verified_and_usable(two_servers):
    source_uri, target_uri = two_servers
    expected = _fill(source_uri)
    target = tensorlab.connect(target_uri, db=DB, study=STUDY)
    killed = _copy_cli(source_uri, target_uri)
    deadline = time.monotonic() + 300
    while target.collection("samples").count_documents({}) == 0 and killed.poll() is None:
        assert time.monotonic() < deadline, "the copy never started writing samples"
        time.sleep(0.02)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    copied_before_kill = target.collection("samples").count_documents({})
    assert 0 < copied_before_kill < SAMPLES, "the kill must land half-way through the copy"

    rerun = _copy_cli(source_uri, target_uri)
    out, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, out + err
    assert "verified: every document and payload matches" in out
    counts = {name: target.collection(name).count_documents({"study": STUDY}) for name in PRIMARY}
    assert counts == expected["counts"]  # everything, once

    source = tensorlab.connect(source_uri, db=DB, study=STUDY)
    for name in (*PRIMARY, *DERIVED):  # same documents, same content
        mine = {doc["_id"]: document_hash(doc) for doc in source.collection(name).find({"study": STUDY})}
        theirs = {doc["_id"]: document_hash(doc) for doc in target.collection(name).find({"study": STUDY})}
        assert mine == theirs, name
    pandas.testing.assert_frame_equal(target.logs(run="r1"), expected["logs"])
    best = tensorlab.Model.from_db(target, {"name": "mover"}, params="best", metric="val_accuracy")
    assert target.find_best_parameters(metric="val_accuracy")["_id"] == expected["best"]
    accuracy = best.evaluate(data={"tags.split": "valid"})["accuracy"]
    assert accuracy > 0.8
    assert sum(len(x) for x, _ in target.data_generator({"tags.split": "train"}, batch_size=1000)) == SAMPLES // 2
    again = copy_study(source, target, progress=False)  # idempotent: nothing is copied twice
    assert again.ok and sum(again.inserted.values()) == 0 and again.payloads_copied == 0 and not again.repaired
    assert len(target.jobs.find({"tags.queue": "cpu"})) == 1 and target.pop_job() is not None
    source.close()
    target.close()


def test_export_to_a_folder_and_import_elsewhere_is_exact_and_idempotent(tdb, mongo_uri, db_name, tmp_path):
    rng = np.random.default_rng(5)
    X = rng.normal(size=(3000, 300)).astype("float32")  # 3.6 MB of noise: a payload file beside the server
    tdb.import_data(X, np.arange(3000) % 7, {"split": "train"})
    weights = [np.linspace(0, 1, 100_000, dtype="float32"), rng.normal(size=(200, 200)).astype("float32")]
    tdb.save_parameters(weights, {"kind": "exported"})
    run = tdb.run_store.start("exported-run")
    for step in range(700):
        tdb.train_log(step=step, run=run, loss=1.0 / (step + 1))
    tdb.flush_logs()
    out = subprocess.run([sys.executable, "-m", "tensorlab.cli", "export", "--to", str(tmp_path / "dump"), "--uri",
                          mongo_uri, "--db", tdb.db_name, "--study", tdb.study], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    folder = tmp_path / "dump" / tdb.study
    assert (folder / "blobs.files.bson").exists() and (folder / "samples.bson").exists()
    target_db = f"{db_name}_imported"
    for _ in range(2):  # the second import finds everything there and inserts nothing
        out = subprocess.run([sys.executable, "-m", "tensorlab.cli", "import", str(tmp_path / "dump"), "--uri",
                              mongo_uri, "--db", target_db], capture_output=True, text=True)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "verified: every document and payload matches" in out.stdout
    assert "payloads: 0 copied now" in out.stdout and "copied now)" not in out.stdout.replace("(0 copied now)", "")
    target = tensorlab.connect(mongo_uri, db=target_db, study=tdb.study, payload_files=False)
    try:
        found_x, found_y = target.find_data({"tags.split": "train"})
        np.testing.assert_array_equal(found_x, X)
        np.testing.assert_array_equal(found_y, np.arange(3000) % 7)
        for stored, array in zip(target.find_parameters({"tags.kind": "exported"}), weights, strict=True):
            np.testing.assert_array_equal(stored, array)
        assert target.logs(run="exported-run")["step"].tolist() == list(range(700))
    finally:
        target.client.drop_database(target_db)
        target.close()
