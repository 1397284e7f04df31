"""The model layer on another Keras backend: JAX, with TensorFlow made unimportable (as on the GPU machine)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytest.importorskip("jax")

SCRIPT = """
import sys
sys.modules["tensorflow"] = None  # no TensorFlow on this machine
import os, time, keras, tensorlab
from tensorlab.datasets import load_digits
from tensorlab.devices import list_devices
assert keras.config.backend() == "jax" and list_devices().devices[0] == "cpu"
db = tensorlab.connect(os.environ["TENSORLAB_MONGODB_URI"], db=sys.argv[1], study="jax")
(x, y), (xv, yv) = load_digits()
keras.utils.set_random_seed(0)
m = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64, activation="relu"),
                      keras.layers.Dense(10, activation="softmax")])
m.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
model = tensorlab.Model(m, db=db)
history = model.fit(x, y, validation_data=(xv, yv), epochs=4, batch_size=64, run_name="jax-run", monitor="val_accuracy")
run = db.run_store.resolve("jax-run")
assert run["status"] == "finished" and run["backend"] == "jax", run
best = tensorlab.Model.from_db(db, {"_id": model.architecture_id}, params="best")
assert abs(best.evaluate(xv, yv)["accuracy"] - max(history.history["val_accuracy"])) < 1e-6
handle = tensorlab.train_in_background(tensorlab.Model(m, db=db), db=db, x=x, y=y, epochs=500, run_name="jax-bg")
time.sleep(2)
handle.stop()
assert handle.wait(120) and handle.status == "stopped", handle
print("jax ok", round(max(history.history["val_accuracy"]), 3))
"""


def test_training_layer_runs_on_jax_without_tensorflow(mongo_uri, db_name):
    env = {**os.environ, "KERAS_BACKEND": "jax", "TENSORLAB_MONGODB_URI": mongo_uri}
    result = subprocess.run([sys.executable, "-c", SCRIPT, db_name], env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "jax ok" in result.stdout
