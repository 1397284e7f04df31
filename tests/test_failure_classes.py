"""Failure classes (#18): out-of-memory retries (at half the batch size when allowed), code and data errors
fail at once, and a worker whose jobs keep failing for non-code reasons quarantines itself."""

from __future__ import annotations

import numpy as np
import pytest

import tensorlab
from tensorlab.errors import NotFound
from tensorlab.failure_class import classify

pytest.importorskip("keras")

GREEDY = '''
import keras

class Greedy(keras.layers.Layer):
    """Runs out of memory on batches larger than LIMIT (eager mode: the batch size is known)."""
    def call(self, x):
        if x.shape[0] is not None and x.shape[0] > LIMIT:
            raise MemoryError(f"out of memory for a batch of {x.shape[0]}")
        return x

def build_model():
    return keras.Sequential([keras.Input((8,)), Greedy(), keras.layers.Dense(2, activation="softmax")])
'''


def _data(tdb):
    X = np.random.default_rng(0).normal(size=(128, 8)).astype("float32")
    tdb.import_data(X, (X[:, 0] > 0).astype("int64"), {"split": "train"})


def _push(tdb, limit: int, **job):
    return tdb.push_job(code=GREEDY.replace("LIMIT", str(limit)), data={"tags.split": "train"},
                        hyper_parameters={"run_eagerly": True}, **job)


@pytest.mark.parametrize(("error", "kind"), [
    (MemoryError(), "oom"), (RuntimeError("CUDA error: out of memory"), "oom"),
    (RuntimeError("RESOURCE_EXHAUSTED: OOM when allocating tensor"), "oom"), (NameError("x"), "code"),
    (TypeError("bad"), "code"), (NotFound("no samples"), "data"), (ConnectionError("reset"), "other"),
])
def test_failures_are_classified(error, kind):
    assert classify(error) == kind


def test_an_oom_retries_at_half_the_batch_size_until_it_fits(tdb):
    _data(tdb)
    job_id = _push(tdb, 16, batch_size=64, max_attempts=4, oom_halve_batch=True)
    stats = tensorlab.worker.Worker(tdb, allow_code=True, max_idle_s=0.0, poll_interval_s=0.05, lease_s=120).run()
    job = tdb.jobs.get(job_id)
    assert stats.done == 1 and stats.failed == 2 and job["status"] == "done" and job["batch_size"] == 16
    assert [f["failure_class"] for f in job["failures"]] == ["oom", "oom"]


def test_a_code_error_fails_at_once_with_its_traceback(tdb):
    _data(tdb)
    job_id = tdb.push_job(code="def build_model():\n    return undefined_builder()\n", data={"tags.split": "train"},
                          max_attempts=3)
    stats = tensorlab.worker.Worker(tdb, allow_code=True, max_idle_s=0.0, poll_interval_s=0.05, lease_s=120).run()
    job = tdb.jobs.get(job_id)
    assert stats.failed == 1 and job["status"] == "failed" and job["failure_class"] == "code"
    assert job["attempts_left"] == 0 and len(job["failures"]) == 1  # not retried: it would fail the same way
    assert job["error"].startswith("NameError") and "undefined_builder" in job["traceback"]


def test_a_worker_whose_jobs_keep_running_out_of_memory_quarantines_itself(tdb):
    """W&B #5088: one agent failed 470 of 500 runs on CUDA OOM, burning the queue."""
    _data(tdb)
    jobs = [_push(tdb, 0, max_attempts=5) for _ in range(4)]
    worker = tensorlab.worker.Worker(tdb, allow_code=True, max_idle_s=0.0, poll_interval_s=0.05, lease_s=120,
                                     max_failures_in_a_row=3)
    stats = worker.run()
    assert stats.failed == 3 and stats.quarantined and "oom" in stats.quarantined
    states = [tdb.jobs.get(job) for job in jobs]
    assert all(job["status"] == "queued" for job in states)  # nothing burned: other workers can still run them
    assert sum(job["max_attempts"] - job["attempts_left"] for job in states) == 3
