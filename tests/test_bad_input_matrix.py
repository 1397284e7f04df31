"""Every public entry point x every kind of bad value (issue #26, "every input judged").

Each call either works and reads back equal, or raises a TensorLab error (a UsageError in magics; exit 2, one
`tensorlab: error:` line and no traceback in the CLI) that names the argument; and after every refusal the
study is byte-for-byte what it was: every document of every collection (GridFS and payload_files included)
and the bytes of every payload file. One study is prepared per module and shared by all cases.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import subprocess
import sys
import uuid
from types import SimpleNamespace

import bson
import numpy as np
import pytest
from IPython.core.error import UsageError
from IPython.testing import globalipapp

import tensorlab
from tensorlab import InvalidInput, NotFound, TensorLabError

NAN, INF = float("nan"), float("inf")
SOURCE = "def build_model():\n    raise RuntimeError('never built here')\n"


def _deep(levels: int = 5000) -> dict:
    root = current = {}
    for _ in range(levels):
        current["a"] = {}
        current = current["a"]
    return root


DEEP = _deep()


def fingerprint(db) -> str:
    """Every document of every collection of the database (sorted, BSON-encoded) and every payload file's bytes."""
    db.flush_logs()
    digest = hashlib.sha256()
    for name in sorted(db.db.list_collection_names()):
        digest.update(name.encode())
        for encoded in sorted(bson.encode(doc) for doc in db.db[name].find({})):
            digest.update(encoded)
    files = db.blobs.local_files
    for name in sorted(files.names()) if files is not None else []:
        digest.update(name.encode() + hashlib.sha256(bytes(files.read(name))).digest())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def lab(mongo_uri):
    """A study holding data, an architecture, parameters (one payload file), a run with logs, a held and a queued
    job; every lazily built structure is built, so a refused call has nothing legitimate left to write."""
    name = f"t_matrix_{uuid.uuid4().hex[:8]}"
    db = tensorlab.connect(mongo_uri, db=name, study="matrix")
    rng = np.random.default_rng(0)
    X, y = rng.random((40, 6), dtype=np.float32), rng.integers(0, 3, 40)
    db.import_data(X, y, {"split": "train", "l": [1, 2]})
    db.import_data(X[:10], y[:10], {"split": "valid"})
    db.save_model_architecture(SOURCE, {"kind": "src"}, name="src")
    db.save_parameters([np.zeros(3, np.float32), np.ones((100, 200), np.float32)], {"which": "ref"}, run="r0")
    run = db.run_store.start("r0", hyper_parameters={"lr": 0.1})
    db.current_run = run
    db.train_log(loss=0.5, step=0)
    db.valid_log(val_loss=0.4, step=0)
    held = db.push_job(code=SOURCE, priority=5, tags={"l": 1})
    assert db.pop_job("w", allow_code=True)["_id"] == held
    queued = db.push_job(code=SOURCE, tags={"l": 2})
    db.find_data(), db.data_count({"label": 1}), db.data_count({"tags.split": "train"}), db.runs(), db.jobs.find()
    list(db.data_generator({"tags.split": "valid"}, 8)), db.jobs.recent(), db.logs(run="r0")
    db.find_parameters({"tags.which": "ref"}), db.jobs.find({"tags.l": 1}), db.pop_job("nobody")
    yield SimpleNamespace(db=db, X=X, y=y, run=run, held=held, queued=queued, uri=mongo_uri, name=name)
    db.client.drop_database(name)
    db.close()


def refused(lab, call, match: str, error: type = TensorLabError) -> str:
    before = fingerprint(lab.db)
    with pytest.raises(error, match=match) as caught:
        call(lab)
    assert fingerprint(lab.db) == before, "a refused call changed the study"
    assert len(str(caught.value)) < 800
    return str(caught.value)


# -- values that reach BSON, at every entry point taking a document --------------------------------------------
VALUES = [("int_2**63", 2**63, "64-bit"), ("int_-2**63-1", -(2**63) - 1, "64-bit"),
          ("int_10**400", 10**400, "64-bit"), ("nan", NAN, "non-finite"), ("inf", INF, "non-finite"),
          ("set", {1, 2}, "set"), ("object", object(), "object"),
          ("deep", DEEP, "nested more than 100"), ("date", dt.date(2024, 1, 1), "datetime"),
          ("surrogate", "\ud800", "UTF-8"), ("list_with_big", [1, 2**64], "64-bit")]
KEYS = [("int_key", {1: 2}, "Key 1"), ("dotted_key", {"a.b": 1}, "'a.b'"), ("dollar_key", {"$x": 1}, r"'\$x'"),
        ("nul_key", {"a\x00b": 1}, "NUL")]
DOCUMENT_CALLS = {
    "import_data.tags": lambda lab, d: lab.db.import_data(lab.X[:3], lab.y[:3], d),
    "update_data_tags": lambda lab, d: lab.db.update_data_tags({"tags.split": "train"}, d),
    "save_parameters.tags": lambda lab, d: lab.db.save_parameters([np.zeros(2)], d),
    "save_model_architecture.tags": lambda lab, d: lab.db.save_model_architecture(SOURCE, d),
    "run_store.start.hyper_parameters": lambda lab, d: lab.db.run_store.start("bad", hyper_parameters=d),
    "run_store.start.tags": lambda lab, d: lab.db.run_store.start("bad", tags=d),
    "run_store.finish.summary": lambda lab, d: lab.db.run_store.finish(lab.run, summary=d),
    "push_job.hyper_parameters": lambda lab, d: lab.db.push_job(code=SOURCE, hyper_parameters=d),
    "push_job.tags": lambda lab, d: lab.db.push_job(code=SOURCE, tags=d),
    "jobs.complete.result": lambda lab, d: lab.db.jobs.complete(lab.held, "w", result=d),
}
STORED_FLAGGED = {"save_parameters.tags", "run_store.finish.summary", "jobs.complete.result"}  # NaN/inf: flagged
DOCUMENT_CASES = [pytest.param(call, {"k": value}, match, id=f"{call}-{name}") for call in DOCUMENT_CALLS
                  for name, value, match in VALUES if not (call in STORED_FLAGGED and name in ("nan", "inf"))]
DOCUMENT_CASES += [pytest.param(call, value, match, id=f"{call}-{name}") for call in DOCUMENT_CALLS
                   for name, value, match in KEYS]


@pytest.mark.parametrize(("call", "document", "match"), DOCUMENT_CASES)
def test_documents_bson_cannot_store_are_refused(lab, call, document, match):
    refused(lab, lambda lab: DOCUMENT_CALLS[call](lab, document), match)


# -- query operands, at every entry point taking a query ------------------------------------------------------
QUERIES = [("and_str", lambda f: {"$and": "x"}, r"\$and"), ("in_int", lambda f: {f: {"$in": 5}}, r"\$in takes a list"),
           ("size_neg", lambda f: {f: {"$size": -1}}, r"\$size"), ("regex", lambda f: {f: {"$regex": "("}}, "regular"),
           ("int_key", lambda f: {1: 2}, "key 1"), ("deep", lambda f: {f: DEEP}, "nested more than 100"),
           ("nan", lambda f: {f: NAN}, "nan never matches"), ("int_2**63", lambda f: {f: 2**63}, "64-bit"),
           ("set", lambda f: {f: {1, 2}}, "set"), ("top_level_in", lambda f: {"$in": [1]}, r"\$in follows a field"),
           ("exists_str", lambda f: {f: {"$exists": "x"}}, r"\$exists"), ("mod_zero", lambda f: {f: {"$mod": [0, 1]}},
                                                                           r"\$mod"),
           ("or_empty", lambda f: {"$or": []}, r"\$or"), ("options_alone", lambda f: {f: {"$options": "i"}}, "options")]
QUERY_CALLS = {
    "find_data": ("label", lambda lab, q: lab.db.find_data(q)),
    "data_generator": ("label", lambda lab, q: lab.db.data_generator(q, 8)),
    "data_count": ("label", lambda lab, q: lab.db.data_count(q)),
    "update_data_tags": ("label", lambda lab, q: lab.db.update_data_tags(q, {"x": 1})),
    "delete_data": ("label", lambda lab, q: lab.db.delete_data(q)),
    "find_parameters": ("tags.which", lambda lab, q: lab.db.find_parameters(q)),
    "runs": ("name", lambda lab, q: lab.db.runs(q)),
    "jobs.find": ("tags.l", lambda lab, q: lab.db.jobs.find(q)),
    "logs": ("run", lambda lab, q: lab.db.logs(q)),
    "pop_job": ("tags.l", lambda lab, q: lab.db.pop_job("w2", query=q, allow_code=True)),
}


@pytest.mark.parametrize(("call", "query", "match"), [
    pytest.param(call, make(QUERY_CALLS[call][0]), match, id=f"{call}-{name}")
    for call in QUERY_CALLS for name, make, match in QUERIES])
def test_queries_a_server_would_refuse_are_refused_here(lab, call, query, match):
    refused(lab, lambda lab: QUERY_CALLS[call][1](lab, query), match)


# -- numbers, names, kinds and ids ----------------------------------------------------------------------------
ARGUMENTS = {
    "find_data-limit=0": (lambda lab: lab.db.find_data(None, limit=0), "`limit`: 0"),
    "find_data-limit=-1": (lambda lab: lab.db.find_data(None, limit=-1), "`limit`"),
    "find_data-limit=2.5": (lambda lab: lab.db.find_data(None, limit=2.5), "`limit`: 2.5"),
    "find_data-limit=True": (lambda lab: lab.db.find_data(None, limit=True), "`limit`"),
    "data_generator-batch_size=True": (lambda lab: lab.db.data_generator(None, batch_size=True), "`batch_size`"),
    "data_generator-batch_size=2.5": (lambda lab: lab.db.data_generator(None, batch_size=2.5), "`batch_size`"),
    "data_generator-epochs=0": (lambda lab: lab.db.data_generator(None, 8, epochs=0), "`epochs`"),
    "train_log-step=-5": (lambda lab: lab.db.train_log(loss=1.0, step=-5), "`step`: -5"),
    "train_log-step=2**63": (lambda lab: lab.db.train_log(loss=1.0, step=2**63), "`step`"),
    "train_log-step=2.5": (lambda lab: lab.db.train_log(loss=1.0, step=2.5), "`step`"),
    "train_log-step=nan": (lambda lab: lab.db.train_log(loss=1.0, step=NAN), "`step`"),
    "train_log-epoch=-1": (lambda lab: lab.db.train_log(loss=1.0, epoch=-1), "`epoch`"),
    "valid_log-step=-5": (lambda lab: lab.db.valid_log(val_loss=1.0, step=-5), "`step`"),
    "test_log-epoch=2**64": (lambda lab: lab.db.test_log(acc=1.0, epoch=2**64), "`epoch`"),
    "logbook.log-batch=-1": (lambda lab: lab.db.logbook.log("train", {"loss": 1.0}, batch=-1), "`batch`"),
    "train_log-metric_nul": (lambda lab: lab.db.train_log(**{"a\x00b": 1.0}), "NUL"),
    "train_log-metric_10**400": (lambda lab: lab.db.train_log(loss=10**400), "not a number"),
    "train_log-metric_text": (lambda lab: lab.db.train_log(loss="high"), "not a number"),
    "train_log-run_set": (lambda lab: lab.db.train_log(loss=1.0, run={1}), "`run`"),
    "logbook.log-kind_bogus": (lambda lab: lab.db.logbook.log("bogus", {"loss": 1.0}), "kind 'bogus'"),
    "logs-kind_bogus": (lambda lab: lab.db.logs(kind="bogus"), "kind 'bogus'"),
    "logs-run_missing": (lambda lab: lab.db.logs(run="no-such-run"), "no-such-run"),
    "logbook.count-kind_bogus": (lambda lab: lab.db.logbook.count(kind="bogus"), "kind 'bogus'"),
    "pop_job-lease_s=-5": (lambda lab: lab.db.pop_job("w2", lease_s=-5, allow_code=True), "`lease_s`: -5"),
    "pop_job-lease_s=0": (lambda lab: lab.db.pop_job("w2", lease_s=0, allow_code=True), "`lease_s`"),
    "pop_job-lease_s=nan": (lambda lab: lab.db.pop_job("w2", lease_s=NAN, allow_code=True), "`lease_s`: nan"),
    "pop_job-lease_s=inf": (lambda lab: lab.db.pop_job("w2", lease_s=INF, allow_code=True), "`lease_s`"),
    "pop_job-lease_s=True": (lambda lab: lab.db.pop_job("w2", lease_s=True, allow_code=True), "`lease_s`"),
    "pop_job-worker=''": (lambda lab: lab.db.pop_job("", allow_code=True), "worker"),
    "jobs.heartbeat-lease_s=nan": (lambda lab: lab.db.jobs.heartbeat(lab.held, "w", lease_s=NAN), "`lease_s`"),
    "jobs.set_priority-nan": (lambda lab: lab.db.jobs.set_priority(lab.queued, NAN), "`priority`: nan"),
    "jobs.set_priority-inf": (lambda lab: lab.db.jobs.set_priority(lab.queued, INF), "`priority`"),
    "jobs.set_priority-2**63": (lambda lab: lab.db.jobs.set_priority(lab.queued, 2**63), "`priority`"),
    "jobs.set_priority-text": (lambda lab: lab.db.jobs.set_priority(lab.queued, "high"), "`priority`"),
    "jobs.recent-limit=-1": (lambda lab: lab.db.jobs.recent(limit=-1), "`limit`: -1"),
    "jobs.recent-limit=2.5": (lambda lab: lab.db.jobs.recent(limit=2.5), "`limit`"),
    "jobs.recent-status_bogus": (lambda lab: lab.db.jobs.recent(status="bogus"), "status 'bogus'"),
    "jobs.find-status_bogus": (lambda lab: lab.db.jobs.find(status="bogus"), "status 'bogus'"),
    "jobs.complete-result_set": (lambda lab: lab.db.jobs.complete(lab.held, "w", result={1, 2}), "set"),
    "jobs.fail-error_int": (lambda lab: lab.db.jobs.fail(lab.held, "w", error=5), "`error`"),
    "jobs.fail-batch_size=0": (lambda lab: lab.db.jobs.fail(lab.held, "w", "e", batch_size=0), "`batch_size`"),
    "push_job-epochs=2**63": (lambda lab: lab.db.push_job(code=SOURCE, epochs=2**63), "`epochs`"),
    "push_job-epochs=True": (lambda lab: lab.db.push_job(code=SOURCE, epochs=True), "`epochs`"),
    "push_job-priority=nan": (lambda lab: lab.db.push_job(code=SOURCE, priority=NAN), "`priority`"),
    "push_job-priority=10**400": (lambda lab: lab.db.push_job(code=SOURCE, priority=10**400), "`priority`"),
    "push_job-batch_size=2.5": (lambda lab: lab.db.push_job(code=SOURCE, batch_size=2.5), "`batch_size`"),
    "push_job-max_attempts=0": (lambda lab: lab.db.push_job(code=SOURCE, max_attempts=0), "`max_attempts`"),
    "push_job-queue=''": (lambda lab: lab.db.push_job(code=SOURCE, queue=""), "`queue`"),
    "push_job-code=5": (lambda lab: lab.db.push_job("mlp", code=5), "`code`"),
    "push_job-sweep_set": (lambda lab: lab.db.push_job(code=SOURCE, sweep={1}), "set"),
    "push_job-data_in_int": (lambda lab: lab.db.push_job(code=SOURCE, data={"label": {"$in": 5}}), r"\$in"),
    "run_store.start-name=123": (lambda lab: lab.db.run_store.start(123), "123"),
    "run_store.start-name=''": (lambda lab: lab.db.run_store.start(""), "name"),
    "run_store.start-device_set": (lambda lab: lab.db.run_store.start("x", device={1}), "set"),
    "run_store.finish-missing": (lambda lab: lab.db.run_store.finish(bson.ObjectId()), "No run"),
    "run_store.finish-status_bogus": (lambda lab: lab.db.run_store.finish(lab.run, "bogus"), "status 'bogus'"),
    "run_store.finish-error_int": (lambda lab: lab.db.run_store.finish(lab.run, error=5), "`error`"),
    "import_data-labels_mixed": (lambda lab: lab.db.import_data(lab.X[:3], [1, "a", 2.5]), "mixes text and numbers"),
    "import_data-labels_nan": (lambda lab: lab.db.import_data(lab.X[:2], [NAN, 1.0]), r"y\[0\]"),
    "import_data-labels_inf": (lambda lab: lab.db.import_data(lab.X[:2], [1.0, -INF]), r"y\[1\]"),
    "import_data-labels_2**63": (lambda lab: lab.db.import_data(lab.X[:2], np.array([2**63, 1], np.uint64)), "64-bit"),
    "import_data-labels_2**70": (lambda lab: lab.db.import_data(lab.X[:2], [2**70, 1]), "`y`"),
    "save_model_architecture-name=123": (lambda lab: lab.db.save_model_architecture(SOURCE, name=123), "`name`"),
    "save_parameters-epoch=2**63": (lambda lab: lab.db.save_parameters([np.zeros(2)], epoch=2**63), "`epoch`"),
    "save_parameters-step=-1": (lambda lab: lab.db.save_parameters([np.zeros(2)], step=-1), "`step`"),
    "save_parameters-run=2**63": (lambda lab: lab.db.save_parameters([np.zeros(2)], run=2**63), "`run`"),
    "save_parameters-metric_10**400": (lambda lab: lab.db.save_parameters([np.zeros(2)], metrics={"a": 10**400}),
                                       "not a number"),
}
BAD_DATABASE_NAMES = ["x" * 64, "é" * 32, "a/b", "a\\b", "a.b", "a b", 'a"b', "a$b", "a*b", "a<b", "a>b", "a:b",
                      "a|b", "a?b", "a\x00b", "a\x01b", "", 5]
for _name in BAD_DATABASE_NAMES:
    ARGUMENTS[f"connect-db={_name!r}"] = (lambda lab, name=_name: tensorlab.connect(lab.uri, db=name), "database name")


@pytest.mark.parametrize("case", list(ARGUMENTS))
def test_arguments_out_of_range_are_refused(lab, case):
    call, match = ARGUMENTS[case]
    refused(lab, call, match)


def test_refusals_raise_the_documented_classes(lab):
    assert isinstance(refused(lab, lambda lab: lab.db.find_data(None, limit=0), "limit", InvalidInput), str)
    refused(lab, lambda lab: lab.db.run_store.finish(bson.ObjectId()), "to finish", NotFound)


# -- what works, and reads back equal --------------------------------------------------------------------------
def test_datetime_and_numpy_values_read_back_equal(lab):
    when = dt.datetime(2024, 1, 31, 12, 30, tzinfo=dt.timezone.utc)
    lab.db.import_data(lab.X[:2], lab.y[:2], {"t": when, "t64": np.datetime64("2024-01-31T12:30:00.000000000"),
                                              "n": np.int64(7), "f": np.float32(0.5)})
    X, _ = lab.db.find_data({"tags.t": when, "tags.t64": np.datetime64("2024-01-31T12:30"), "tags.n": np.int64(7)})
    np.testing.assert_array_equal(X, lab.X[:2])
    doc = lab.db.collection("samples").find_one({"tags.n": 7})
    assert doc["tags"]["t"].replace(tzinfo=dt.timezone.utc) == when
    assert isinstance(doc["tags"]["t64"], dt.datetime) and doc["tags"]["t64"].replace(tzinfo=dt.timezone.utc) == when
    assert doc["tags"]["n"] == 7 and doc["tags"]["f"] == 0.5
    lab.db.delete_data({"tags.n": 7})


def test_non_finite_results_and_summaries_are_stored_flagged(lab):
    job = lab.db.push_job(code=SOURCE, priority=100)
    assert lab.db.pop_job("w3", allow_code=True)["_id"] == job
    done = lab.db.jobs.complete(job, "w3", result={"loss": NAN, "final": {"acc": 0.5, "val": INF}})
    stored = lab.db.jobs.get(job)
    assert stored["status"] == "done" == done["status"]
    assert stored["result"] == {"loss": None, "final": {"acc": 0.5, "val": None}}
    assert stored["non_finite"] == [{"path": "result.loss", "value": "nan"},
                                    {"path": "result.final.val", "value": "inf"}]
    run = lab.db.run_store.start("flagged")
    lab.db.run_store.finish(run, summary={"loss": NAN})
    doc = lab.db.run_store.resolve(run)
    assert doc["summary"] == {"loss": None} and doc["non_finite"] == [{"path": "summary.loss", "value": "nan"}]


# -- magics ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ip(lab):
    keras = pytest.importorskip("keras")
    shell = globalipapp.start_ipython() or globalipapp.get_ipython()
    shell.run_line_magic("load_ext", "tensorlab")
    shell.run_line_magic("tdb_connect", f"{lab.uri} --db {lab.name} --study matrix")
    shell.user_ns.update(m=keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)]), X=lab.X, Y=lab.y,
                         keras=keras)
    yield shell
    shell.user_ns.pop("_tdb").close()


CELL = "model = m\nmodel"
MAGICS = [
    ("tdb_connect", "--study ''", None, "study"),
    ("tdb_connect", "{uri} --db " + "x" * 64, None, "63 bytes"),
    ("tdb_connect", "{uri} --db a*b", None, "database name"),
    ("tdb_worker", "--max-jobs -1", None, "max_jobs"),
    ("tdb_worker", "--poll -1", None, "poll"),
    ("tdb_worker", "--lease nan", None, "lease"),
    ("tdb_worker", "--idle-exit -1", None, "max_idle_s"),
    ("tdb_train", "--resume no-such-run --x X --y Y", CELL, "no-such-run"),
    ("tdb_train", '--data {"$and":"x"}', CELL, r"\$and"),
    ("tdb_train", "--data label=5 --validation label=9223372036854775808", CELL, "64-bit"),
    ("tdb_train", "--x X --y Y --tag a.b=1", CELL, "a.b"),
    ("tdb_train", "--x X --y Y --tag lr=NaN", CELL, "nan"),
    ("tdb_train", "--x X --y Y --device gpu:7", CELL, "gpu:7"),
    ("tdb_push_job", '--model m --data {"$and":"x"}', None, r"\$and"),
    ("tdb_push_job", "--model m --priority nan", None, "priority"),
    ("tdb_push_job", "--model m --grid lr=", None, "grid"),
    ("tdb_push_job", "--model m --grid lr=0.1,NaN", None, "nan"),
    ("tdb_push_job", "--model m --param a.b=1", None, "a.b"),
    ("tdb_push_job", "--model m --param units=1e400", None, "inf"),
    ("tdb_push_job", "--model m --param units=1e23 --epochs 0", None, "--epochs"),
    ("tdb_push_job", '--architecture {"name":{"$in":1}}', None, r"\$in"),
    ("tdb_push_job", "--model X", None, "Keras model"),
    ("tdb_data", '{"label":{"$in":5}}', None, r"\$in"),
    ("tdb_runs", '{"name":{"$in":5}}', None, r"\$in"),
    ("tdb_jobs", "--status bogus", None, "bogus"),
    ("tdb_import", "X Y --tag n=1e400", None, "inf"),
]


@pytest.mark.parametrize(("magic", "line", "cell", "match"), MAGICS,
                         ids=[f"{magic}:{line[:40]}" for magic, line, _cell, _match in MAGICS])
def test_magics_refuse_before_storing_anything(lab, ip, magic, line, cell, match):
    line = line.replace("{uri}", lab.uri)
    message = refused(lab, lambda lab: ip.run_cell_magic(magic, line, cell) if cell is not None
                      else ip.run_line_magic(magic, line), match, UsageError)
    assert "Traceback" not in message


def test_magics_that_work_apply_their_arguments(lab, ip, monkeypatch):
    ids = ip.run_line_magic("tdb_push_job", "--model m --param units=1e23 --grid lr=0.1,0.2")
    assert sorted(lab.db.jobs.get(i)["hyper_parameters"]["lr"] for i in ids) == [0.1, 0.2]
    assert {lab.db.jobs.get(i)["hyper_parameters"]["units"] for i in ids} == {1e23}
    shown = []
    monkeypatch.setattr("tensorlab.magics.tdb_magics.display", shown.append)
    ip.run_line_magic("tdb_data", "tags.split=valid")
    groups = shown[-1].groups()
    assert list(groups["tags_text"]) == ["split=valid"] and list(groups["samples"]) == [10]


# -- Model.fit: checked before the architecture is saved or a run is opened --------------------------------------
FIT = {
    "run_name=123": {"run_name": 123}, "resume=no-such-run": {"resume": "no-such-run", "run_name": "r9"},
    "device=gpu:7": {"device": "gpu:7"}, "hyper_parameters.a.b": {"hyper_parameters": {"a.b": 1}},
    "hyper_parameters=2**63": {"hyper_parameters": {"n": 2**63}}, "epochs=0": {"epochs": 0},
    "validation_data_in_int": {"validation_data": {"label": {"$in": 5}}}, "batch_size=True": {"batch_size": True},
}


@pytest.mark.parametrize("case", list(FIT))
def test_model_fit_refuses_before_storing(lab, ip, case):
    model = tensorlab.Model(ip.user_ns["m"], name="fit_check", db=lab.db)
    refused(lab, lambda lab: model.fit(lab.X, lab.y, **{"run_name": "fit_check", **FIT[case]}),
            case.split("=")[0].split("_in")[0].split(".")[0])
    assert model.architecture_id is None


# -- the CLI --------------------------------------------------------------------------------------------------
CLI = {
    "worker--max-jobs=-1": ["worker", "--max-jobs", "-1", "--idle-exit", "1"],
    "worker--poll=-1": ["worker", "--poll", "-1", "--idle-exit", "1"],
    "worker--poll=nan": ["worker", "--poll", "nan", "--idle-exit", "1"],
    "worker--lease=-5": ["worker", "--lease", "-5", "--idle-exit", "1"],
    "worker--idle-exit=-1": ["worker", "--idle-exit", "-1", "--max-jobs", "1"],
    "worker--query": ["worker", "--query", '{"$and": "x"}', "--idle-exit", "1"],
}


@pytest.mark.parametrize("case", [*CLI, "worker--db=64", "server-start--home=FILE", "server-status--home=FILE"])
def test_cli_refuses_with_one_line_and_exit_2(lab, tmp_path, case):
    if case.startswith("server"):
        (tmp_path / "file").write_text("not a folder")
        argv = ["server", case.split("-")[1], "--home", str(tmp_path / "file")]
    elif case == "worker--db=64":
        argv = ["worker", "--uri", lab.uri, "--db", "x" * 64, "--idle-exit", "1"]
    else:
        argv = [*CLI[case], "--uri", lab.uri, "--db", lab.name, "--study", "matrix"]
    before = fingerprint(lab.db)
    done = subprocess.run([sys.executable, "-m", "tensorlab.cli", *argv], capture_output=True, text=True, timeout=120)
    assert fingerprint(lab.db) == before
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tensorlab: error: "), done.stderr
