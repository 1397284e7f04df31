"""One fit on many devices (#33): `distribution="data_parallel"` on 4 JAX CPU devices (JAX_NUM_CPU_DEVICES=4, as
Keras's own CI does) trains with the same logs and checkpoints as one device, and resumes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytest.importorskip("jax")

SCRIPT = """
import sys
sys.modules["tensorflow"] = None  # JAX alone, as on the GPU machine
import os
import numpy as np, keras, tensorlab
assert keras.config.backend() == "jax" and len(keras.distribution.list_devices()) == 4
db = tensorlab.connect(os.environ["TENSORLAB_MONGODB_URI"], db=sys.argv[1], study="dp")
rng = np.random.default_rng(0)
x = rng.normal(size=(512, 8)).astype("float32")
db.import_data(x, (x[:, 0] + x[:, 1] > 0).astype("int64"), {"split": "train"})
TRAIN = {"tags.split": "train"}

class Devices(keras.callbacks.Callback):
    seen = []
    def on_train_batch_end(self, batch, logs=None):
        Devices.seen.append(len(self.model.weights[0].value.sharding.device_set))

def model():
    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                          keras.layers.Dense(2, activation="softmax")])
    m.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return tensorlab.Model(m, db=db)

def losses(name):
    frame = db.logs(run=db.run_store.resolve(name)["_id"])
    rows = frame[frame["loss"].notna()][["step", "loss"]].to_numpy()
    return np.unique(rows, axis=0)  # by step; an epoch's last batch and its epoch row are one

one = model()
one.fit(db=db, data=TRAIN, epochs=2, batch_size=64, run_name="one", seed=1)
four = model()
four.fit(db=db, data=TRAIN, epochs=2, batch_size=64, run_name="four", seed=1, distribution="data_parallel",
         callbacks=[Devices()])
assert set(Devices.seen) == {4}, Devices.seen  # the trained copy's weights lie on all four devices
a, b = losses("one"), losses("four")
assert a.shape == b.shape and (a[:, 0] == b[:, 0]).all() and np.allclose(a[:, 1], b[:, 1], rtol=1e-4), (a, b)
versions = lambda name: db.parameters.find_docs({"run": db.run_store.resolve(name)["_id"]}, sort=[("version", 1)])
assert len(versions("one")) == len(versions("four")) == 2
last = lambda name: db.parameters.load(versions(name)[-1])
for w1, w4 in zip(last("one"), last("four")):
    assert np.allclose(w1, w4, rtol=1e-4, atol=1e-5)
assert np.allclose(four.keras_model.get_weights()[0], last("four")[0])  # copied back into the model

Devices.seen.clear()
four.fit(db=db, data=TRAIN, epochs=4, batch_size=64, run_name="four", resume=True, seed=1,
         distribution="data_parallel", callbacks=[Devices()])
run = db.run_store.resolve("four")
assert run["status"] == "finished" and run["summary"]["epochs"] == 4 and set(Devices.seen) == {4}
steps = losses("four")[:, 0]
assert len(versions("four")) == 4 and list(steps) == list(range(1, 4 * 8 + 1)), steps  # 8 batches an epoch
print("data parallel ok", len(steps))
"""


def test_data_parallel_on_four_jax_devices_logs_checkpoints_and_resumes_as_one(mongo_uri, db_name):
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_NUM_CPU_DEVICES": "4", "TENSORLAB_MONGODB_URI": mongo_uri,
           "JAX_PLATFORMS": "cpu"}
    result = subprocess.run([sys.executable, "-c", SCRIPT, db_name], env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "data parallel ok" in result.stdout


def test_data_parallel_is_refused_before_training_on_a_backend_without_it(tdb):
    import keras

    import tensorlab
    from tensorlab import InvalidInput

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile("sgd", "mse")
    for distribution, reason in (("model_parallel", "Expected None or 'data_parallel'"), ("data_parallel", "JAX")):
        if distribution == "data_parallel" and keras.config.backend() == "jax":
            continue
        with pytest.raises(InvalidInput, match=reason):
            tensorlab.Model(model).fit([[0.0] * 4], [[0.0, 0.0]], db=tdb, distribution=distribution)
    assert tdb.runs().empty
