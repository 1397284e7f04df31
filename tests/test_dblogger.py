"""DBLogger in a plain `model.fit`: run document, logs equal to History, parameter versions, best model."""

from __future__ import annotations

import numpy as np
import pytest

from tensorlab.keras_weights import apply_weights

keras = pytest.importorskip("keras")


def _digits():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(X))
    X, y = (X[order] / 16).astype("float32"), y[order]
    return (X[:1400], y[:1400]), (X[1400:], y[1400:])


def _mlp():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")], name="digits_mlp")
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_dblogger_records_a_digits_run(tdb):
    from tensorlab import DBLogger

    (X, y), (Xv, yv) = _digits()
    model = _mlp()
    logger = DBLogger(tdb, "digits-mlp", hyper_parameters={"lr": 0.01, "units": 64}, monitor="val_accuracy",
                      data_query={"tags.dataset": "digits"}, batch_size=64)
    history = model.fit(X, y, validation_data=(Xv, yv), epochs=5, batch_size=64, callbacks=[logger], verbose=0)
    assert max(history.history["val_accuracy"]) >= 0.9
    assert logger.errors == 0

    run = tdb.run_store.resolve("digits-mlp")
    assert run["status"] == "finished" and run["parameter_count"] == model.count_params()
    assert run["hyper_parameters"] == {"lr": 0.01, "units": 64} and run["device"]
    assert run["summary"]["best"]["val_accuracy"] == pytest.approx(max(history.history["val_accuracy"]))

    frame = tdb.logs(run="digits-mlp")
    epochs = frame[frame["kind"] == "valid"].sort_values("epoch")
    for name, values in history.history.items():
        assert epochs[name].tolist() == pytest.approx(values, rel=1e-6), name
    batches = frame[frame["kind"] == "train"]
    assert len(batches) == 5 * int(np.ceil(1400 / 64))
    timed = batches[batches["batch"] > 0]  # step time is measured between batch starts within an epoch
    assert (timed["step_time"] > 0).all() and (timed["samples_per_s"] > 0).all()

    versions = tdb.parameters.find_docs({"run": run["_id"]}, sort=[("epoch", 1)])
    assert [v["epoch"] for v in versions] == [0, 1, 2, 3, 4]
    best = tdb.find_best_parameters({"run": run["_id"]}, "val_accuracy")
    fresh = _mlp()
    apply_weights(fresh, tdb.parameters.load(best))
    _, accuracy = fresh.evaluate(Xv, yv, verbose=0)
    assert accuracy == pytest.approx(max(history.history["val_accuracy"]), abs=1e-6)


def test_checkpoint_only_on_improvement_and_every_n_batches(tdb):
    from tensorlab import DBLogger

    (X, y), (Xv, yv) = _digits()
    model = _mlp()
    logger = DBLogger(tdb, "best-only", checkpoint="best", monitor="val_loss", every_n_batches=5)
    history = model.fit(X, y, validation_data=(Xv, yv), epochs=4, batch_size=100, callbacks=[logger], verbose=0)
    losses = history.history["val_loss"]
    improvements = sum(1 for i, v in enumerate(losses) if v < min(losses[:i], default=np.inf))
    run_id = tdb.run_store.resolve("best-only")["_id"]
    assert len(tdb.parameters.find_docs({"run": run_id})) == improvements
    train_rows = tdb.logs(run="best-only", kind="train")
    assert train_rows["step"].tolist() == [5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55]


def test_database_failure_never_crashes_fit(tdb):
    from tensorlab import DBLogger

    (X, y), _ = _digits()
    model = _mlp()
    logger = DBLogger(tdb, "doomed")
    tdb.close()  # every database call now fails
    history = model.fit(X, y, epochs=2, batch_size=200, callbacks=[logger], verbose=0)
    assert len(history.history["loss"]) == 2 and logger.errors > 0


def test_bad_arguments_are_named():
    from tensorlab import DBLogger

    with pytest.raises(ValueError, match="every_n_batches"):
        DBLogger(None, every_n_batches=0)
    with pytest.raises(ValueError, match="checkpoint"):
        DBLogger(None, checkpoint="sometimes")
