"""The lab extension's HTTP API against a real Jupyter server (pytest-jupyter's `jp_fetch`) and the real database.

Every endpoint: refused without a token, a bad parameter answered 400 naming it, the URI's password never in
an answer; the logs endpoint's cursor returns every row once, across bucket boundaries (BUCKET_ROWS rows a bucket)
and several writers.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tensorlab
from tensorlab.tensordb.logs.log_buckets import BUCKET_ROWS

pytest_plugins = ["pytest_jupyter.jupyter_server"]

STUDY = "test"
PASSWORD = "Sup3rS3cretPW"
ID = "0123456789abcdef01234567"
GETS = ["info", "databases", "runs", f"runs/{ID}", f"runs/{ID}/logs", f"compare?runs={ID}", "jobs", "data",
        "data/samples", f"diff?runs={ID},{ID}", f"lineage?of={ID}"]
POSTS = [f"jobs/{ID}/cancel", f"jobs/{ID}/requeue", f"jobs/{ID}/priority", f"runs/{ID}/rerun"]


@pytest.fixture
def lab_settings(mongo_uri, db_name):
    return {"mongodb_uri": mongo_uri, "db": db_name, "study": STUDY}


@pytest.fixture
def jp_server_config(lab_settings):
    return {"ServerApp": {"jpserver_extensions": {"tensorlab.lab": True}}, "TensorLab": lab_settings}


async def call(jp_fetch, path: str, method: str = "GET", body: dict | None = None, **params):
    """(status, JSON body) of one request, errors included."""
    response = await jp_fetch("tensorlab", "api", *path.split("/"), params=params, method=method,
                              body=None if method == "GET" else json.dumps(body or {}), raise_error=False)
    return response.code, json.loads(response.body or b"null")


async def ok(jp_fetch, path: str, **params):
    code, answer = await call(jp_fetch, path, **params)
    assert code == 200, answer
    return answer


# -- security ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", GETS + POSTS)
async def test_no_token_is_refused(jp_fetch, http_server_client, jp_base_url, path):
    method = "POST" if path in POSTS else "GET"
    response = await http_server_client.fetch(f"{jp_base_url}tensorlab/api/{path}", method=method,
                                              body=b"{}" if method == "POST" else None, raise_error=False)
    assert response.code == 403


class TestPasswordNeverReachesTheBrowser:
    @pytest.fixture
    def lab_settings(self, mongo_uri, db_name):
        secret_uri = mongo_uri.replace("mongodb://", f"mongodb://someone:{PASSWORD}@", 1)
        return {"mongodb_uri": secret_uri, "db": db_name, "study": STUDY}

    async def test_every_answer_is_masked(self, jp_fetch):
        info = await ok(jp_fetch, "info")
        assert "someone:****@" in info["uri"]
        for path in GETS + POSTS:
            path, _, query = path.partition("?")
            params = dict(item.split("=") for item in query.split("&")) if query else {}
            code, answer = await call(jp_fetch, path, method="POST" if path in POSTS else "GET", **params)
            text = json.dumps(answer)
            assert PASSWORD not in text, (path, text)
            assert code in (200, 400, 503), (path, code, answer)


# -- bad parameters ------------------------------------------------------------------------------------------
BAD = [
    ("runs", {"limit": "0"}, "limit"), ("runs", {"limit": "ten"}, "limit"), ("runs", {"offset": "-1"}, "offset"),
    ("runs", {"status": "sleeping"}, "status"), ("runs", {"sort": "colour"}, "sort"),
    ("runs", {"order": "up"}, "order"),
    ("runs", {"filter": "[1]"}, "filter"), ("runs", {"filter": "{bad"}, "filter"),
    ("runs", {"filter": '{"$where": 1}'}, "filter"),
    ("runs", {"db": "a/b"}, "db"), ("runs", {"study": ""}, "study"), ("runs", {"colour": "red"}, "colour"),
    ("runs/xyz", {}, "run"), ("runs/xyz/logs", {}, "run"), (f"runs/{ID}/logs", {"cursor": "garbage!"}, "cursor"),
    (f"runs/{ID}/logs", {"kinds": "training"}, "kinds"), (f"runs/{ID}/logs", {"max_points": "3"}, "max_points"),
    ("compare", {}, "runs"), ("compare", {"runs": "abc"}, "runs"), ("compare", {"runs": ID, "mode": "best"}, "mode"),
    ("jobs", {"status": "sleeping"}, "status"), ("jobs", {"limit": "x"}, "limit"),
    ("data/samples", {"count": "1000"}, "count"), ("data/samples", {"tags": "split"}, "tags"),
    ("databases", {"refresh": "yes"}, "refresh"),
]


@pytest.mark.parametrize(("path", "params", "name"), BAD)
async def test_bad_parameters_get_a_400_naming_them(jp_fetch, path, params, name):
    code, answer = await call(jp_fetch, path, **params)
    assert code == 400, answer
    assert answer["parameter"] == name and f"`{name}`" in answer["message"]


async def test_bad_job_actions(jp_fetch, tdb):
    job = str(tdb.push_job(code="def build(): pass", data={"tags.split": "x"}))
    for body, name in (({}, "priority"), ({"priority": "high"}, "priority"), ({"priority": True}, "priority")):
        code, answer = await call(jp_fetch, f"jobs/{job}/priority", "POST", body)
        assert (code, answer["parameter"]) == (400, name)
    code, answer = await call(jp_fetch, "jobs/nothex/cancel", "POST")
    assert (code, answer["parameter"]) == (400, "job")
    code, _ = await call(jp_fetch, f"jobs/{ID}/cancel", "POST")
    assert code == 404
    response = await jp_fetch("tensorlab", "api", "jobs", job, "cancel", method="POST", body="[1", raise_error=False)
    assert response.code == 400 and json.loads(response.body)["parameter"] == "body"


# -- runs ----------------------------------------------------------------------------------------------------
def _crashed_run(mongo_uri: str, db_name: str) -> str:
    """A run whose process ended without closing it (what a SIGKILL leaves)."""
    code = textwrap.dedent(f"""
        import os, tensorlab
        db = tensorlab.connect({mongo_uri!r}, db={db_name!r}, study={STUDY!r})
        run = db.run_store.start("doomed", hyper_parameters={{"lr": 0.9}})
        db.train_log(loss=1.0, step=0, run=run); db.flush_logs()
        print(run, flush=True)
        os._exit(0)
    """)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


async def test_runs_list_filters_sorts_pages_and_shows_crashed(jp_fetch, tdb, mongo_uri, db_name):
    ids = [str(tdb.run_store.start(f"r{i}", hyper_parameters={"lr": 0.1 * (i + 1)}, tags={"sweep": "s"}))
           for i in range(5)]
    for index, run in enumerate(ids[:3]):
        tdb.run_store.finish(run, "finished", summary={"best": {"val_accuracy": 0.5 + index / 10}})
    crashed = _crashed_run(mongo_uri, db_name)
    page = await ok(jp_fetch, "runs")
    assert len(page["runs"]) == 6 and not page["more"] and [r["name"] for r in page["runs"]][:2] == ["doomed", "r4"]
    assert {r["id"]: r["status"] for r in page["runs"]}[crashed] == "crashed"
    running = await ok(jp_fetch, "runs", status="running")
    assert {r["id"] for r in running["runs"]} == set(ids[3:])
    best = await ok(jp_fetch, "runs", sort="best.val_accuracy", order="desc", limit="2")
    assert [r["name"] for r in best["runs"]] == ["r2", "r1"] and best["more"]
    second = await ok(jp_fetch, "runs", sort="name", order="asc", offset="2", limit="2")
    assert [r["name"] for r in second["runs"]] == ["r1", "r2"] and second["total"] == 6 and second["more"]
    newest = await ok(jp_fetch, "runs", offset="1", limit="2")
    assert [r["name"] for r in newest["runs"]] == ["r4", "r3"] and newest["more"]
    tagged = await ok(jp_fetch, "runs", filter=json.dumps({"hyper_parameters.lr": 0.5}))
    assert [r["name"] for r in tagged["runs"]] == ["r4"] and tagged["runs"][0]["hyper_parameters"] == {"lr": 0.5}


async def test_what_differs_between_two_runs_and_the_lineage_of_one(jp_fetch, tdb):
    first = tdb.run_store.start("narrow", hyper_parameters={"lr": 0.1, "units": 8}, provenance={"seed": 1})
    second = tdb.run_store.start("wide", hyper_parameters={"lr": 0.1, "units": 64}, provenance={"seed": 2})
    version = tdb.save_parameters([np.ones((2, 2), np.float32)], {"epoch": 0}, run=second, epoch=0)
    diff = await ok(jp_fetch, "diff", runs=f"{first},{second}")
    assert diff["hyper_parameters"] == {"changed": {"units": [8, 64]}} and diff["seed"] == [1, 2]
    assert diff["runs"]["a"]["name"] == "narrow" and not diff["same"]
    graph = await ok(jp_fetch, "lineage", of=str(second))
    assert graph["start"] == f"run:{second}" and {n["kind"] for n in graph["nodes"]} == {"run", "parameters"}
    assert {"from": f"run:{second}", "to": f"parameters:{version}", "kind": "saved"} in graph["edges"]
    assert (await ok(jp_fetch, "lineage", of=str(version)))["start"] == f"parameters:{version}"
    for path, bad, parameter in (("diff", {"runs": str(first)}, "runs"), ("lineage", {"of": "nope"}, "of")):
        code, answer = await call(jp_fetch, path, **bad)
        assert code == 400 and answer["parameter"] == parameter, answer


async def test_the_rerun_button_queues_a_job_that_pins_what_the_run_saw(jp_fetch, tdb):
    keras = pytest.importorskip("keras")
    rng = np.random.default_rng(0)
    tdb.import_data(rng.normal(size=(32, 4)).astype("float32"), rng.integers(0, 2, 32), tags={"split": "train"})
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    tensorlab.Model(model, db=tdb).fit(data={"tags.split": "train"}, epochs=1, batch_size=8, seed=3, run_name="base")
    run = tdb.run_store.resolve("base")
    code, answer = await call(jp_fetch, f"runs/{run['_id']}/rerun", method="POST")
    assert code == 201, answer
    job = tdb.jobs.get(answer["job"])
    assert job["status"] == "queued" and job["seed"] == 3 and job["rerun_of"] == run["_id"]
    assert job["epochs"] == 1 and job["batch_size"] == 8 and "import_id" in job["data_query"]  # pinned imports
    bare = tdb.run_store.start("no-provenance")
    code, answer = await call(jp_fetch, f"runs/{bare}/rerun", method="POST")
    assert code == 400 and "no seed" in answer["message"] and len(tdb.jobs.find()) == 1  # refused, nothing queued


async def test_one_run_in_full(jp_fetch, tdb):
    run = tdb.run_store.start("full", hyper_parameters={"lr": 0.01, "units": 64}, device="cpu")
    tdb.run_store.heartbeat(run, system={"cpu_percent": 12.5}, epoch=1, step=20)
    tdb.save_parameters([np.ones((2, 2), np.float32)], {"epoch": 0}, run=run, epoch=0)
    tdb.save_parameters([np.ones((2, 2), np.float32)], {"epoch": 1}, run=run, epoch=1)
    tdb.train_log(loss=0.5, step=1, run=run)
    tdb.valid_log(val_loss=0.7, step=1, epoch=0, run=run)
    tdb.flush_logs()
    detail = await ok(jp_fetch, f"runs/{run}")
    assert detail["run"]["hyper_parameters"] == {"lr": 0.01, "units": 64}
    assert detail["run"]["progress"] == {"epoch": 1, "step": 20} and detail["system"]["cpu_percent"] == 12.5
    assert [v["version"] for v in detail["parameters"]] == [1, 2] and detail["parameters"][1]["epoch"] == 1
    assert {s["kind"] for s in detail["streams"]} == {"train", "valid"}
    code, answer = await call(jp_fetch, f"runs/{ID}")
    assert code == 404 and ID in answer["message"]


# -- logs ----------------------------------------------------------------------------------------------------
async def _drain(jp_fetch, run, cursor, **params):
    """Poll until the server says it gave everything; returns (rows as (kind, writer, step, loss), cursor)."""
    rows = []
    while True:
        answer = await ok(jp_fetch, f"runs/{run}/logs", cursor=cursor, max_points="1000000", **params)
        for stream in answer["streams"]:
            assert not stream["downsampled"]
            losses = stream["metrics"].get("loss") or stream["metrics"].get("val_loss")
            rows += [(stream["kind"], stream["writer"], step, loss)
                     for step, loss in zip(stream["step"], losses, strict=True)]
        cursor = answer["cursor"]
        if answer["complete"]:
            return rows, cursor


async def test_logs_come_once_across_bucket_boundaries_and_writers(jp_fetch, tdb, mongo_uri, db_name):
    run = tdb.run_store.start("writers")
    other = tensorlab.connect(mongo_uri, db=db_name, study=STUDY)  # a second process's writer: its own streams
    seen, cursor, written = [], "", set()
    step = {"a": 0, "b": 0}
    size = BUCKET_ROWS
    for burst in (1, size - 1, 1, size, size // 2 + 237, 0, size // 2 - 237, 1):  # on, before and after boundaries
        for _ in range(burst):
            tdb.train_log(loss=float(step["a"]), step=step["a"], run=run)
            other.train_log(loss=-float(step["b"]), step=step["b"], run=run)
            written |= {("a", step["a"]), ("b", step["b"])}
            step["a"] += 1
            step["b"] += 1
        tdb.flush_logs()
        other.flush_logs()
        rows, cursor = await _drain(jp_fetch, run, cursor)
        seen += rows
    other.close()
    assert len(seen) == len(written) == 2 * (3 * size + 2)
    writers = sorted({writer for _, writer, _, _ in seen})
    assert len(writers) == 2
    by_writer = {w: [(s, v) for _, ww, s, v in seen if ww == w] for w in writers}
    for rows in by_writer.values():
        steps = [s for s, _ in rows]
        assert steps == list(range(3 * size + 2))  # in order, no duplicate, no gap
        assert all(abs(v) == s for s, v in rows)
    rows, _ = await _drain(jp_fetch, run, cursor)
    assert rows == []  # nothing new: nothing sent
    again, _ = await _drain(jp_fetch, run, "")  # a fresh tab: final buckets now come from the server's cache
    assert sorted(again) == sorted(seen)


async def test_first_load_is_downsampled_and_polls_are_exact(jp_fetch, tdb):
    run = tdb.run_store.start("long")
    for step in range(5000):
        tdb.train_log(loss=float(np.sin(step / 50.0)), accuracy=step / 5000, step=step, run=run)
    tdb.valid_log(val_loss=0.25, step=4999, epoch=0, run=run)
    tdb.flush_logs()
    first = await ok(jp_fetch, f"runs/{run}/logs", max_points="400")
    train = next(s for s in first["streams"] if s["kind"] == "train")
    assert train["downsampled"] and train["rows"] == 5000 and len(train["step"]) <= 402
    assert train["step"][0] == 0 and train["step"][-1] == 4999
    assert max(train["metrics"]["loss"]) == pytest.approx(1.0, abs=1e-3)  # the peaks survive
    tdb.train_log(loss=float("nan"), accuracy=1.0, step=5000, run=run)
    tdb.flush_logs()
    more = await ok(jp_fetch, f"runs/{run}/logs", cursor=first["cursor"])
    assert [(s["kind"], s["step"], s["metrics"]["loss"]) for s in more["streams"]] == [("train", [5000], [None])]
    only = await ok(jp_fetch, f"runs/{run}/logs", kinds="valid", metrics="val_loss")
    assert [list(s["metrics"]) for s in only["streams"]] == [["val_loss"]]
    assert first["last"]["valid"]["metrics"] == {"val_loss": 0.25}


# -- comparison, jobs, data, databases -----------------------------------------------------------------------
async def test_comparison_marks_the_best_run(jp_fetch, tdb):
    runs = []
    for value in (0.7, 0.9, 0.8):
        run = tdb.run_store.start(f"c{value}", hyper_parameters={"lr": value / 10})
        tdb.run_store.finish(run, summary={"best": {"val_accuracy": value, "val_loss": 1 - value}})
        runs.append(str(run))
    answer = await ok(jp_fetch, "compare", runs=",".join(runs), metric="val_accuracy")
    assert answer["best"] == runs[1] and answer["mode"] == "max" and answer["hyper_parameters"] == ["lr"]
    answer = await ok(jp_fetch, "compare", runs=",".join(runs), metric="val_loss")
    assert answer["best"] == runs[1] and answer["mode"] == "min"
    code, answer = await call(jp_fetch, "compare", runs=runs[0], metric="val_wobble")
    assert code == 400 and answer["parameter"] == "mode"


async def test_jobs_list_and_actions(jp_fetch, tdb):
    queued = [str(tdb.push_job(code="def build(): pass", data={"tags.split": "x"}, priority=p)) for p in (0, 5)]
    running = tdb.pop_job("worker-1", allow_code=True)
    listing = await ok(jp_fetch, "jobs")
    assert listing["counts"] == {"queued": 1, "running": 1}
    assert listing["jobs"][0]["status"] == "running" and listing["workers"][0]["name"] == "worker-1"
    left = next(j for j in queued if j != str(running["_id"]))
    answer = await ok(jp_fetch, f"jobs/{left}/priority", method="POST", body={"priority": 9})
    assert answer["job"]["priority"] == 9 and tdb.jobs.get(left)["priority"] == 9
    await ok(jp_fetch, f"jobs/{left}/cancel", method="POST")
    assert tdb.jobs.get(left)["status"] == "cancelled"
    code, answer = await call(jp_fetch, f"jobs/{left}/cancel", "POST")
    assert code == 409 and "cancelled" in answer["message"]
    await ok(jp_fetch, f"jobs/{left}/requeue", method="POST")
    assert tdb.jobs.get(left)["status"] == "queued"
    tdb.jobs.fail(running["_id"], "worker-1", "ValueError: bad", "Traceback ...\nValueError: bad", retry=False,
                  failure_class="code")
    failed = await ok(jp_fetch, "jobs", status="failed")
    assert [(j["failure_class"], j["error"]) for j in failed["jobs"]] == [("code", "ValueError: bad")]
    assert "Traceback" in failed["jobs"][0]["traceback"]


async def test_data_summary_and_samples(jp_fetch, tdb):
    rng = np.random.default_rng(0)
    tdb.import_data(rng.random((30, 64), dtype=np.float32), rng.integers(0, 3, 30), tags={"split": "train"})
    tdb.import_data(rng.random((10, 5), dtype=np.float32), np.zeros(10, int), tags={"split": "odd"})
    summary = await ok(jp_fetch, "data")
    assert summary["samples"] == 40 and [g["key"] for g in summary["groups"]] == ["split=odd", "split=train"]
    assert sum(summary["labels"].values()) == 40 and summary["groups"][1]["sample_shape"] == [64]
    images = await ok(jp_fetch, "data/samples", tags=json.dumps({"split": "train"}), count="4")
    assert len(images["samples"]) == 4 and images["samples"][0]["image"]["width"] == 8
    values = await ok(jp_fetch, "data/samples", tags=json.dumps({"split": "odd"}), count="2")
    assert len(values["samples"][0]["values"]) == 5 and values["samples"][0]["label"] == 0


async def test_databases_and_studies(jp_fetch, tdb, db_name):
    tdb.run_store.start("here")
    answer = await ok(jp_fetch, "databases", refresh="1")
    assert db_name in answer["databases"] and answer["studies"] == [STUDY] and "****" not in answer["uri"]
    assert answer["recent_study"] == STUDY
