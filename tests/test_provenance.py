"""Every run knows what made it (#32, first part): its code (the cell, or the script with its git commit and
uncommitted diff), the packages (one document per environment), the seed, the machine and the exact data
imports its queries resolved to; `diff_runs` / `tensorlab diff` name what differs. Against the real server."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from bson import ObjectId
from IPython.testing import globalipapp

import tensorlab
import tensorlab.worker
from tensorlab import InvalidInput
from tensorlab.cli import main as cli_main
from tensorlab.tensordb.data.snapshot import pinned_query

keras = pytest.importorskip("keras")
RNG = np.random.default_rng(3)
X = RNG.normal(size=(96, 5)).astype("float32")
Y = (X[:, 0] > 0).astype("int64")
TRAIN = {"tags.split": "train"}


def _model(units: int = 4) -> tensorlab.Model:
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(units, activation="relu"),
                              keras.layers.Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    return tensorlab.Model(model)


def test_a_fit_records_seed_environment_machine_and_the_imports_its_query_saw(tdb):
    first = tdb.import_data(X[:40], Y[:40], tags={"split": "train"}).import_id
    second = tdb.import_data(X[40:70], Y[40:70], tags={"split": "train"}).import_id
    tdb.import_data(X[70:], Y[70:], tags={"split": "test"})
    _model().fit(db=tdb, data=TRAIN, epochs=1, batch_size=16, run_name="seen")
    _model().fit(db=tdb, data=TRAIN, epochs=1, batch_size=16, run_name="seeded", seed=1234)
    tdb.import_data(X[:10], Y[:10], tags={"split": "train"})  # newer data under the same tag

    run = tdb.run_store.resolve("seen")
    provenance = run["provenance"]
    assert isinstance(provenance["seed"], int)
    assert tdb.run_store.resolve("seeded")["provenance"]["seed"] == 1234
    snapshot = provenance["data"]["data"]
    assert snapshot["samples"] == 70 and snapshot["query"] == '{"tags.split": "train"}'
    assert {(e["import_id"], e["samples"]) for e in snapshot["imports"]} == {(first, 40), (second, 30)}
    assert tdb.data_count(TRAIN) == 80  # the query alone now selects more than the run saw ...
    assert tdb.data_count(pinned_query(TRAIN, snapshot)) == 70  # ... its snapshot selects exactly what it saw
    assert provenance["hardware"]["backend"] == keras.backend.backend() and provenance["hardware"]["cpus"]

    environment = tdb.run_provenance("seen")["environment"]
    assert f"keras=={keras.__version__}" in environment["packages"]
    assert any(p.startswith("numpy==") for p in environment["packages"])
    assert tdb.db["environments"].count_documents({"study": tdb.study}) == 1  # two runs, one environment


def test_a_bad_seed_is_refused_before_anything_is_stored(tdb):
    for seed in (-1, 2.5, "7", True, 2**32):
        with pytest.raises(InvalidInput, match="seed"):
            _model().fit(X, Y, db=tdb, epochs=1, run_name="refused", seed=seed)
    assert tdb.runs().empty and tdb.db["environments"].count_documents({}) == 0


def test_the_tdb_train_cell_is_stored_with_the_run(tdb, mongo_uri, db_name):
    shell = globalipapp.start_ipython() or globalipapp.get_ipython()
    shell.run_line_magic("load_ext", "tensorlab")
    shell.run_line_magic("tdb_connect", f"{mongo_uri} --db {db_name} --study {tdb.study}")
    shell.user_ns.update(X=X, Y=Y, keras=keras)
    cell = ("%%tdb_train --name from_a_cell --epochs 1 --x X --y Y\n"
            "model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(2, activation='softmax')])\n"
            "model.compile('adam', 'sparse_categorical_crossentropy')  # the line a reviewer reads\n")
    result = shell.run_cell(cell, store_history=True)
    assert result.success, result.error_in_exec
    shell.user_ns.pop("_tdb").close()
    code = tdb.run_provenance("from_a_cell")["code"]
    assert code["kind"] == "cell" and code["text"] == cell.rstrip("\n")  # as IPython keeps it


SCRIPT = """
import sys
import numpy as np
import keras
import tensorlab

db = tensorlab.connect(sys.argv[1], db=sys.argv[2], study="scripts")
rng = np.random.default_rng(0)
x, y = rng.normal(size=(32, 3)).astype("float32"), rng.integers(0, 2, 32)
model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
model.compile("sgd", "sparse_categorical_crossentropy")
LR = 0.1
tensorlab.Model(model).fit(x, y, db=db, epochs=1, run_name=sys.argv[3], hyper_parameters={"lr": LR},
                           data_query=None)
db.close()
"""


def _git(folder, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["git", "-C", str(folder), *args], check=True, capture_output=True, text=True,
                          env=env).stdout.strip()


def test_a_script_in_git_stores_commit_and_diff_and_diff_runs_names_the_changes(tmp_path, mongo_uri, db_name):
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(SCRIPT))
    _git(tmp_path, "init", "-q", "-b", "main")
    _git(tmp_path, "add", "train.py")
    _git(tmp_path, "commit", "-q", "-m", "first")
    commit = _git(tmp_path, "rev-parse", "HEAD")

    def train(name: str) -> None:
        subprocess.run([sys.executable, str(script), mongo_uri, db_name, name], check=True, cwd=tmp_path,
                       timeout=300, capture_output=True)

    train("clean")
    script.write_text(script.read_text().replace("LR = 0.1", "LR = 0.01"))  # an uncommitted change
    db = tensorlab.connect(mongo_uri, db=db_name, study="scripts")
    db.import_data(X[:10], Y[:10], tags={"split": "train"})
    train("dirty")
    try:
        clean, dirty = db.run_provenance("clean"), db.run_provenance("dirty")
        assert clean["code"]["kind"] == "script" and clean["code"]["path"] == str(script.resolve())
        assert clean["git"]["commit"] == commit == dirty["git"]["commit"] and clean["git"]["branch"] == "main"
        assert not clean["git"]["dirty"] and clean["git"]["diff"] == ""
        assert dirty["git"]["dirty"] and "+LR = 0.01" in dirty["git"]["diff"] and "-LR = 0.1" in dirty["git"]["diff"]

        found = db.diff_runs("clean", "dirty")
        assert found["hyper_parameters"]["changed"]["lr"] == [0.1, 0.01]
        assert "-LR = 0.1\n+LR = 0.01" in found["code"]["source"]
        assert not found["packages"] and not found["same"]
        assert db.diff_runs("clean", "clean")["same"]
    finally:
        db.client.drop_database(db_name)
        db.close()


def test_diff_runs_names_an_added_import_and_the_cli_prints_it(tdb, mongo_uri, db_name, capsys):
    tdb.import_data(X[:40], Y[:40], tags={"split": "train"})
    _model().fit(db=tdb, data=TRAIN, epochs=1, run_name="before", seed=1, hyper_parameters={"units": 4})
    added = tdb.import_data(X[40:60], Y[40:60], tags={"split": "train"}).import_id
    _model(8).fit(db=tdb, data=TRAIN, epochs=1, run_name="after", seed=2, hyper_parameters={"units": 8})
    found = tdb.diff_runs("before", "after")
    assert found["data"]["data"]["added"] == [{"import_id": str(added), "samples": 20}]
    assert found["seed"] == [1, 2] and found["hyper_parameters"]["changed"]["units"] == [4, 8]

    assert cli_main(["diff", "before", "after", "--uri", mongo_uri, "--db", db_name, "--study", tdb.study]) == 0
    out = capsys.readouterr().out
    assert f"data: + import {added} (20 samples)" in out and "units: 4 -> 8" in out and "seed: 1 -> 2" in out


def test_provenance_moves_with_an_export_and_exports_from_before_it_still_import(tdb, tmp_path, mongo_uri):
    import json

    from tensorlab.tensordb.transfer.study_export import MANIFEST, export_study, import_study

    tdb.import_data(X[:30], Y[:30], tags={"split": "train"})
    _model().fit(db=tdb, data=TRAIN, epochs=1, run_name="moved", seed=5)
    export_study(tdb, tmp_path / "new", progress=False)
    export_study(tdb, tmp_path / "old", progress=False)
    old = tmp_path / "old"  # as an export written before environments and sources existed
    manifest = json.loads((old / MANIFEST).read_text())
    for name in ("environments", "sources"):
        (old / f"{name}.bson").unlink()
        manifest["files"].pop(f"{name}.bson")
        manifest["counts"].pop(name, None)
    (old / MANIFEST).write_text(json.dumps(manifest))
    for folder, target_db in ((tmp_path / "new", f"{tdb.db_name}_new"), (old, f"{tdb.db_name}_old")):
        target = tensorlab.connect(mongo_uri, db=target_db, study=tdb.study)
        try:
            assert import_study(folder, target, progress=False).ok
            moved = target.run_provenance("moved")
            assert moved["seed"] == 5 and moved["data"] == tdb.run_provenance("moved")["data"]
            if folder.name == "new":
                assert moved["environment"] == tdb.run_provenance("moved")["environment"]
            else:
                assert moved["environment"] is None  # the old export carried no environments: none invented
        finally:
            target.client.drop_database(target_db)
            target.close()


PLAN_BUILD = '''
import keras

def build_model(units=4):
    return keras.Sequential([keras.Input((5,)), keras.layers.Dense(units, activation="relu"),
                             keras.layers.Dense(2, activation="softmax")], name="staged")
'''


def test_lineage_of_a_three_stage_plan(tdb):
    from tensorlab.plans import push_plan

    imported = tdb.import_data(X, Y, tags={"split": "train"}).import_id
    common = {"code": PLAN_BUILD, "data": TRAIN, "validation_data": TRAIN, "epochs": 2, "max_attempts": 1}
    ids = push_plan(tdb, {
        "pretrain": common,
        "finetune": {**common, "after": ["pretrain"], "warm_start": {"stage": "pretrain", "metric": "val_loss"}},
        "evaluate": {**common, "after": ["finetune"], "epochs": 1},
    })
    tensorlab.worker.Worker(tdb, allow_code=True, max_idle_s=0.0, poll_interval_s=0.05, lease_s=120).run()
    jobs = {stage: tdb.jobs.get(job_id) for stage, job_id in ids.items()}
    assert {job["status"] for job in jobs.values()} == {"done"}
    runs = {stage: job["result"]["run"] for stage, job in jobs.items()}
    warm = jobs["finetune"]["result"]["warm_start"]

    graph = tdb.lineage(runs["finetune"])
    nodes = {node["id"]: node for node in graph["nodes"]}
    edges = {(edge["from"], edge["to"], edge["kind"]) for edge in graph["edges"]}
    assert graph["start"] == f"run:{runs['finetune']}" and graph["complete"]
    job = {stage: f"job:{job_id}" for stage, job_id in ids.items()}
    run = {stage: f"run:{run_id}" for stage, run_id in runs.items()}
    assert (f"import:{imported}", run["pretrain"], "data data") in edges
    assert (job["pretrain"], run["pretrain"], "ran") in edges and (job["finetune"], run["finetune"], "ran") in edges
    assert (job["pretrain"], job["finetune"], "then") in edges and (job["finetune"], job["evaluate"], "then") in edges
    assert (run["pretrain"], f"parameters:{warm}", "saved") in edges
    assert (f"parameters:{warm}", job["finetune"], "warm start") in edges
    assert {nodes[job[stage]]["stage"] for stage in ids} == set(ids) and run["evaluate"] in nodes
    finetuned = [n for n in graph["nodes"] if n["kind"] == "parameters" and n["run"] == str(runs["finetune"])]
    assert len(finetuned) == 2  # one version an epoch
    assert tdb.lineage(warm)["start"] == f"parameters:{warm}"  # from a parameter version too


def _losses(db, run_id) -> np.ndarray:
    frame = db.logs(run=run_id)
    return frame[frame["loss"].notna()]["loss"].to_numpy()


def test_a_rerun_trains_on_the_data_the_run_saw_and_repeats_its_loss_curve(tdb, mongo_uri, db_name, capsys):
    tdb.import_data(X[:64], Y[:64], tags={"split": "train"})
    shell = globalipapp.start_ipython() or globalipapp.get_ipython()
    shell.run_line_magic("load_ext", "tensorlab")
    shell.run_line_magic("tdb_connect", f"{mongo_uri} --db {db_name} --study {tdb.study}")
    shell.user_ns.update(keras=keras)
    cell = ("%%tdb_train --name original --epochs 3 --batch-size 16 --data tags.split=train --seed 7\n"
            "model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(8, activation='relu'),\n"
            "                          keras.layers.Dense(2, activation='softmax')])\n"
            "model.compile(keras.optimizers.Adam(0.01), 'sparse_categorical_crossentropy')\n")
    assert shell.run_cell(cell, store_history=True).success
    shell.user_ns.pop("_tdb").close()
    tdb.import_data(X[64:], Y[64:], tags={"split": "train"})  # newer data under the same tag: not used

    original = tdb.run_store.resolve("original")
    again = tensorlab.rerun(tdb, "original")
    assert again["status"] == "finished" and again["rerun_of"] == original["_id"] and again["name"] == "original-rerun"
    assert again["provenance"]["seed"] == 7 == original["provenance"]["seed"]
    assert again["provenance"]["data"]["data"]["imports"] == original["provenance"]["data"]["data"]["imports"]
    assert again["provenance"]["data"]["data"]["samples"] == 64
    first, second = _losses(tdb, original["_id"]), _losses(tdb, again["_id"])
    assert len(first) == 15 and np.allclose(first, second, rtol=1e-6, atol=1e-7), (first, second)

    assert cli_main(["rerun", "original", "--name", "from-cli", "--uri", mongo_uri, "--db", db_name,
                     "--study", tdb.study]) == 0
    assert "run from-cli" in capsys.readouterr().out
    assert np.allclose(_losses(tdb, tdb.run_store.resolve("from-cli")["_id"]), first, rtol=1e-6, atol=1e-7)

    # as a job for a worker (what the lab's Rerun button queues): the same pins, the same curve
    assert cli_main(["rerun", "original", "--job", "--uri", mongo_uri, "--db", db_name, "--study", tdb.study]) == 0
    job_id = ObjectId(capsys.readouterr().out.strip().rsplit(" ", 1)[-1])
    job = tdb.jobs.get(job_id)
    assert job["seed"] == 7 and job["rerun_of"] == original["_id"] and job["tags"]["rerun_of"] == "original"
    assert tensorlab.worker.Worker(tdb, "rerunner", max_jobs=1, max_idle_s=1).run().done == 1
    by_worker = tdb.run_store.resolve(tdb.jobs.get(job_id)["result"]["run"])
    assert by_worker["rerun_of"] == original["_id"] and by_worker["provenance"]["data"]["data"]["samples"] == 64
    assert np.allclose(_losses(tdb, by_worker["_id"]), first, rtol=1e-6, atol=1e-7)


def test_runs_that_cannot_be_rerun_are_refused_with_the_reason(tdb):
    _model().fit(X, Y, db=tdb, epochs=1, run_name="in-memory")
    with pytest.raises(InvalidInput, match="arrays held in memory"):
        tensorlab.rerun(tdb, "in-memory")
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(X, Y, epochs=1, verbose=0, callbacks=[tensorlab.DBLogger(tdb, "own-fit")])
    with pytest.raises(InvalidInput, match="no seed"):
        tensorlab.rerun(tdb, "own-fit")
    with pytest.raises(InvalidInput, match="arrays held in memory"):
        tensorlab.push_rerun(tdb, "in-memory")
    assert sorted(tdb.runs()["name"]) == ["in-memory", "own-fit"] and tdb.jobs.find() == []  # nothing started
