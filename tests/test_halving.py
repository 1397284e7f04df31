"""Sweeps that learn (#18): successive halving on the queue, 16 configurations, 4 worker processes, one of
them SIGKILLed mid-sweep. Every configuration ends done or pruned, and every rung's decision matches a
recomputation from the runs' logs."""

from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from tensorlab.datasets import load_digits
from tensorlab.halving import CONFIG, RUNG, push_halving
from tensorlab.sweeps import sweep_summary

keras = pytest.importorskip("keras")
(X, Y), (XV, YV) = load_digits()
CODE = """
import keras
def build_model(units=8):
    return keras.Sequential([keras.Input((64,)), keras.layers.Dense(units, activation="relu"),
                             keras.layers.Dense(10, activation="softmax")])
"""


def _workers(mongo_uri, db_name, count, log_dir):
    return [subprocess.Popen([sys.executable, "-m", "tensorlab.cli", "worker", "--uri", mongo_uri, "--db", db_name,
                              "--study", "test", "--allow-code", "--lease", "6", "--poll", "0.2", "--idle-exit", "25"],
                             stdout=open(log_dir / f"worker{i}.log", "w"), stderr=subprocess.STDOUT)
            for i in range(count)]


def test_sixteen_configs_four_workers_one_killed_every_config_done_or_pruned(tdb, mongo_uri, tmp_path):
    tdb.import_data(X[:600], Y[:600], {"split": "train"})
    tdb.import_data(XV[:300], YV[:300], {"split": "valid"})
    sweep = push_halving(tdb, code=CODE, grid_space={"units": [2, 4, 8, 16], "learning_rate": [1e-4, 1e-3, 1e-2, 0.05]},
                         metric="val_accuracy", eta=4, min_epochs=1, data={"tags.split": "train"},
                         validation_data={"tags.split": "valid"}, batch_size=64, max_attempts=3)
    plan = tdb.halving.get(sweep)
    assert plan["rungs"] == 3 and plan["configs"] == 16  # 16 -> 4 -> 1
    workers = _workers(mongo_uri, tdb.db_name, 4, tmp_path)
    victim = workers[0]
    host = socket.gethostname()
    deadline = time.monotonic() + 300
    while not any(job["status"] == "running" and job["worker"] == f"{host}:{victim.pid}"
                  for job in tdb.jobs.find({"sweep": sweep})):
        assert time.monotonic() < deadline and victim.poll() is None, "the first worker never took a job"
        time.sleep(0.05)
    os.kill(victim.pid, signal.SIGKILL)  # its job's lease runs out and another worker trains it again
    for worker in workers[1:]:
        assert worker.wait(600) == 0, (tmp_path / "worker1.log").read_text()[-2000:]
    victim.wait()

    jobs = tdb.jobs.find({"sweep": sweep})
    by_rung = {rung: [j for j in jobs if j["tags"][RUNG] == rung] for rung in range(3)}
    assert [len(by_rung[r]) for r in range(3)] == [16, 4, 1]
    assert not tdb.halving.active()
    last = {}  # each configuration's last job
    for job in sorted(jobs, key=lambda j: j["tags"][RUNG]):
        last[job["tags"][CONFIG]] = job
    states = sorted("pruned" if job.get("pruned") else job["status"] for job in last.values())
    assert states == ["done"] + ["pruned"] * 15
    for rung in (0, 1):  # recompute each decision from the runs' logs
        scores = {}
        for job in by_rung[rung]:
            frame = tdb.logs(run=job["result"]["run"], kind="valid")
            scores[job["tags"][CONFIG]] = float(frame["val_accuracy"].iloc[-1])
        ranked = sorted(scores, key=lambda config: (-scores[config], config))
        expected = set(ranked[: math.ceil(len(ranked) / 4)])
        assert {job["tags"][CONFIG] for job in by_rung[rung + 1]} == expected, rung
    assert any(job["attempts"] > 1 or job.get("claims", 1) > 1 for job in jobs)  # the killed worker's job ran again
    lost = [f for job in jobs for f in job.get("failures") or [] if f["failure_class"] == "lost"]
    assert lost and lost[0]["worker"] == f"{host}:{victim.pid}"  # recorded as lost, with the worker that died
    summary = sweep_summary(tdb, sweep, "val_accuracy")
    assert set(summary["status"]) == {"done", "pruned"} and set(summary["rung"]) == {0, 1, 2}


def test_promotion_is_decided_once_from_stored_results_however_often_it_runs(tdb):
    from tensorlab.halving import promote

    sweep = push_halving(tdb, code=CODE, grid_space={"units": [2, 4, 8, 16]}, metric="val_loss", eta=2,
                         data={"tags.split": "train"})
    for _ in range(4):  # finish rung 0 by hand: val_loss 1/units, so units 16 and 8 are best
        job = tdb.pop_job("hand", allow_code=True)
        tdb.jobs.complete(job, "hand", {"run": None, "final": {"val_loss": 1 / job["hyper_parameters"]["units"]}})
    assert promote(tdb) == 2 and promote(tdb) == 2  # the second pass pushes nothing new
    jobs = tdb.jobs.find({"sweep": sweep})
    promoted = sorted(j["hyper_parameters"]["units"] for j in jobs if j["tags"][RUNG] == 1)
    assert promoted == [8, 16] and len(jobs) == 6
    assert sorted(j["hyper_parameters"]["units"] for j in jobs if j.get("pruned")) == [2, 4]
    assert all(j["epochs"] == 1 and j["warm_start"]["job"] for j in jobs if j["tags"][RUNG] == 1)
