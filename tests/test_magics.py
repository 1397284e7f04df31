"""%load_ext tensorlab and the magics in an in-process IPython shell: arguments, errors, and real effects."""

from __future__ import annotations

import numpy as np
import pytest
from IPython.core.error import UsageError
from IPython.testing import globalipapp
from tensorlab.magics.arguments import parse_grid, parse_query

keras = pytest.importorskip("keras")


@pytest.fixture(scope="module")
def ip():
    shell = globalipapp.start_ipython() or globalipapp.get_ipython()  # one shell per process, whoever starts it
    shell.run_line_magic("load_ext", "tensorlab")
    return shell


@pytest.fixture
def connected(ip, mongo_uri, db_name):
    ip.run_line_magic("tdb_connect", f"{mongo_uri} --db {db_name} --study magic")
    yield ip
    db = ip.user_ns.pop("_tdb")
    db.client.drop_database(db_name)


def test_connect_and_status(ip, mongo_uri, db_name, capsys):
    ip.run_line_magic("tdb_connect", f"{mongo_uri} --db {db_name} --study magic")
    assert "study 'magic'" in capsys.readouterr().out
    db = ip.user_ns["_tdb"]
    assert db.study == "magic" and db.db_name == db_name
    ip.run_line_magic("tdb_status", "")
    assert f"database '{db_name}'" in capsys.readouterr().out
    db.client.drop_database(db_name)


def test_password_comes_from_an_environment_variable_and_is_masked(ip, monkeypatch):
    monkeypatch.setenv("TDB_TEST_PW", "pa55word")
    with pytest.raises(UsageError) as caught:
        ip.run_line_magic("tdb_connect", "mongodb://127.0.0.1:1/ --user bob --password-env TDB_TEST_PW")
    assert "pa55word" not in str(caught.value) and "127.0.0.1:1" in str(caught.value)
    with pytest.raises(UsageError, match="not set"):
        ip.run_line_magic("tdb_connect", "--password-env TDB_SURELY_UNSET")


def test_status_before_connect_is_a_usage_error():
    from tensorlab.magics.tdb_magics import TensorLabMagics

    magics = TensorLabMagics(shell=type("Shell", (), {"user_ns": {}, "configurables": []})())
    with pytest.raises(UsageError, match="tdb_connect"):
        magics.tdb_status("")


def test_queries_grids_and_pairs():
    assert parse_query('{"tags.split": "train"}') == {"tags.split": "train"}
    assert parse_query("tags.split=train label=3") == {"tags.split": "train", "label": 3}
    assert parse_grid(["lr=0.1,0.01", "units=32,64"]) == {"lr": [0.1, 0.01], "units": [32, 64]}
    with pytest.raises(UsageError, match="not valid JSON"):
        parse_query("{oops")
    with pytest.raises(UsageError, match="key=v1,v2"):
        parse_grid(["lr"])


def test_import_train_runs_and_errors(connected, capsys):
    ip = connected
    rng = np.random.default_rng(0)
    ip.user_ns["X"] = rng.normal(size=(256, 8)).astype("float32")
    ip.user_ns["Y"] = (ip.user_ns["X"][:, 0] > 0).astype("int64")
    ip.run_line_magic("tdb_import", "X Y --tag split=train")
    assert "imported 256 samples" in capsys.readouterr().out
    cell = ("model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2, activation='softmax')], name='tiny')\n"
            "model.compile('adam', 'sparse_categorical_crossentropy', metrics=['accuracy'])\nmodel")
    ip.user_ns["keras"] = keras
    ip.run_cell_magic("tdb_train", "--name tiny_run --epochs 2 --data tags.split=train", cell)
    handle = ip.user_ns["_tdb_run"]
    assert handle.status == "finished" and "tiny_run" not in ip.user_ns  # only `_tdb_run` is written
    runs = ip.run_line_magic("tdb_runs", "name=tiny_run")
    assert runs.loc[0, "status"] == "finished"
    with pytest.raises(UsageError, match="needs data"):
        ip.run_cell_magic("tdb_train", "--epochs 1", cell)
    with pytest.raises(UsageError, match="no variable named"):
        ip.run_cell_magic("tdb_train", "--x NOPE", cell)
    with pytest.raises(UsageError, match="needs --model"):
        ip.run_line_magic("tdb_push_job", "--epochs 2")
    with pytest.raises(UsageError, match="needs run names"):
        ip.run_line_magic("tdb_compare", "")


def test_push_job_grid_and_in_kernel_worker(connected, capsys):
    ip = connected
    ip.user_ns["model"] = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2, activation="softmax")])
    ip.user_ns["X"] = np.random.default_rng(1).normal(size=(64, 8)).astype("float32")
    ip.user_ns["Y"] = np.zeros(64, dtype="int64")
    ip.run_line_magic("tdb_import", "X Y --tag split=train")
    ids = ip.run_line_magic("tdb_push_job", "--model model --data tags.split=train --epochs 1 "
                                            "--grid lr=0.1,0.01 --grid units=32,64")
    assert len(ids) == 4
    db = ip.user_ns["_tdb"]
    assert sorted((j["hyper_parameters"]["lr"], j["hyper_parameters"]["units"]) for j in db.jobs.find()) == \
        [(0.01, 32), (0.01, 64), (0.1, 32), (0.1, 64)]
    ip.run_line_magic("tdb_worker", "--max-jobs 4")
    assert "done 4" in capsys.readouterr().out
    assert all(j["status"] == "done" for j in db.jobs.find())


@pytest.mark.parametrize(("magic", "line", "message"), [
    ("tdb_train", "--x X --y y --epochs -3", "--epochs must be 1 or more; got -3"),
    ("tdb_train", "--x X --y y --batch-size 0", "--batch-size must be 1 or more; got 0"),
    ("tdb_push_job", "--model model --data split=train --repeat -5", "--repeat must be 1 or more; got -5"),
])
def test_numbers_below_one_are_refused_before_anything_runs(connected, magic, line, message):
    connected.user_ns.update(X=np.zeros((4, 2), np.float32), y=np.zeros(4), model=keras.Sequential([
        keras.Input((2,)), keras.layers.Dense(1)]))
    with pytest.raises(UsageError, match=message):
        connected.run_cell_magic(magic, line, "model") if magic == "tdb_train" else \
            connected.run_line_magic(magic, line)
    db = connected.user_ns["_tdb"]
    assert db.runs().empty and db.jobs.find() == []
