"""Keras as people really write it (#28): each case works as a Keras user expects, or is refused before anything
trains with an error naming the fix. Through the API and through `%%tdb_train`, against the real server."""

from __future__ import annotations

import itertools
import time
import warnings

import numpy as np
import pytest
from IPython.core.error import UsageError
from IPython.testing import globalipapp
from polling import wait_until

import tensorlab
from tensorlab import DBLogger, InvalidInput

keras = pytest.importorskip("keras")
RNG = np.random.default_rng(0)
X = RNG.normal(size=(192, 6)).astype("float32")
Y = (X[:, 0] > 0).astype("int64")


def _mlp(name: str = "mlp", units: int = 2, compile_model: bool = True) -> keras.Model:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(units, activation="softmax")], name=name)
    if compile_model:
        model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


@keras.saving.register_keras_serializable(package="keras_as_written")
class Subclassed(keras.Model):
    def __init__(self, units: int = 8, **kwargs) -> None:
        super().__init__(**kwargs)
        self.units = units
        self.hidden = keras.layers.Dense(units, activation="relu")
        self.out = keras.layers.Dense(2, activation="softmax")

    def call(self, x):
        return self.out(self.hidden(x))

    def get_config(self) -> dict:
        return {**super().get_config(), "units": self.units}


class Wrapper(keras.Model):
    """The GAN/wrapper pattern: a layer passed to __init__, no get_config."""

    def __init__(self, inner, **kwargs) -> None:
        super().__init__(**kwargs)
        self.inner = inner

    def call(self, x):
        return self.inner(x)


@keras.saving.register_keras_serializable(package="keras_as_written")
class RegisteredWrapper(Wrapper):
    def get_config(self) -> dict:
        return {**super().get_config(), "inner": keras.saving.serialize_keras_object(self.inner)}

    @classmethod
    def from_config(cls, config: dict) -> RegisteredWrapper:
        return cls(keras.saving.deserialize_keras_object(config.pop("inner")), **config)


def _compiled(model: keras.Model) -> keras.Model:
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


@pytest.fixture(scope="module")
def ip():
    shell = globalipapp.start_ipython() or globalipapp.get_ipython()
    shell.run_line_magic("load_ext", "tensorlab")
    return shell


@pytest.fixture
def lab(ip, mongo_uri, db_name):
    """The shell, connected to a fresh database, with X, Y, keras and the classes above in the notebook."""
    ip.run_line_magic("tdb_connect", f"{mongo_uri} --db {db_name} --study keras")
    ip.user_ns.update(X=X, Y=Y, keras=keras, np=np, Subclassed=Subclassed, Wrapper=Wrapper,
                      RegisteredWrapper=RegisteredWrapper)
    yield ip
    db = ip.user_ns.pop("_tdb")
    db.flush_logs(timeout_s=5)
    db.client.drop_database(db_name)


# -- 1. a registered subclassed model ----------------------------------------------------------------------
def test_registered_subclassed_model_trains_and_restores_from_db(tdb, lab):
    model = tensorlab.Model(_compiled(Subclassed()), db=tdb)
    model.fit(X, Y, validation_data=(X, Y), epochs=2, run_name="sub", monitor="val_accuracy")
    best = tensorlab.Model.from_db(tdb, {"_id": model.architecture_id}, params="best")  # failed: 0 weights
    assert best.evaluate(X, Y)["accuracy"] == pytest.approx(tdb.run_store.resolve("sub")["summary"]["best"][
        "val_accuracy"], abs=1e-6)
    latest = tensorlab.Model.from_db(tdb, {"_id": model.architecture_id}, params="latest")
    np.testing.assert_allclose(latest.predict(X[:8]), model.predict(X[:8]), rtol=1e-5)

    lab.run_cell_magic("tdb_train", "--name sub_cell --epochs 1 --x X --y Y",
                       "model = Subclassed(units=4)\nmodel.compile('adam', 'sparse_categorical_crossentropy')")
    db = lab.user_ns["_tdb"]
    run = db.run_store.resolve("sub_cell")
    assert run["status"] == "finished" and run["architecture"] and run["build_config"]["input_shape"][-1] == 6
    again = tensorlab.Model.from_db(db, {"_id": run["architecture"]}, params="latest")
    assert again.keras_model.units == 4 and again.predict(X[:2]).shape == (2, 2)


# -- 2. a layer passed to __init__ ---------------------------------------------------------------------------
def test_unserialisable_model_trains_with_a_warning_and_a_registered_one_is_stored(tdb):
    with pytest.warns(RuntimeWarning, match="cannot be stored.*register_keras_serializable.*get_config"):
        tensorlab.Model(_compiled(Wrapper(keras.layers.Dense(2, activation="softmax"))), db=tdb).fit(
            X, Y, epochs=1, run_name="wrapper")
    run = tdb.run_store.resolve("wrapper")
    assert run["status"] == "finished" and run["architecture"] is None
    assert len(tdb.parameters.find_docs({"run": run["_id"]})) == 1  # its weights are stored all the same

    plain = _compiled(RegisteredWrapper(keras.layers.Dense(2, activation="softmax")))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        plain.fit(X, Y, epochs=1, verbose=0, callbacks=[DBLogger(tdb, "plain-fit")])  # a bare fit stores it too
    run = tdb.run_store.resolve("plain-fit")
    assert run["architecture"] is not None
    rebuilt = tensorlab.Model.from_db(tdb, {"_id": run["architecture"]}, params="latest")
    np.testing.assert_allclose(rebuilt.predict(X[:4]), plain.predict(X[:4], verbose=0), rtol=1e-5)


def test_wrapper_model_through_the_magics(lab, capsys):
    lab.run_line_magic("tdb_import", "X Y --tag split=train")
    with pytest.warns(RuntimeWarning, match="cannot be stored"):
        lab.run_cell_magic("tdb_train", "--name wrapped --epochs 1 --data tags.split=train",
                           "model = Wrapper(keras.layers.Dense(2, activation='softmax'))\n"
                           "model.compile('adam', 'sparse_categorical_crossentropy')")
    db = lab.user_ns["_tdb"]
    assert db.run_store.resolve("wrapped")["status"] == "finished"
    lab.user_ns["gan"] = _compiled(Wrapper(keras.layers.Dense(2, activation="softmax")))
    with pytest.raises(UsageError, match="cannot be pushed as a job.*get_config.*Nothing was pushed"):
        lab.run_line_magic("tdb_push_job", "--model gan --data tags.split=train")
    assert db.jobs.find() == []
    lab.user_ns["gan"] = _compiled(RegisteredWrapper(keras.layers.Dense(2, activation="softmax")))
    lab.run_line_magic("tdb_push_job", "--model gan --data tags.split=train --epochs 1")
    lab.run_line_magic("tdb_worker", "--max-jobs 1")
    assert "done 1" in capsys.readouterr().out


# -- 3. an infinite generator ------------------------------------------------------------------------------
def test_infinite_generator_with_steps_per_epoch(lab):
    lab.user_ns["g"] = ((X[i:i + 16], Y[i:i + 16]) for i in itertools.cycle(range(0, 192, 16)))
    lab.run_cell_magic("tdb_train", "--name endless --epochs 2 --x g --steps-per-epoch 3", "model = " +
                       "keras.Sequential([keras.Input((6,)), keras.layers.Dense(2, activation='softmax')])\n"
                       "model.compile('adam', 'sparse_categorical_crossentropy')")
    db = lab.user_ns["_tdb"]
    assert lab.user_ns["_tdb_run"].status == "finished"
    assert len(db.logs(run="endless", kind="train")) == 2 * 3
    with pytest.raises(UsageError, match="--steps-per-epoch must be 1 or more"):
        lab.run_cell_magic("tdb_train", "--x g --steps-per-epoch 0", "model")


# -- 4. Keras' own fit arguments -----------------------------------------------------------------------------
def test_keras_fit_arguments_pass_through(tdb):
    model = tensorlab.Model(_mlp(), db=tdb)
    history = model.fit(X, Y, epochs=3, initial_epoch=1, batch_size=32, validation_split=0.25, shuffle=False,
                        class_weight={0: 1.0, 1: 2.0}, validation_batch_size=16, validation_freq=1,
                        run_name="keras-args")
    assert history.epoch == [1, 2] and "val_loss" in history.history
    run = tdb.run_store.resolve("keras-args")
    assert run["summary"]["epochs"] == 2 and run["summary"]["last_epoch"] == 2  # a count, and the last number
    assert tdb.logs(run="keras-args", kind="valid")["epoch"].tolist() == [1, 2]
    model.fit(X, Y, epochs=1, sample_weight=np.ones(len(X)), validation_data=(X, Y), validation_steps=2,
              run_name="weighted")
    assert tdb.run_store.resolve("weighted")["status"] == "finished"
    with pytest.raises(InvalidInput, match="initial_epoch"):
        model.fit(X, Y, epochs=2, initial_epoch=2)
    tdb.import_data(X, Y, {"split": "train"})
    with pytest.raises(InvalidInput, match="validation_split.*validation_data"):
        model.fit(data={"tags.split": "train"}, validation_split=0.1)


# -- 5. EarlyStopping, ReduceLROnPlateau, --callbacks ---------------------------------------------------------
def test_early_stopping_finishes_with_its_reason_and_the_learning_rate_is_logged(tdb, lab):
    model = _mlp()
    model.compile(keras.optimizers.SGD(0.0), "sparse_categorical_crossentropy")  # never improves
    tensorlab.Model(model, db=tdb).fit(
        X, Y, validation_data=(X, Y), epochs=10, run_name="early",
        callbacks=[keras.callbacks.EarlyStopping(patience=1), keras.callbacks.ReduceLROnPlateau(patience=0)])
    run = tdb.run_store.resolve("early")
    assert run["status"] == "finished" and run["summary"]["stopped_early"] is True
    assert "EarlyStopping" in run["summary"]["stop_reason"] and run["summary"]["stopped_epoch"] == 1
    assert "learning_rate" in tdb.logs(run="early", kind="valid").columns  # DBLogger comes last

    lab.user_ns["stoppers"] = keras.callbacks.EarlyStopping(monitor="loss", patience=0, min_delta=10.0)  # one, no list
    lab.run_cell_magic("tdb_train", "--name early_cell --epochs 5 --x X --y Y --callbacks stoppers",
                       "model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(2, activation='softmax')])\n"
                       "model.compile('adam', 'sparse_categorical_crossentropy')")
    run = lab.user_ns["_tdb"].run_store.resolve("early_cell")
    assert run["status"] == "finished" and run["summary"]["stopped_early"] and run["summary"]["epochs"] == 2


# -- 6. mixed precision --------------------------------------------------------------------------------------
class _Dtypes(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.seen = (self.model.dtype_policy.name, self.model.layers[0].compute_dtype)


def test_mixed_precision_trains_the_model_in_mixed_and_restores_the_policy(tdb):
    model = _mlp()
    before = [w.copy() for w in model.get_weights()]
    seen = _Dtypes()
    tensorlab.Model(model, db=tdb).fit(X, Y, epochs=1, mixed_precision=True, run_name="mixed", callbacks=[seen])
    assert seen.seen == ("mixed_float16", "float16")
    assert keras.config.dtype_policy().name == "float32" and model.dtype_policy.name == "float32"
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))  # trained
    assert tdb.run_store.resolve("mixed")["status"] == "finished"
    with pytest.raises(InvalidInput, match="set_global_policy"):  # cannot be rebuilt under the policy: the fix
        tensorlab.Model(_compiled(Wrapper(keras.layers.Dense(2))), db=tdb).fit(X, Y, mixed_precision=True)
    assert len(tdb.runs()) == 1 and keras.config.dtype_policy().name == "float32"


# -- 7. a bare DBLogger in a fit that raises ---------------------------------------------------------------------
class _Raise(keras.callbacks.Callback):
    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error

    def on_train_batch_end(self, batch, logs=None):
        if batch == 3:
            raise self.error


@pytest.mark.parametrize("error", [KeyboardInterrupt(), RuntimeError("boom")], ids=["ctrl-c", "error"])
def test_a_bare_dblogger_ends_its_run_and_heartbeat_when_fit_raises(tdb, error):
    logger = DBLogger(tdb, "bare")
    with pytest.raises(type(error)):
        _mlp().fit(X, Y, epochs=50, batch_size=8, verbose=0, callbacks=[logger, _Raise(error)])
    assert wait_until(lambda: tdb.run_store.resolve("bare")["status"] != "running", 10)
    run = tdb.run_store.resolve("bare")
    assert run["status"] == "failed" and "KeyboardInterrupt" in run["error"]
    assert wait_until(lambda: not logger._heartbeat.beating, 5)
    beat = tdb.run_store.resolve("bare")["heartbeat"]
    time.sleep(1.0)
    assert tdb.run_store.resolve("bare")["heartbeat"] == beat


# -- 8. text labels --------------------------------------------------------------------------------------------
def test_text_labels_are_encoded_and_given_back(tdb, lab):
    names = np.array(["cat", "dog"])[Y]
    model = tensorlab.Model(_mlp(), db=tdb)
    model.fit(X, names, validation_data=(X, names), epochs=3, run_name="pets", class_weight={"cat": 1.0, "dog": 1.0})
    assert tdb.run_store.resolve("pets")["classes"] == ["cat", "dog"]
    rebuilt = tensorlab.Model.from_db(tdb, {"_id": model.architecture_id}, params="latest")
    assert rebuilt.classes == ["cat", "dog"] and set(rebuilt.predict_labels(X[:20])) <= {"cat", "dog"}
    assert (rebuilt.predict_labels(X) == names).mean() > 0.8
    assert rebuilt.evaluate(X, names)["accuracy"] > 0.8  # text labels are encoded for evaluate too

    lab.user_ns["names"] = names
    lab.run_line_magic("tdb_import", "X names --tag split=pets")
    lab.run_cell_magic("tdb_train", "--name pets_query --epochs 2 --data tags.split=pets", "model = " +
                       "keras.Sequential([keras.Input((6,)), keras.layers.Dense(2, activation='softmax')])\n"
                       "model.compile('adam', 'sparse_categorical_crossentropy')")
    db = lab.user_ns["_tdb"]
    run = db.run_store.resolve("pets_query")
    assert run["status"] == "finished" and run["classes"] == ["cat", "dog"]
    rebuilt = tensorlab.Model.from_db(db, {"_id": run["architecture"]}, params="latest")
    assert set(rebuilt.predict_labels(X[:5])) <= {"cat", "dog"}


# -- 9. imports of different shapes ------------------------------------------------------------------------------
def test_imports_of_different_shapes_are_refused_before_training(tdb, lab):
    small = tdb.import_data(np.zeros((8, 28, 28), "float32"), np.zeros(8, "int64"), {"set": "mixed"})
    large = tdb.import_data(np.zeros((8, 32, 32), "float32"), np.zeros(8, "int64"), {"set": "mixed"})
    tdb.import_data(np.zeros((8, 32, 32), "float32"), np.zeros(8, "int64"), {"set": "other"})
    model = keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(), keras.layers.Dense(2)])
    model.compile("adam", "mse")
    with pytest.raises(InvalidInput, match="2 different shapes") as caught:
        tensorlab.Model(model, db=tdb).fit(data={"tags.set": "mixed"}, epochs=1)
    assert str(small.import_id) in str(caught.value) and str(large.import_id) in str(caught.value)
    assert "28x28" in str(caught.value) and "32x32" in str(caught.value)
    assert tdb.runs().empty and tdb.architectures.collection.count_documents({}) == 0

    lab.user_ns.update(Z=np.zeros((8, 4), "float32"), Z_labels=np.zeros(8, "int64"))
    lab.run_line_magic("tdb_import", "X Y --tag set=mixed")
    lab.run_line_magic("tdb_import", "Z Z_labels --tag set=mixed")
    with pytest.raises(UsageError, match="different shapes"):
        lab.run_cell_magic("tdb_train", "--data tags.set=mixed", "model = keras.Sequential([keras.Input((6,)), "
                           "keras.layers.Dense(2)])\nmodel.compile('adam', 'mse')")
    assert lab.user_ns["_tdb"].runs().empty


# -- 10. variables read after the cell; a pasted keras-io example ----------------------------------------------------
def test_tdb_train_reads_variables_after_the_cell_ran(lab):
    lab.user_ns.update(xx=np.zeros((4, 6), "float32"), yy=np.zeros(4, "int64"))
    lab.run_cell_magic("tdb_train", "--name reassigned --epochs 1 --batch-size 32 --x xx --y yy",
                       "xx, yy = X, Y\nmodel = keras.Sequential([keras.Input((6,)), keras.layers.Dense(2)])\n"
                       "model.compile('adam', keras.losses.SparseCategoricalCrossentropy(from_logits=True))")
    assert len(lab.user_ns["_tdb"].logs(run="reassigned", kind="train")) == len(X) // 32  # the new 192, not 4


MNIST_CONVNET = '''
import numpy as np
import keras
from keras import layers

num_classes = 10
input_shape = (28, 28, 1)

rng = np.random.default_rng(0)  # instead of keras.datasets.mnist.load_data(): same shapes, fewer samples
(x_train, y_train), (x_test, y_test) = ((rng.integers(0, 256, (256, 28, 28), dtype="uint8"), rng.integers(0, 10, 256)),
                                        (rng.integers(0, 256, (64, 28, 28), dtype="uint8"), rng.integers(0, 10, 64)))

x_train = x_train.astype("float32") / 255
x_test = x_test.astype("float32") / 255
x_train = np.expand_dims(x_train, -1)
x_test = np.expand_dims(x_test, -1)
print("x_train shape:", x_train.shape)

y_train = keras.utils.to_categorical(y_train, num_classes)
y_test = keras.utils.to_categorical(y_test, num_classes)

model = keras.Sequential(
    [
        keras.Input(shape=input_shape),
        layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Flatten(),
        layers.Dropout(0.5),
        layers.Dense(num_classes, activation="softmax"),
    ]
)
model.summary()

batch_size = 128
epochs = 1

model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
history = model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, validation_split=0.1)

score = model.evaluate(x_test, y_test, verbose=0)
print("Test loss:", score[0])
'''


def test_a_keras_io_example_pasted_into_a_cell_runs_and_its_fit_is_logged(lab, capsys):
    lab.run_cell_magic("tdb_train", "--name convnet", MNIST_CONVNET)
    assert "Test loss:" in capsys.readouterr().out
    assert type(lab.user_ns["history"]).__name__ == "History" and lab.user_ns["history"].epoch == [0]
    db = lab.user_ns["_tdb"]
    run = db.run_store.resolve("convnet")
    assert run["status"] == "finished" and lab.user_ns["_tdb_run"].run_id == run["_id"]
    assert set(db.logs(run="convnet", kind="valid").columns) >= {"val_accuracy", "val_loss"}  # validation_split
    assert len(db.logs(run="convnet", kind="train")) == 2  # 230 samples at 128 a batch
    lab.run_cell_magic("tdb_train", "--name convnet_x --x x_train --y y_train", MNIST_CONVNET)  # defined by the cell
    assert db.run_store.resolve("convnet_x")["status"] == "finished"


# -- the rest of #28 ---------------------------------------------------------------------------------------------
def test_a_custom_metric_without_mode_is_refused_before_training(tdb, lab):
    def score(y_true, y_pred):
        return keras.ops.mean(y_pred)

    model = _mlp(compile_model=False)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=[score])
    with pytest.raises(InvalidInput, match="mode='max'.*Nothing was trained"):
        tensorlab.Model(model, db=tdb).fit(X, Y, validation_data=(X, Y), checkpoint="best", monitor="val_score")
    with pytest.raises(InvalidInput, match="mode='max'"):
        model.fit(X, Y, verbose=0, callbacks=[DBLogger(tdb, "bare-best", checkpoint="best", monitor="val_score")])
    assert tdb.runs().empty and tdb.architectures.collection.count_documents({}) == 0
    tensorlab.Model(model, db=tdb).fit(X, Y, validation_data=(X, Y), checkpoint="best", monitor="val_score",
                                       mode="max", run_name="with-mode")
    assert tdb.run_store.resolve("with-mode")["status"] == "finished"
    lab.user_ns["score"] = score
    with pytest.raises(UsageError, match="--mode max"):
        lab.run_cell_magic("tdb_train", "--x X --y Y --checkpoint best --monitor val_score",
                           "model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(2, activation='softmax')])"
                           "\nmodel.compile('adam', 'sparse_categorical_crossentropy', metrics=[score])")


def test_a_stopped_epoch_is_partial_and_resume_trains_it_again(tdb):
    model = tensorlab.Model(_mlp(), db=tdb)
    handle = tensorlab.train_in_background(model, db=tdb, x=X, y=Y, epochs=20, batch_size=2, run_name="cut")
    assert wait_until(lambda: handle.progress.global_step >= 5, 60)
    handle.stop()
    assert handle.wait(60) and handle.status == "stopped"
    run = tdb.run_store.resolve("cut")
    assert run["summary"]["epochs"] == 0 and run["summary"]["partial_epoch"]["epoch"] == 0
    assert 5 <= run["summary"]["partial_epoch"]["batches"] < run["summary"]["partial_epoch"]["of"] == 96
    final = tdb.parameters.find_doc({"run": run["_id"], "tags.final": True})
    assert final["tags"]["partial"] is True and final["epoch"] == 0
    history = tensorlab.Model(_mlp(), db=tdb).fit(X, Y, epochs=2, batch_size=32, run_name="cut", resume=True)
    assert history.epoch == [0, 1]  # epoch 0 was cut short: trained again, not counted as done
    assert tdb.run_store.resolve("cut")["summary"]["epochs"] == 2


def test_the_tensorboard_callback_works(tdb, tmp_path):
    tensorlab.Model(_mlp(), db=tdb).fit(X, Y, epochs=1, run_name="tb",
                                        callbacks=keras.callbacks.TensorBoard(log_dir=str(tmp_path)))
    assert any(tmp_path.rglob("events.out.tfevents.*"))
    assert tdb.run_store.resolve("tb")["status"] == "finished"
