"""Fork from any version (#18): a new run starts from a stored parameter version of another run, its epochs
and steps continue from the branch point, and the parent is left as it was."""

from __future__ import annotations

import numpy as np
import pytest

import tensorlab
from tensorlab import NotFound
from tensorlab.datasets import load_digits

keras = pytest.importorskip("keras")
(X, Y), (XV, YV) = load_digits()


def _mlp(lr=0.01):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")], name="forkable")
    model.compile(keras.optimizers.Adam(lr), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_a_fork_continues_from_the_chosen_epoch_as_a_new_run(tdb):
    tensorlab.Model(_mlp(), db=tdb).fit(X, Y, validation_data=(XV, YV), epochs=3, batch_size=64, run_name="parent")
    parent = tdb.run_store.resolve("parent")
    branch = tdb.parameters.find_doc({"run": parent["_id"], "epoch": 1})
    fork = tensorlab.Model.fork(tdb, "parent", epoch=1, model=_mlp(lr=0.001))  # same architecture, lower lr
    for mine, stored in zip(fork.get_parameters(), tdb.parameters.load(branch), strict=True):
        np.testing.assert_array_equal(mine, stored)
    fork.fit(X, Y, validation_data=(XV, YV), epochs=4, batch_size=64, run_name="child")
    child = tdb.run_store.resolve("child")
    assert child["forked_from"] == {"run": parent["_id"], "run_name": "parent", "parameters": branch["_id"],
                                    "epoch": 1, "step": branch["step"]}
    assert tdb.logs(run="child", kind="valid")["epoch"].tolist() == [2, 3]  # continues after the branch
    assert tdb.logs(run="child", kind="train")["step"].min() == branch["step"] + 1
    assert len(tdb.parameters.find_docs({"run": parent["_id"]})) == 3  # the parent is untouched
    with pytest.raises(NotFound, match=r"saved epochs: \[0, 1, 2\]"):
        tensorlab.Model.fork(tdb, "parent", epoch=9)


def test_tdb_train_fork_in_a_notebook(tdb):
    from IPython.testing import globalipapp

    tensorlab.Model(_mlp(), db=tdb).fit(X, Y, epochs=2, batch_size=64, run_name="base")
    ip = globalipapp.start_ipython() or globalipapp.get_ipython()  # one shell per process, whoever starts it
    ip.run_line_magic("load_ext", "tensorlab")
    ip.user_ns.update({"_tdb": tdb, "X": X, "Y": Y, "build": _mlp})
    ip.run_cell_magic("tdb_train", "--fork base@0 --name tuned --epochs 2 --x X --y Y", "build(lr=0.001)")
    assert ip.user_ns["_tdb_run"].status == "finished"
    tuned = tdb.run_store.resolve("tuned")
    assert tuned["forked_from"]["run_name"] == "base" and tuned["forked_from"]["epoch"] == 0
    assert tdb.logs(run="tuned", kind="valid")["epoch"].tolist() == [1]
    ip.user_ns.pop("_tdb")
