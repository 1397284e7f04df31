"""One job across processes (#33): two JAX processes of one CPU device each, joined by
`keras.distribution.initialize` (gloo collectives, as two hosts would be), train the same model as one process
with two devices: the same loss curve and weights, one run, one row per step and one checkpoint per epoch,
written by process 0 alone; it resumes; a worker group claims each job once, and a SIGTERM to any one process
stops the whole group at the same batch, after which the job resumes from its checkpoint."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest
from polling import wait_until

pytest.importorskip("jax")

FIT = """
import os, sys
sys.modules["tensorflow"] = None  # JAX alone, as on a GPU node
import numpy as np, keras, tensorlab
from tensorlab import multi_host
db_name, study, mode, epochs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
if mode == "group":
    multi_host.initialize()
assert len(keras.distribution.list_devices()) == 2, keras.distribution.list_devices()
db = tensorlab.connect(os.environ["TENSORLAB_MONGODB_URI"], db=db_name, study=study)

def model():
    keras.utils.set_random_seed(multi_host.process_index())  # each process its own weights: the leader's must win
    m = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                          keras.layers.Dense(2, activation="softmax")])
    m.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return tensorlab.Model(m, db=db)

x = np.random.default_rng(0).normal(size=(256, 8)).astype("float32")
y = (x[:, 0] + x[:, 1] > 0).astype("int64")
model().fit(db=db, data={"tags.split": "train"}, epochs=epochs, batch_size=64, run_name=mode, seed=1,
            resume=True, distribution="data_parallel")
labels = np.where(y == 1, "pos", "neg")  # text labels: encoded before each process takes its slice
model().fit(x, labels, epochs=2, batch_size=32, shuffle=False, run_name=mode + "-arrays", seed=1,
            distribution="data_parallel")
if mode == "group":  # refused before anything is stored, on every process alike
    for kwargs, reason in (({"batch_size": 33, "distribution": "data_parallel"}, "cannot be split across 2"),
                           ({"batch_size": 32}, "one of 2 training together")):
        try:
            model().fit(x, y, epochs=1, run_name="refused", **kwargs)
            raise SystemExit(f"accepted {kwargs}")
        except tensorlab.InvalidInput as error:
            assert reason in str(error), error
print("fit ok", multi_host.process_index(), flush=True)
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _env(mongo_uri: str, devices: int, group: tuple[int, int] | None = None) -> dict[str, str]:
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "JAX_NUM_CPU_DEVICES": str(devices),
           "TENSORLAB_MONGODB_URI": mongo_uri}
    if group is not None:
        port, index = group
        env.update(KERAS_DISTRIBUTION_JOB_ADDRESSES=f"127.0.0.1:{port}", KERAS_DISTRIBUTION_NUM_PROCESSES="2",
                   KERAS_DISTRIBUTION_PROCESS_ID=str(index))
    return env


STARTED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _no_process_left_behind():
    """A failed assertion must not leave a group waiting in a collective for ever."""
    yield
    while STARTED:
        process = STARTED.pop()
        if process.poll() is None:
            process.kill()
            process.wait()


def _group(command: list[str], mongo_uri: str) -> list[subprocess.Popen]:
    port = _free_port()
    started = [subprocess.Popen(command, env=_env(mongo_uri, 1, (port, index)), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for index in range(2)]
    STARTED.extend(started)
    return started


def _finish(processes: list[subprocess.Popen], timeout: float = 600) -> list[str]:
    outputs = []
    for process in processes:
        out, err = process.communicate(timeout=timeout)
        assert process.returncode == 0, err[-4000:]
        outputs.append(out)
    return outputs


def _import(tdb) -> None:
    x = np.random.default_rng(0).normal(size=(512, 8)).astype("float32")
    tdb.import_data(x, (x[:, 0] + x[:, 1] > 0).astype("int64"), {"split": "train"})


def _rows(tdb, name: str) -> np.ndarray:
    frame = tdb.logs(run=tdb.run_store.resolve(name)["_id"])
    return frame[frame["loss"].notna()][["step", "loss"]].to_numpy()


def _versions(tdb, name: str) -> list:
    return tdb.parameters.find_docs({"run": tdb.run_store.resolve(name)["_id"]}, sort=[("version", 1)])


def test_two_processes_train_as_one_process_with_two_devices_and_resume(tdb, mongo_uri, db_name):
    _import(tdb)
    fit = [sys.executable, "-c", FIT, db_name, tdb.study]
    done = subprocess.run([*fit, "single", "2"], env=_env(mongo_uri, 2), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    outputs = _finish(_group([*fit, "group", "2"], mongo_uri))
    assert ["fit ok 0" in outputs[0], "fit ok 1" in outputs[1]] == [True, True], outputs
    for name in ("", "-arrays"):
        one, two = _rows(tdb, "single" + name), _rows(tdb, "group" + name)
        steps = np.unique(two[:, 0])
        assert len(steps) == len(np.unique(one[:, 0])) == 16  # 2 epochs x 8 batches
        assert len(two) == len(one)  # one row per step and epoch: only process 0 wrote
        assert np.allclose(np.unique(one, axis=0), np.unique(two, axis=0), rtol=1e-4), (one, two)
        assert len(_versions(tdb, "group" + name)) == len(_versions(tdb, "single" + name)) == 2
        for w1, w2 in zip(tdb.parameters.load(_versions(tdb, "single" + name)[-1]),
                          tdb.parameters.load(_versions(tdb, "group" + name)[-1]), strict=True):
            assert np.allclose(w1, w2, rtol=1e-4, atol=1e-5)
    run = tdb.run_store.resolve("group")
    assert len(run["provenance"]["hardware"]["devices"]) == 2
    assert len(tdb.runs({"name": "refused"})) == 0
    assert len(tdb.runs({"name": {"$regex": "^group"}})) == 2

    _finish(_group([*fit, "group", "4"], mongo_uri))  # resume the query run to 4 epochs
    run = tdb.run_store.resolve("group")
    assert run["status"] == "finished" and run["summary"]["epochs"] == 4
    assert list(np.unique(_rows(tdb, "group")[:, 0])) == list(range(1, 4 * 8 + 1))
    assert len(_versions(tdb, "group")) == 4


def _job(tdb, epochs: int):
    import keras

    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(2, activation="softmax")], name="group_mlp")
    return tdb.push_job(tdb.save_model_architecture(model), data={"tags.split": "train"}, epochs=epochs,
                        batch_size=8, max_attempts=3)


def _worker(tdb, db_name: str, *flags: str) -> list[str]:
    return [sys.executable, "-m", "tensorlab.cli", "worker", "--multi-host", "--db", db_name, "--study", tdb.study,
            "--lease", "10", "--poll", "0.2", *flags]


def test_a_worker_group_claims_each_job_once_and_stops_together_on_one_sigterm(tdb, mongo_uri, db_name):
    _import(tdb)
    quick, long = _job(tdb, 1), _job(tdb, 12)
    group = _group(_worker(tdb, db_name, "--idle-exit", "2"), mongo_uri)
    assert wait_until(lambda: tdb.jobs.get(quick)["status"] == "done", timeout=300), tdb.jobs.get(quick)
    assert wait_until(lambda: len(_versions(tdb, f"job-{long}")) >= 1 if tdb.runs({"name": f"job-{long}"}).size
                      else False, timeout=300)  # the second job is past its first checkpoint
    group[1].send_signal(signal.SIGTERM)  # the follower alone: the leader must stop at the same batch
    outputs = _finish(group)
    job = tdb.jobs.get(long)
    assert job["status"] == "queued", (job, outputs)
    stopped = tdb.run_store.resolve(f"job-{long}")
    assert stopped["status"] == "stopped"
    epochs_before = len(_versions(tdb, f"job-{long}"))
    assert epochs_before >= 1

    _finish(_group(_worker(tdb, db_name, "--idle-exit", "2"), mongo_uri))
    job = tdb.jobs.get(long)
    assert job["status"] == "done" and job["result"]["initial_epoch"] >= 1, job
    run = tdb.run_store.resolve(f"job-{long}")
    assert run["status"] == "finished" and run["summary"]["epochs"] == 12
    steps = _rows(tdb, f"job-{long}")[:, 0]
    steps = np.unique(steps)  # 64 steps an epoch; the epoch cut short by the stop is trained again after it
    assert list(steps) == list(range(1, len(steps) + 1)) and 12 * 64 <= len(steps) < 13 * 64, steps
    assert tdb.jobs.get(quick)["attempts"] == 1 and len(tdb.runs({"name": f"job-{quick}"})) == 1


def test_slurm_groups_render_as_srun_tasks_over_nodes():
    from tensorlab.slurm_submit import ArraySpec, render_script

    script = render_script(ArraySpec(workers=2, hosts=4, gpus_per_worker=8, db="lab"))
    assert "#SBATCH --nodes=4" in script and "#SBATCH --ntasks-per-node=1" in script and "--ntasks=1" not in script
    assert "#SBATCH --gres=gpu:8" in script and "#SBATCH --array=0-1" in script
    assert script.rstrip().splitlines()[-1].startswith("exec srun ") and script.rstrip().endswith("--multi-host")
    assert "--multi-host" not in render_script(ArraySpec(workers=2))
    from tensorlab import InvalidInput

    with pytest.raises(InvalidInput, match="--hosts"):
        render_script(ArraySpec(workers=1, hosts=0))


def test_batches_the_processes_cannot_split_are_refused_except_a_pass_tail(monkeypatch):
    """30-row batches on 4 processes would drop 2 rows of every batch: refused at the first one. The shorter
    last batch of a pass loses its remainder (under 4 rows), with a warning."""
    from tensorlab import InvalidInput, multi_host

    monkeypatch.setattr(multi_host, "process_count", lambda: 4)
    monkeypatch.setattr(multi_host, "process_index", lambda: 1)
    uneven = ((np.arange(30), np.arange(30)) for _ in range(3))
    with pytest.raises(InvalidInput, match="30 rows cannot be split across 4 processes"):
        next(multi_host.local_batches(uneven))
    passes = [({"a": np.arange(32), "b": np.arange(32)}, np.arange(32)), (np.arange(10),), (np.arange(32),)]
    sliced = multi_host.local_batches(iter(passes))
    assert next(sliced)[0]["a"].tolist() == list(range(8, 16))
    with pytest.warns(RuntimeWarning, match="10 rows; 2 of them are left out"):
        assert next(sliced)[0].tolist() == [2, 3]
    assert next(sliced)[0].tolist() == list(range(8, 16))
    with pytest.raises(InvalidInput, match="34 rows"):  # larger than every batch before: not a tail
        list(multi_host.local_batches(iter([(np.arange(32),), (np.arange(34),)])))
