"""Off the happy path (#13): the seeds' own calls and the cells users really write work, or fail loudly.

Each test reproduces one reported misbehaviour against the real server.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import tensorlab
from tensorlab import InvalidInput, NotFound
from tensorlab.metric_direction import metric_direction

keras = pytest.importorskip("keras")
ROOT = Path(__file__).resolve().parents[1]
SOURCE_ARCHITECTURE = """
import keras

def build_model(units=8):
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(units, activation="relu"),
                              keras.layers.Dense(2, activation="softmax")], name="from_source")
    return model
"""


def _import(tdb, count=256, split="train"):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(count, 8)).astype("float32")
    y = (X[:, 0] > 0).astype("int64")
    tdb.import_data(X, y, {"type": split})
    return X, y


def _compiled(name="seed"):
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2, activation="softmax")], name=name)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_train_log_with_a_dict_logs_its_metrics(tdb):
    """Seeds: db.train_log({'accuracy': ac}) stored the dict as `step` and broke later calls."""
    assert tdb.train_log({"accuracy": 0.5}) is True
    assert tdb.train_log(accuracy=0.75) is True
    assert tdb.train_log({"accuracy": 0.9}, step=10) is True
    frame = tdb.logs(kind="train")
    assert frame["step"].tolist() == [0, 1, 10]
    assert frame["accuracy"].tolist() == [0.5, 0.75, 0.9]


def test_dblogger_in_tensorlayers_argument_order_names_the_run_after_the_model(tdb):
    """DBLogger(db, model) made the model the run name; the run insert failed and rows had run=None."""
    X, y = _import(tdb)
    model = _compiled("ordered")
    model.fit(X, y, epochs=1, batch_size=64, callbacks=[tensorlab.DBLogger(tdb, model)], verbose=0)
    run = tdb.run_store.resolve("ordered")
    assert run["status"] == "finished"
    frame = tdb.logs()
    assert len(frame) > 0 and (frame["run"] == run["_id"]).all()  # no row with run=None
    with pytest.raises(InvalidInput, match="run name"):
        tensorlab.DBLogger(tdb, 42)


def test_fit_generator_uses_the_seeds_batch_size_and_repeats_the_stream(tdb):
    """m.fit_generator(g, dblogger(db, m), 1000, 100) ignored the batch size."""
    _import(tdb, count=250)
    model = tensorlab.Model(_compiled("fg"), db=tdb)
    stream = tdb.data_generator({"tags.type": "train"}, batch_size=32)
    history = model.fit_generator(stream, tensorlab.dblogger(tdb, model), 100, 3)
    assert len(history.history["loss"]) == 3
    run = tdb.run_store.resolve("fg")
    rows = tdb.logs(run=run["_id"], kind="train")
    assert len(rows) == 3 * 3  # ceil(250 / 100) batches an epoch, not ceil(250 / 32)
    assert rows["samples_per_s"].notna().any()


def test_a_generator_that_runs_dry_logs_and_checkpoints_no_empty_epoch(tdb):
    """A dry generator logged an epoch with loss 0.0 and checkpointed it (then it won any min-loss search)."""
    X, y = _import(tdb, count=64)
    batches = ((X[i:i + 32], y[i:i + 32]) for i in range(0, 64, 32))  # two batches, then nothing
    model = tensorlab.Model(_compiled("dry"), db=tdb)
    with pytest.warns(RuntimeWarning, match="received no batches"):
        model.fit_generator(batches, tensorlab.dblogger(tdb, model), 32, 3, steps_per_epoch=2)
    run = tdb.run_store.resolve("dry")
    epochs = tdb.logs(run=run["_id"], kind="valid")["epoch"].tolist()
    assert epochs[0] == 0 and 1 not in epochs  # epoch 1 got no batch (Keras may refill epoch 2 from its peek)
    assert 1 not in [doc["epoch"] for doc in tdb.parameters.find_docs({"run": run["_id"]})]
    assert 0.0 not in tdb.logs(run=run["_id"], kind="valid")["loss"].tolist()


def test_seed_queries_on_bare_tag_names_raise_naming_the_tags_field(tdb):
    """{'type': 'train'} matched nothing: find_data NotFound, data_generator 0 samples, delete_parameters 0."""
    _import(tdb)
    with pytest.raises(InvalidInput, match=r"tags\.type"):
        tdb.find_data({"type": "train"})
    with pytest.raises(InvalidInput, match=r"tags\.type"):
        tdb.data_generator({"type": "train"})
    with pytest.raises(InvalidInput, match=r"tags\.type"):
        tdb.data_count({"$or": [{"type": "train"}, {"tags.type": "valid"}]})
    tdb.save_parameters([np.ones(3, dtype="float32")], {"acc": 0.5})
    with pytest.raises(InvalidInput, match=r"tags\.acc.*metrics\.acc"):
        tdb.delete_parameters({"acc": 0.5})
    assert len(tdb.find_parameters({"tags.acc": 0.5})) == 1  # nothing was deleted
    assert tdb.delete_parameters({"tags.acc": 0.5}) == 1
    assert tdb.data_count({"tags.type": "train"}) == 256 and tdb.data_count({"label": 1}) > 0


def test_the_seeds_job_calls_work_or_name_their_replacement(tdb):
    with pytest.raises(InvalidInput, match="data=.*batch_size="):
        tdb.push_job({"name": "mlp"}, {"type": "train"}, {"batch": 1000, "epoch": 100})
    with pytest.raises(InvalidInput, match="code=source"):
        tdb.push_job("print('hello')")
    with pytest.raises(InvalidInput, match=r"Model\(keras_model, name='mytes'\)"):
        tensorlab.Model("mytes")
    assert tdb.pop_job() is None  # the seeds' `db.pop_job()`: no worker name needed
    with pytest.raises(AttributeError, match=r"save_parameters\(weights, tags\)"):
        tdb.save_parameter([np.zeros(2)], {"acc": 0.5})
    with pytest.raises(AttributeError, match="load_model_architecture"):
        tdb.find_model_architecutre({"name": "print"})


def test_worker_with_allow_code_trains_a_job_whose_architecture_is_stored_source(tdb):
    """The seeds' flow reported the job 'lost' and left it running until its lease failed it."""
    _import(tdb)
    tdb.save_model_architecture(SOURCE_ARCHITECTURE, name="mlp")
    job_id = tdb.push_job({"name": "mlp"}, data={"tags.type": "train"}, epochs=1, batch_size=64,
                          hyper_parameters={"units": 4})
    assert tdb.jobs.get(job_id)["requires_code"] is True
    plain = tensorlab.worker.Worker(tdb, max_idle_s=0.0, poll_interval_s=0.05)
    assert plain.run().done == 0  # a worker without --allow-code never claims it
    stats = tensorlab.worker.Worker(tdb, allow_code=True, max_jobs=1, lease_s=120).run()
    job = tdb.jobs.get(job_id)
    assert stats.done == 1 and job["status"] == "done" and job["result"]["epochs_trained"] == 1


def test_a_failing_job_stores_its_real_exception_and_traceback(tdb):
    _import(tdb)
    job_id = tdb.push_job(code="def build_model():\n    raise RuntimeError('bad layer config')\n",
                          data={"tags.type": "train"}, max_attempts=1)
    stats = tensorlab.worker.Worker(tdb, allow_code=True, max_jobs=1, lease_s=120).run()
    job = tdb.jobs.get(job_id)
    assert stats.failed == 1 and job["status"] == "failed"
    assert job["error"] == "RuntimeError: bad layer config" and "build_model" in job["traceback"]


def test_fit_on_a_query_that_matches_nothing_says_where_tags_live(tdb):
    _import(tdb)
    model = tensorlab.Model(_compiled("none"), db=tdb)
    with pytest.raises(NotFound, match=r"tags\."):
        model.fit(data={"tags.type": "nothing"}, epochs=1)


@pytest.mark.parametrize(("metric", "direction"), [
    ("val_precision", "max"), ("val_recall", "max"), ("val_auc", "max"), ("eval_accuracy", "max"),
    ("val_loss", "min"), ("val_mean_absolute_error", "min"), ("dense_1_loss", "min"), ("val_accuracy_1", "max"),
])
def test_metric_direction_is_asked_of_the_metric(metric, direction):
    assert metric_direction(metric) == direction


def test_an_unknown_metric_asks_for_mode_and_a_custom_metric_is_asked(tdb):
    with pytest.raises(InvalidInput, match="mode='max'"):
        metric_direction("val_my_score")
    assert metric_direction("val_my_score", "min") == "min"

    class Score(keras.metrics.MeanMetricWrapper):
        def __init__(self):
            super().__init__(fn=keras.metrics.sparse_categorical_accuracy, name="my_score")
            self._direction = "up"

    X, y = _import(tdb)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2, activation="softmax")], name="custom")
    model.compile("adam", "sparse_categorical_crossentropy", metrics=[Score()])
    logger = tensorlab.DBLogger(tdb, "custom", monitor="val_my_score", checkpoint="best")
    model.fit(X, y, validation_data=(X, y), epochs=1, callbacks=[logger], verbose=0)
    assert logger.mode == "max"


def test_precision_checkpoints_keep_the_highest_and_best_parameters_default_to_the_metric(tdb):
    """`"acc" in monitor` minimised val_precision; find_best_parameters(metric='val_loss') returned the worst."""
    X, y = _import(tdb)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2, activation="softmax")], name="prec")
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    logger = tensorlab.DBLogger(tdb, "prec", monitor="val_accuracy", checkpoint="best")
    model.fit(X, y, validation_data=(X, y), epochs=1, callbacks=[logger], verbose=0)
    assert logger.mode == "max" and tensorlab.DBLogger(tdb, "p", monitor="val_precision").mode == "auto"
    weights = [np.ones(2, dtype="float32")]
    for loss in (0.9, 0.2, 0.5):
        tdb.save_parameters(weights, {"trial": loss}, metrics={"val_loss": loss, "val_precision": 1 - loss})
    assert tdb.find_best_parameters(metric="val_loss")["metrics"]["val_loss"] == 0.2
    assert tdb.find_best_parameters(metric="val_precision")["metrics"]["val_precision"] == pytest.approx(0.8)


def test_demo_output_lies_outside_the_tested_notebooks():
    """`make demo` wrote demo_notebooks/executed/..., which `make test` then collected under nbval."""
    demo = subprocess.run(["make", "-n", "demo"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    test = subprocess.run(["make", "-n", "test"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    output_dir = demo.split("--output-dir", 1)[1].split()[0]
    collected = test.split("pytest", 1)[1].split("--nbval")[0].split()
    assert not any(Path(output_dir).resolve().is_relative_to((ROOT / path).resolve()) for path in collected)


def test_importing_the_panels_for_the_job_queue_does_not_import_keras():
    script = ("import sys\nimport tensorlab.widgets as w\nw.JobQueuePanel, w.DataPanel, w.ComparisonPanel\n"
              "print(sorted(m for m in ('keras', 'tensorflow', 'jax', 'torch') if m in sys.modules))")
    with warnings.catch_warnings():
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
