"""Triggers (#18): new data or parameters push a job, exactly once per triggering document, however many
workers fire them at the same time; documents there before the trigger never fire it."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import tensorlab

keras = pytest.importorskip("keras")
BUILD = '''
import keras

def build_model():
    return keras.Sequential([keras.Input((8,)), keras.layers.Dense(2, activation="softmax")], name="triggered")
'''


def _samples(seed: int, count: int = 64):
    X = np.random.default_rng(seed).normal(size=(count, 8)).astype("float32")
    return X, (X[:, 0] > 0).astype("int64")


def test_new_data_fires_exactly_once_per_import_under_four_concurrent_workers(tdb, mongo_uri):
    tdb.import_data(*_samples(0), {"split": "new"})  # there before the trigger: never fires it
    tdb.on_new_data({"tags.split": "new"}, {"code": BUILD, "data": {"import_id": "$trigger"}, "epochs": 1},
                    name="retrain")
    stop, errors = threading.Event(), []

    def firer() -> None:
        db = tensorlab.connect(mongo_uri, db=tdb.db_name, study=tdb.study)
        try:
            while not stop.is_set():
                db.fire_triggers()
            db.fire_triggers()  # once more after the last import
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)
        finally:
            db.close()

    threads = [threading.Thread(target=firer) for _ in range(4)]
    for thread in threads:
        thread.start()
    new = [tdb.import_data(*_samples(seed), {"split": "new" if seed % 3 else "old"}).import_id for seed in range(1, 10)]
    stop.set()
    for thread in threads:
        thread.join(120)
    assert not errors
    expected = {str(import_id) for seed, import_id in zip(range(1, 10), new, strict=True) if seed % 3}
    jobs = tdb.jobs.find({"tags.trigger": "retrain"})
    assert len(jobs) == len(expected) == 6  # one job per matching import: none twice, none missed
    assert {job["tags"]["triggered_by"] for job in jobs} == expected
    assert all(job["tags"]["triggered_by"] in job["data_query"] for job in jobs)  # "$trigger" filled in
    stats = tensorlab.worker.Worker(tdb, allow_code=True, max_jobs=1, lease_s=120).run()
    assert stats.done == 1


def test_new_parameters_fire_a_job_that_starts_from_them(tdb):
    tdb.import_data(*_samples(0), {"split": "train"})
    tdb.on_new_parameters({"tags.kind": "candidate"}, {"code": BUILD, "data": {"tags.split": "train"},
                                                       "warm_start": "$trigger"}, name="evaluate")
    tdb.save_parameters([np.zeros((8, 2), "float32"), np.zeros(2, "float32")], {"kind": "other"})
    version = tdb.save_parameters([np.ones((8, 2), "float32"), np.zeros(2, "float32")], {"kind": "candidate"})
    assert tdb.fire_triggers() == 1 and tdb.fire_triggers() == 0  # the second poll finds nothing new
    (job,) = tdb.jobs.find({"tags.trigger": "evaluate"})
    assert job["warm_start"] == version
    stats = tensorlab.worker.Worker(tdb, allow_code=True, max_jobs=1, lease_s=120).run()
    assert stats.done == 1 and tdb.jobs.get(job["_id"])["result"]["warm_start"] == version
    assert tdb.drop_study()["triggers"] == 1 and tdb.triggers.find() == []  # a dropped study pushes nothing more
