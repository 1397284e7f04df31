"""Workers against the real server and real processes: training jobs, failures, code policy, SIGTERM, SIGKILL."""

from __future__ import annotations

import random
import signal
import socket
import subprocess
import sys
import time

import pytest
from polling import wait_until

from tensorlab.datasets import load_digits
from tensorlab.sweeps import grid, push_sweep, sweep_summary
from tensorlab.worker import Worker

keras = pytest.importorskip("keras")
(X, Y), (XV, YV) = load_digits()

CODE = """
import keras
def build_model(units=16):
    return keras.Sequential([keras.Input((64,)), keras.layers.Dense(units, activation="relu"),
                             keras.layers.Dense(10, activation="softmax")])
"""


def _architecture(db):
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")], name="job_mlp")
    return db.save_model_architecture(model, {"family": "mlp"})


def _data(db, n=None):
    db.import_data(X[:n], Y[:n], {"split": "train"})
    db.import_data(XV, YV, {"split": "valid"})


def _worker_process(mongo_uri, db_name, *extra, log=None):
    """A `tensorlab worker` process; output goes to `log` (a file: an undrained pipe would block it)."""
    return subprocess.Popen([sys.executable, "-m", "tensorlab.cli", "worker", "--uri", mongo_uri, "--db", db_name,
                             "--study", "test", *extra], stdout=log or subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)



def test_worker_trains_a_job_into_a_linked_run(tdb):
    _data(tdb)
    arch = _architecture(tdb)
    job = tdb.push_job(arch, data={"tags.split": "train"}, validation_data={"tags.split": "valid"}, epochs=3,
                       batch_size=64, hyper_parameters={"learning_rate": 0.01})
    stats = Worker(tdb, "w-test", max_jobs=1, max_idle_s=1).run()
    assert stats.done == 1
    doc = tdb.jobs.get(job)
    assert doc["status"] == "done" and doc["result"]["final"]["val_accuracy"] > 0.8
    run = tdb.run_store.resolve(doc["result"]["run"])
    assert run["job"] == job and run["status"] == "finished" and run["architecture"] == arch
    assert len(tdb.parameters.find_docs({"run": run["_id"]})) == 3


def test_a_job_that_always_raises_ends_failed_with_its_traceback(tdb):
    _data(tdb, 200)
    job = tdb.push_job(_architecture(tdb), data={"tags.split": "train"}, epochs=1, max_attempts=2,
                       hyper_parameters={"loss": "no_such_loss"})
    stats = Worker(tdb, "w-fail", max_idle_s=1, poll_interval_s=0.2).run()
    doc = tdb.jobs.get(job)
    # a code error (an unknown loss) would fail the same way again: failed at once, not retried (#18)
    assert stats.failed == 1 and doc["status"] == "failed" and doc["attempts"] == 1
    assert doc["failure_class"] == "code" and doc["attempts_left"] == 0
    assert "no_such_loss" in doc["traceback"] and "Traceback" in doc["traceback"]
    assert len(doc["failures"]) == 1


def test_code_jobs_need_allow_code(tdb):
    _data(tdb, 200)
    job = tdb.push_job(code=CODE, data={"tags.split": "train"}, epochs=1, hyper_parameters={"units": 8})
    assert Worker(tdb, "careful", max_idle_s=0.5, poll_interval_s=0.1).run().done == 0
    assert tdb.jobs.get(job)["status"] == "queued" and tdb.jobs.get(job)["attempts"] == 0
    assert Worker(tdb, "trusting", allow_code=True, max_jobs=1, max_idle_s=1).run().done == 1
    run = tdb.run_store.resolve(tdb.jobs.get(job)["result"]["run"])
    assert run["parameter_count"] == 64 * 8 + 8 + 8 * 10 + 10  # build_model received units=8


def test_sweep_summary_sorts_by_the_target_metric(tdb):
    _data(tdb, 400)
    sweep, ids = push_sweep(tdb, _architecture(tdb), grid_space={"learning_rate": [0.0001, 0.03]},
                            data={"tags.split": "train"}, validation_data={"tags.split": "valid"}, epochs=2)
    assert len(ids) == 2 and len(grid({"a": [1, 2], "b": [3, 4, 5]})) == 6
    Worker(tdb, "sweeper", max_jobs=2, max_idle_s=1).run()
    summary = sweep_summary(tdb, sweep, "val_accuracy")
    assert summary["hp.learning_rate"].tolist()[0] == 0.03  # the higher rate learns more in 2 epochs
    assert summary["val_accuracy"].is_monotonic_decreasing


def test_sigterm_mid_job_requeues_checkpoints_and_exits_0(tdb, mongo_uri):
    _data(tdb, 300)
    job = tdb.push_job(_architecture(tdb), data={"tags.split": "train"}, epochs=500, batch_size=16)
    worker = _worker_process(mongo_uri, tdb.db_name, "--lease", "30")
    run_name = f"job-{job}"
    assert wait_until(lambda: tdb.parameters.collection.count_documents({"epoch": {"$gte": 1}}) > 0, 180)
    worker.send_signal(signal.SIGTERM)
    output = worker.communicate(timeout=60)[0]
    assert worker.returncode == 0, output
    doc = tdb.jobs.get(job)
    assert doc["status"] == "queued" and doc["attempts"] == 0 and doc["attempts_left"] == doc["max_attempts"]
    run = tdb.run_store.resolve(run_name)
    assert run["status"] == "stopped"
    assert tdb.parameters.find_doc({"run": run["_id"], "tags.final": True})


KILL_JOBS = 200
MAX_KILLS = 8  # then the workers are left to finish: a busy machine only makes that slower
EPOCHS = 4


def _worker_past_a_checkpoint(db, workers: list) -> int | None:
    """The index of a worker whose running job has stored a checkpoint and is not finished, if one has."""
    by_name = {f"{socket.gethostname()}:{w.pid}": n for n, w in enumerate(workers)}
    for job in db.jobs.collection.find({"status": "running"}, {"worker": 1}):
        runs = db.run_store.find({"job": job["_id"], "status": "running"})
        if job.get("worker") in by_name and runs and db.parameters.collection.count_documents(
                {"run": runs[0]["_id"]}) and not db.parameters.collection.count_documents(
                {"run": runs[0]["_id"], "epoch": EPOCHS - 1}):
            return by_name[job["worker"]]
    return None


@pytest.mark.timeout(900)
def test_sigkilled_workers_lose_nothing_and_jobs_resume_from_checkpoints(tdb, mongo_uri, tmp_path):
    _data(tdb, 128)
    arch = _architecture(tdb)
    ids = [tdb.push_job(arch, data={"tags.split": "train"}, epochs=EPOCHS, batch_size=32, max_attempts=10,
                        hyper_parameters={"run_eagerly": True}) for _ in range(KILL_JOBS)]
    extra = ("--lease", "10", "--poll", "0.2")  # heartbeats every ~3 s; 2 busy cores can delay one a while
    log = open(tmp_path / "workers.log", "w")
    workers = [_worker_process(mongo_uri, tdb.db_name, *extra, log=log) for _ in range(4)]
    rng = random.Random(0)
    kills = 0
    try:
        # odd kills land at a random moment (starting up, claiming, training, finishing); even kills wait for a
        # worker whose job is past its first checkpoint, so some job must resume (a busy machine otherwise can
        # place every random kill before one)
        while kills < MAX_KILLS and tdb.jobs.collection.count_documents({"status": "done"}) < KILL_JOBS:
            if kills % 2:
                victim, deadline = None, time.time() + 120
                while victim is None and time.time() < deadline:
                    victim = _worker_past_a_checkpoint(tdb, workers)
                if victim is None:
                    victim = rng.randrange(len(workers))
            else:
                time.sleep(rng.uniform(4, 8))
                victim = rng.randrange(len(workers))
            workers[victim].kill()  # SIGKILL: no cleanup, the lease must expire
            workers[victim].wait()
            kills += 1
            workers[victim] = _worker_process(mongo_uri, tdb.db_name, *extra, log=log)
        # then the survivors finish the queue, however long a busy machine makes that
        assert wait_until(lambda: tdb.jobs.collection.count_documents({"status": {"$in": ["done", "failed"]}})
                          >= KILL_JOBS, timeout=2400, interval=1.0)
    finally:
        for worker in workers:
            worker.kill()
            worker.wait()
    jobs = {str(j["_id"]): j for j in tdb.jobs.find()}
    assert set(jobs) == {str(i) for i in ids}
    assert all(j["status"] == "done" for j in jobs.values()), [j["status"] for j in jobs.values()]
    done_markers = tdb.collection("job_claims").count_documents({"_id": {"$regex": ":done$"}})
    assert done_markers == KILL_JOBS  # each job completed exactly once
    assert kills >= 3
    retried = [j for j in jobs.values() if j["attempts"] > 1]
    assert retried, "no job was interrupted by a kill"
    resumed = [j for j in retried if j["result"]["initial_epoch"] > 0]
    assert resumed, "interrupted jobs restarted from scratch instead of their checkpoints"
    for job in resumed:  # epoch counts prove it: the resumed attempt trained only the remaining epochs
        assert job["result"]["epochs_trained"] == EPOCHS - job["result"]["initial_epoch"]
        versions = tdb.parameters.find_docs({"run": job["result"]["run"]})
        assert sorted({v["epoch"] for v in versions}) == list(range(EPOCHS))
    log.close()
    print(f"kill test: {KILL_JOBS} jobs, {kills} SIGKILLs, {len(retried)} re-claimed, {len(resumed)} resumed "
          "from checkpoints")


def test_mirrored_strategy_option_trains_a_job(tdb):
    """`--distribute mirrored` builds the model under tf.distribute.MirroredStrategy (here: the CPU device)."""
    if keras.config.backend() != "tensorflow":
        pytest.skip("MirroredStrategy is TensorFlow's")
    _data(tdb, 300)
    job = tdb.push_job(_architecture(tdb), data={"tags.split": "train"}, epochs=2, batch_size=64)
    stats = Worker(tdb, "mirrored", distribute="mirrored", max_jobs=1, max_idle_s=1).run()
    assert stats.done == 1 and tdb.jobs.get(job)["status"] == "done"
