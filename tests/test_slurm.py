"""Workers as a Slurm job array (#33), against a real one-node Slurm cluster (tests/slurm_cluster.py): two
array tasks drain six queued jobs, one task is cancelled mid-job and another worker finishes its job, each job
done exactly once; a task whose time limit nears stops claiming; `tensorlab slurm status` shows the tasks."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from polling import wait_until
from slurm_cluster import SlurmCluster, slurm_installed

from tensorlab.slurm_task import parse_time_left

keras = pytest.importorskip("keras")
pytestmark = pytest.mark.skipif(not slurm_installed(), reason="needs root and Debian's slurmctld, slurmd, munge "
                                                             "(.ci/run installs them)")
EPOCHS = 30  # long enough that task 0 still holds its job when the cancel lands, on a busy machine too
RNG = np.random.default_rng(0)
X = RNG.normal(size=(2000, 32)).astype("float32")
Y = (X[:, 0] > 0).astype("int64")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm")).start()
    yield cluster
    cluster.stop()


def _tensorlab(cluster, workdir: Path, mongo_uri: str, *args: str, env: dict | None = None) -> str:
    env = {**cluster.env, "TENSORLAB_MONGODB_URI": mongo_uri, **(env or {})}
    done = subprocess.run([sys.executable, "-m", "tensorlab.cli", *args], cwd=workdir, capture_output=True,
                          text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _jobs(tdb, count: int, epochs: int) -> list:
    model = keras.Sequential([keras.Input((32,)), keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(2, activation="softmax")], name="slurm_mlp")
    arch = tdb.save_model_architecture(model)
    return [tdb.push_job(arch, data={"tags.split": "train"}, epochs=epochs, batch_size=16, max_attempts=3)
            for _ in range(count)]


def _submit(cluster, workdir, mongo_uri, tdb, *flags: str, env: dict | None = None) -> str:
    out = _tensorlab(cluster, workdir, mongo_uri, "slurm", "submit", "--db", tdb.db_name, "--study", tdb.study,
                     "--idle-exit", "4", "--lease", "6", *flags, env=env)
    return out.split("array job ")[1].split()[0]


def _task_log(workdir: Path, job: str, task: int) -> str:
    path = workdir / "tensorlab-slurm" / f"{job}_{task}.out"
    return path.read_text() if path.exists() else ""


def test_two_array_tasks_drain_the_queue_and_a_cancelled_task_loses_no_job(cluster, tdb, mongo_uri, tmp_path):
    tdb.import_data(X, Y, {"split": "train"})
    ids = _jobs(tdb, 6, epochs=EPOCHS)
    job = _submit(cluster, tmp_path, mongo_uri, tdb, "--workers", "2", "--concurrent", "2", "--time", "10")

    def task0_mid_job() -> bool:  # a job of task 0 past its first epoch
        return any(doc["status"] == "running" and str(doc.get("worker", "")).startswith(f"slurm-{job}_0@")
                   and ((doc.get("progress") or {}).get("epoch") or 0) >= 1 for doc in map(tdb.jobs.get, ids))

    wait_until(task0_mid_job, timeout=240, interval=0.2)
    status = _tensorlab(cluster, tmp_path, mongo_uri, "slurm", "status", job, "--db", tdb.db_name,
                        "--study", tdb.study)
    row = next(line for line in status.splitlines() if line.startswith(f"{job}_0 "))
    assert "RUNNING" in row and any(str(i) in row for i in ids), status  # the task beside the job it holds
    _tensorlab(cluster, tmp_path, mongo_uri, "slurm", "cancel", job, "--task", "0")
    wait_until(lambda: all(tdb.jobs.get(i)["status"] == "done" for i in ids), timeout=400, interval=0.5)

    for queued in ids:
        runs = tdb.run_store.find({"job": queued})
        assert len(runs) == 1 and runs[0]["status"] == "finished"  # each job trained into one run, once
        assert tdb.jobs.get(queued)["result"]["run"] == runs[0]["_id"] and runs[0]["summary"]["epochs"] == EPOCHS
    # the job task 0 held when cancelled: its run was started there, and task 1 finished it
    started_by = {i: tdb.run_store.resolve(tdb.jobs.get(i)["result"]["run"])["slurm"] for i in ids}
    taken_over = [i for i in ids if started_by[i]["array_task"] == 0
                  and tdb.jobs.get(i)["worker"].startswith(f"slurm-{job}_1@")]
    assert len(taken_over) == 1 and started_by[taken_over[0]]["array_job"] == job, started_by
    wait_until(lambda: "exits" in _task_log(tmp_path, job, 0), timeout=60, interval=0.5)
    assert "requeued 1" in _task_log(tmp_path, job, 0)  # SIGTERM: checkpoint, requeue, leave


def test_a_task_near_its_time_limit_stops_claiming(cluster, tdb, mongo_uri, tmp_path):
    tdb.import_data(X, Y, {"split": "train"})
    ids = _jobs(tdb, 30, epochs=10)  # more work than 20 s holds on a fast machine (CI drained 12 of 3 epochs)
    started = time.monotonic()
    job = _submit(cluster, tmp_path, mongo_uri, tdb, "--workers", "1", "--time", "1", "--min-time-left", "40")
    wait_until(lambda: "exits" in _task_log(tmp_path, job, 0), timeout=120, interval=0.5)
    log = _task_log(tmp_path, job, 0)
    assert "no new job is claimed" in log and time.monotonic() - started < 60, log  # left before the limit
    states = [tdb.jobs.get(i)["status"] for i in ids]
    assert "queued" in states and "running" not in states and "failed" not in states, states


def test_a_worker_group_of_two_srun_tasks_trains_each_job_once_on_both(cluster, tdb, mongo_uri, tmp_path):
    """`--hosts 1 --tasks-per-host 2`: one worker made of two processes (as two nodes would be), joined through
    the Slurm step by keras.distribution.initialize; each job is claimed once and trained on both devices."""
    pytest.importorskip("jax")
    tdb.import_data(X, Y, {"split": "train"})
    ids = _jobs(tdb, 2, epochs=2)
    jax_cpu = {"KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "JAX_NUM_CPU_DEVICES": "1"}
    job = _submit(cluster, tmp_path, mongo_uri, tdb, "--workers", "1", "--hosts", "1", "--tasks-per-host", "2",
                  env=jax_cpu)
    assert wait_until(lambda: _task_log(tmp_path, job, 0).count(" exits: ") == 2, timeout=300, interval=0.5), \
        _task_log(tmp_path, job, 0)
    log = _task_log(tmp_path, job, 0)
    assert "done 2, failed 0" in log and "done 0, failed 0" in log, log  # the leader completed both jobs
    for queued in ids:
        job_doc = tdb.jobs.get(queued)
        runs = tdb.run_store.find({"job": queued})
        assert job_doc["status"] == "done" and job_doc["attempts"] == 1 and len(runs) == 1, (job_doc, runs)
        assert runs[0]["summary"]["epochs"] == 2 and runs[0]["slurm"]["array_job"] == job
        assert len(runs[0]["provenance"]["hardware"]["devices"]) == 2  # both processes' devices


def test_time_left_parsing_and_the_script_holds_no_password(tmp_path):
    assert parse_time_left("59") == 59 and parse_time_left("4:05") == 245
    assert parse_time_left("1:02:03") == 3723 and parse_time_left("2-01:02:03") == 2 * 86400 + 3723
    assert parse_time_left("UNLIMITED") is None and parse_time_left("INVALID") is None
    env = {**os.environ, "TENSORLAB_MONGODB_URI": "mongodb://lab:s3cret@db.example.com/"}
    done = subprocess.run([sys.executable, "-m", "tensorlab.cli", "slurm", "submit", "--workers", "3", "--concurrent",
                           "2", "--gpus-per-worker", "1", "--time", "2:00:00", "--dry-run"], capture_output=True,
                          text=True, env=env, cwd=tmp_path, check=True)
    assert "#SBATCH --array=0-2%2" in done.stdout and "#SBATCH --gres=gpu:1" in done.stdout
    assert "s3cret" not in done.stdout and "example.com" not in done.stdout
    refused = subprocess.run([sys.executable, "-m", "tensorlab.cli", "slurm", "submit", "--workers", "1", "--uri",
                              "mongodb://lab:s3cret@db.example.com/", "--dry-run"], capture_output=True, text=True,
                             cwd=tmp_path)
    assert refused.returncode == 2 and "holds a password" in refused.stderr and "s3cret" not in refused.stderr
