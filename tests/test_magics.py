"""%load_ext tensorlab and the connection magics, in a real IPython shell against the real server."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError
from IPython.testing.globalipapp import start_ipython


@pytest.fixture(scope="module")
def ip():
    shell = start_ipython()
    shell.run_line_magic("load_ext", "tensorlab")
    return shell


def test_connect_and_status(ip, mongo_uri, db_name, capsys):
    ip.run_line_magic("tdb_connect", f"{mongo_uri} --db {db_name} --study magic")
    assert "study 'magic'" in capsys.readouterr().out
    db = ip.user_ns["_tdb"]
    assert db.study == "magic" and db.db_name == db_name
    ip.run_line_magic("tdb_status", "")
    assert f"database '{db_name}'" in capsys.readouterr().out
    db.client.drop_database(db_name)


def test_password_comes_from_an_environment_variable_and_is_masked(ip, capsys, monkeypatch):
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
