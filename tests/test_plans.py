"""Training plans (#18): a job runs only after the jobs it names are done, fails at once (naming why) when
one of them fails, and can start from the best parameters an earlier stage trained."""

from __future__ import annotations

import numpy as np
import pytest

import tensorlab
from tensorlab import InvalidInput
from tensorlab.plans import push_plan

keras = pytest.importorskip("keras")
BUILD = '''
import keras

def build_model(units=8):
    return keras.Sequential([keras.Input((8,)), keras.layers.Dense(units, activation="relu"),
                             keras.layers.Dense(2, activation="softmax")], name="staged")
'''
BROKEN = "def build_model():\n    raise RuntimeError('stage b is broken')\n"


def _data(tdb):
    X = np.random.default_rng(0).normal(size=(256, 8)).astype("float32")
    tdb.import_data(X, (X[:, 0] > 0).astype("int64"), {"split": "train"})


def test_a_three_stage_plan_with_a_failing_stage(tdb):
    _data(tdb)
    common = {"data": {"tags.split": "train"}, "validation_data": {"tags.split": "train"}, "epochs": 2,
              "max_attempts": 1}
    ids = push_plan(tdb, {
        "c": {**common, "code": BUILD, "after": ["b"], "priority": 10},  # high priority, yet it must wait for b
        "a": {**common, "code": BUILD, "priority": 0},
        "b": {**common, "code": BROKEN, "after": ["a"], "priority": 5},
        "d": {**common, "code": BUILD, "after": ["a"], "warm_start": {"stage": "a", "metric": "val_accuracy"}},
    })
    worker = tensorlab.worker.Worker(tdb, allow_code=True, max_idle_s=0.0, poll_interval_s=0.05, lease_s=120)
    stats = worker.run()
    jobs = {name: tdb.jobs.get(job_id) for name, job_id in ids.items()}
    assert stats.jobs[0] == str(ids["a"])  # c and b waited although they outrank a
    assert jobs["a"]["status"] == "done" and jobs["d"]["status"] == "done"
    assert jobs["b"]["status"] == "failed" and "stage b is broken" in jobs["b"]["error"]
    assert jobs["c"]["status"] == "failed" and jobs["c"]["attempts"] == 0  # never ran
    assert jobs["c"]["error"].startswith("DependencyFailed") and str(ids["b"]) in jobs["c"]["error"]
    assert jobs["c"]["failure_class"] == "dependency"
    best_of_a = tdb.find_best_parameters({"run": jobs["a"]["result"]["run"]}, metric="val_accuracy")
    assert jobs["d"]["result"]["warm_start"] == best_of_a["_id"]  # d started from what a trained
    assert {job["tags"]["stage"] for job in jobs.values()} == {"a", "b", "c", "d"}
    panel = tensorlab.widgets.JobQueuePanel(tdb, auto_refresh=False)
    assert ">after<" in panel.table_html.value and str(ids["a"])[-8:] in panel.table_html.value
    panel.close()


def test_plans_refuse_unknown_stages_cycles_and_missing_jobs(tdb):
    with pytest.raises(InvalidInput, match="'nope', which is not a stage"):
        push_plan(tdb, {"a": {"code": BUILD, "after": ["nope"]}})
    with pytest.raises(InvalidInput, match="circle: a -> b -> a"):
        push_plan(tdb, {"a": {"code": BUILD, "after": ["b"]}, "b": {"code": BUILD, "after": ["a"]}})
    with pytest.raises(InvalidInput, match="must list it in `after`"):
        push_plan(tdb, {"a": {"code": BUILD}, "b": {"code": BUILD, "warm_start": {"stage": "a"}}})
    with pytest.raises(InvalidInput, match="do not exist"):
        tdb.push_job(code=BUILD, after=["6b0000000000000000000000"])
    assert tdb.jobs.find() == []  # a refused plan pushes nothing
