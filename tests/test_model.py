"""The Model layer: from_db, resume, stop within a batch, failed runs, background errors, outages mid-fit."""

from __future__ import annotations

import os
import signal
import threading
import time
import warnings

import numpy as np
import pytest

import tensorlab
from tensorlab import InvalidInput, NotFound
from tensorlab.datasets import load_digits, load_mnist
from tensorlab.devices import list_devices, on_device
from tensorlab.tensordb.server.localserver import LocalServer

keras = pytest.importorskip("keras")
(X, Y), (XV, YV) = load_digits()


def _mlp(name="digits_mlp"):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")], name=name)
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_fit_then_from_db_best_reproduces_best_accuracy(tdb):
    model = tensorlab.Model(_mlp, db=tdb)
    history = model.fit(X, Y, validation_data=(XV, YV), epochs=4, batch_size=64, run_name="best-of",
                        monitor="val_accuracy")
    best = max(history.history["val_accuracy"])
    assert best >= 0.9
    rebuilt = tensorlab.Model.from_db(tdb, {"_id": model.architecture_id}, params="best")
    assert rebuilt.evaluate(XV, YV)["accuracy"] == pytest.approx(best, abs=1e-6)
    latest = tensorlab.Model.from_db(tdb, {"_id": model.architecture_id}, params="latest")
    np.testing.assert_allclose(latest.predict(XV[:5]), model.predict(XV[:5]), rtol=1e-5)
    assert tdb.run_store.resolve("best-of")["architecture"] == model.architecture_id


def test_fit_from_a_tensordb_query(tdb):
    tdb.import_data(X, Y, {"split": "train"})
    tdb.import_data(XV, YV, {"split": "valid"})
    model = tensorlab.Model(_mlp(), db=tdb)
    history = model.fit(data={"tags.split": "train"}, validation_data={"tags.split": "valid"}, epochs=3,
                        batch_size=64, run_name="from-query")
    assert max(history.history["val_accuracy"]) >= 0.85
    run = tdb.run_store.resolve("from-query")
    assert tensorlab.tensordb.documents.query_text.query_from_text(run["data_query"]) == {"tags.split": "train"}


def test_resume_continues_at_the_next_epoch_in_the_same_run(tdb):
    first = tensorlab.Model(_mlp(), db=tdb)
    first.fit(X, Y, validation_data=(XV, YV), epochs=2, batch_size=128, run_name="resumable")
    again = tensorlab.Model(_mlp(), db=tdb)  # fresh weights: resume must restore them
    history = again.fit(X, Y, validation_data=(XV, YV), epochs=4, batch_size=128, run_name="resumable",
                        resume=True)
    assert len(history.epoch) == 2 and history.epoch == [2, 3]
    runs = tdb.run_store.find({"name": "resumable"})
    assert len(runs) == 1 and runs[0]["status"] == "finished"
    valid = tdb.logs(run="resumable", kind="valid")
    assert valid["epoch"].tolist() == [0, 1, 2, 3]
    steps = sorted(tdb.logs(run="resumable", kind="train")["step"].tolist())
    assert steps == list(range(1, len(steps) + 1)) and len(steps) == 4 * 12  # goes on, no duplicates
    assert [d["epoch"] for d in tdb.parameters.find_docs({"run": runs[0]["_id"]}, sort=[("epoch", 1)])] == [0, 1, 2, 3]
    assert history.history["val_accuracy"][0] >= 0.85  # started from the restored weights, not from scratch


def test_stop_halts_within_one_batch_and_leaves_a_checkpoint(tdb):
    model = tensorlab.Model(_mlp(), db=tdb)
    handle = tensorlab.train_in_background(model, db=tdb, x=X, y=Y, epochs=200, batch_size=16, run_name="stoppable")
    deadline = time.time() + 60
    while handle.progress.global_step < 20 and time.time() < deadline:
        time.sleep(0.01)
    assert handle.status == "running" and not handle.done  # the caller was free while it trained
    at_stop = handle.progress.global_step
    handle.stop()
    assert handle.wait(60)
    assert handle.status == "stopped" and handle.error is None
    assert handle.progress.global_step - at_stop <= 1
    run = tdb.run_store.resolve("stoppable")
    assert run["status"] == "stopped" and handle.run_id == run["_id"]
    final = tdb.parameters.find_doc({"run": run["_id"], "tags.final": True})
    assert final["step"] == handle.progress.global_step
    assert "stopped" in repr(handle)


class _Boom(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            raise RuntimeError("exploded at epoch 1")


def test_a_failing_fit_marks_the_run_failed_and_reraises(tdb):
    model = tensorlab.Model(_mlp(), db=tdb)
    with pytest.raises(RuntimeError, match="exploded"):
        model.fit(X, Y, epochs=3, batch_size=128, run_name="doomed", callbacks=[_Boom()])
    run = tdb.run_store.resolve("doomed")
    assert run["status"] == "failed" and "exploded at epoch 1" in run["error"] and "Traceback" in run["error"]


def test_background_errors_are_kept_on_the_handle(tdb):
    handle = tensorlab.train_in_background(tensorlab.Model(_mlp(), db=tdb), db=tdb, x=X, y=Y, epochs=3,
                                           batch_size=128, run_name="bg-doomed", callbacks=[_Boom()])
    assert handle.wait(60)
    assert handle.status == "failed" and isinstance(handle.error, RuntimeError)
    assert "exploded at epoch 1" in handle.traceback and "exploded" in repr(handle)
    assert tdb.run_store.resolve("bg-doomed")["status"] == "failed"


def test_server_stopped_mid_fit_training_completes_and_every_batch_row_arrives(tmp_path):
    server = LocalServer(tmp_path)
    info = server.start()
    db = tensorlab.connect(info.uri, db="midfit", study="o", timeout_s=1.0)
    restarted = threading.Event()

    class Outage(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if self.params and batch == 5 and not restarted.is_set() and server.status():
                server.stop()
                threading.Timer(2.0, lambda: (server.start(), restarted.set())).start()

    try:
        model = tensorlab.Model(_mlp(), db=db)
        history = model.fit(X, Y, validation_data=(XV, YV), epochs=3, batch_size=64, run_name="outage",
                            callbacks=[Outage()])
        assert len(history.epoch) == 3 and restarted.wait(30)
        assert db.flush_logs(timeout_s=60)
        steps_per_epoch = int(np.ceil(len(X) / 64))
        rows = db.logbook.count(kind="train")
        assert rows == 3 * steps_per_epoch and db.logbook.writer.dropped == 0
    finally:
        db.close()
        server.stop()


def test_a_stalled_server_at_every_epoch_end_loses_no_checkpoint(tmp_path):
    """SIGSTOPped for longer than the client's timeout just as checkpoints are saved: each waits, none is lost."""
    server = LocalServer(tmp_path)
    info = server.start()
    db = tensorlab.connect(info.uri, db="stalled", study="o", timeout_s=1.0)
    resumed = []

    class Stall(keras.callbacks.Callback):  # runs before the DBLogger's own on_epoch_end (it is added last)
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:  # longer than the client's heartbeat (10 s): it marks the server gone meanwhile
                os.kill(info.pid, signal.SIGSTOP)
                threading.Timer(15.0, lambda: (os.kill(info.pid, signal.SIGCONT), resumed.append(epoch))).start()

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # no "checkpoint could not be stored"
            tensorlab.Model(_mlp(), db=db).fit(X, Y, epochs=3, batch_size=128, run_name="stalled",
                                               callbacks=[Stall()])
        assert resumed == [0]
        run = db.run_store.resolve("stalled")
        assert run["status"] == "finished" and "missing_checkpoints" not in run["summary"]
        assert sorted(doc["epoch"] for doc in db.parameters.find_docs({"run": run["_id"]})) == [0, 1, 2]
    finally:
        os.kill(info.pid, signal.SIGCONT)
        db.close()
        server.stop()


def test_save_parameters_waits_out_a_server_restart(tmp_path):
    """Saved across a stop/start of the server: no raw AutoReconnect, one complete version, nothing left over."""
    server = LocalServer(tmp_path)
    db = tensorlab.connect(server.start().uri, db="restart", study="o", timeout_s=1.0)
    try:
        server.stop()
        restart = threading.Timer(2.0, server.start)
        restart.start()
        version = db.save_parameters([np.arange(100_000, dtype=np.float32)], {"kind": "across"})
        restart.join()
        saved = db.find_all_parameters({"tags.kind": "across"})
        assert len(saved) == 1 and np.array_equal(saved[0][0], np.arange(100_000, dtype=np.float32))
        assert db.parameters.find_docs({})[0]["_id"] == version and db.fsck(repair=False).clean
    finally:
        db.close()
        server.stop()


def test_seed_style_fit_generator(tdb):
    tdb.import_data(X, Y, {"split": "train"})
    model = tensorlab.Model(_mlp(), db=tdb)
    stream = tdb.data_generator({"tags.split": "train"}, batch_size=64, epochs=None, shuffle=True, seed=0)
    history = model.fit_generator(stream, tensorlab.dblogger(tdb, model), 64, 3)
    stream.close()
    assert history.history["accuracy"][-1] > 0.8
    assert len(tdb.logs(run=model.name, kind="train")) == 3 * int(np.ceil(len(X) / 64))


def test_devices_and_datasets(tmp_path):
    info = list_devices()
    assert "cpu" in info.devices and info.backend == keras.config.backend()
    with on_device("cpu") as name:
        assert name == "cpu"
    with pytest.raises(InvalidInput, match="device"):
        with on_device("gpu:7"):
            pass
    assert X.shape == (1437, 64) and XV.shape == (360, 64) and X.dtype == np.float32
    with pytest.raises(NotFound, match="load_digits"):
        load_mnist(tmp_path / "mnist.npz")


def test_model_argument_errors(tdb):
    with pytest.raises(InvalidInput, match="keras.Model"):
        tensorlab.Model(42)
    model = tensorlab.Model(_mlp())
    with pytest.raises(InvalidInput, match="No TensorDB"):
        model.fit(X, Y)
    with pytest.raises(InvalidInput, match="Nothing to train on"):
        model.fit(db=tdb)
