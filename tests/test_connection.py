"""connect(), the seed-style constructor, errors and password masking, against the real server."""

from __future__ import annotations

import socket
import time

import pytest

import tensorlab
from tensorlab import AuthenticationFailed, ConnectionFailed, InvalidInput, TensorDB
from tensorlab.tensordb.server.localserver import LocalServer
from tensorlab.tensordb.server.uri import mask_uri


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_connect_explicit_uri_round_trip(mongo_uri, db_name):
    db = tensorlab.connect(mongo_uri, db=db_name, study="s1")
    try:
        db.collection("probe").insert_one({"study": db.study, "x": 1})
        assert db.collection("probe").find_one({"x": 1})["study"] == "s1"
        assert repr(db) == f"TensorDB(uri={mongo_uri!r}, db={db_name!r}, study='s1')"
    finally:
        db.client.drop_database(db_name)
        db.close()


def test_connect_uses_environment_uri(mongo_uri, db_name, monkeypatch):
    monkeypatch.setenv("TENSORLAB_MONGODB_URI", mongo_uri)
    with tensorlab.connect(db=db_name) as db:
        assert db.uri == mongo_uri
        assert db.study == "default"
        db.client.drop_database(db_name)


def test_connect_starts_managed_server_when_nothing_configured(tmp_path, monkeypatch, db_name):
    monkeypatch.delenv("TENSORLAB_MONGODB_URI", raising=False)
    monkeypatch.setenv("TENSORLAB_HOME", str(tmp_path))
    try:
        with tensorlab.connect(db=db_name) as db:
            info = LocalServer().status()
            assert info is not None and db.uri == info.uri
    finally:
        LocalServer().stop()


def test_unreachable_server_fails_fast_and_names_the_address():
    port = _free_port()
    started = time.monotonic()
    with pytest.raises(ConnectionFailed) as caught:
        tensorlab.connect(f"mongodb://bob:hunter2@127.0.0.1:{port}/", db="x")
    elapsed = time.monotonic() - started
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message
    assert "hunter2" not in message and "bob:****@" in message
    assert "tensorlab server start" in message
    assert elapsed < 10  # the 3 s server-selection timeout, with slack for a loaded CI machine


def test_wrong_password_is_a_clear_error_without_the_password(tmp_path):
    server = LocalServer(tmp_path, tcp=True)
    info = server.start(["--test-enable-new-auth", "--setup-database=admin",
                         "--setup-username=alice", "--setup-password=right-pw"])
    try:
        uri = f"mongodb://127.0.0.1:{info.port}/?authSource=admin"
        with pytest.raises(AuthenticationFailed) as caught:
            tensorlab.connect(uri, user="alice", password="wrong-pw")
        assert "wrong-pw" not in str(caught.value) and "alice" in str(caught.value)
        with pytest.raises(AuthenticationFailed) as caught:
            tensorlab.connect(f"mongodb://alice:wrong-pw@127.0.0.1:{info.port}/?authSource=admin")
        assert "wrong-pw" not in str(caught.value) and "****" in str(caught.value)
        db = tensorlab.connect(f"mongodb://alice:right-pw@127.0.0.1:{info.port}/?authSource=admin", db="authdb")
        db.collection("probe").insert_one({"a": 1})
        assert "right-pw" not in repr(db) and "alice:****@" in repr(db)
        db.close()
    finally:
        server.stop()


def test_seed_style_constructor(tmp_path, db_name):
    server = LocalServer(tmp_path, tcp=True)  # the seeds' ip/port need TCP, opened on request
    port = server.start().port
    db = TensorDB(ip="127.0.0.1", port=port, db_name=db_name, studyID="seed-study")
    try:
        assert db.study == "seed-study" and db.db_name == db_name
        db.collection("probe").insert_one({"study": db.study})
        assert db.client[db_name]["probe"].count_documents({"study": "seed-study"}) == 1
    finally:
        db.client.drop_database(db_name)
        db.close()
        server.stop()


def test_seed_style_constructor_masks_password_when_unreachable():
    with pytest.raises(ConnectionFailed) as caught:
        TensorDB(ip="127.0.0.1", port=_free_port(), user_name="u", password="s3cr3t/pw", studyID="x")
    assert "s3cr3t" not in str(caught.value)


def test_memory_store_is_explicit_and_works():
    db = tensorlab.connect("memory://", study="scratch")
    assert db.is_memory and repr(db).startswith("TensorDB(uri='memory://'")
    db.collection("probe").insert_one({"study": db.study, "v": 2})
    assert db.collection("probe").find_one({"v": 2})["study"] == "scratch"


def test_closed_connection_is_a_clear_error(mongo_uri, db_name):
    db = tensorlab.connect(mongo_uri, db=db_name)
    db.close()
    with pytest.raises(ConnectionFailed, match="closed"):
        db.collection("probe")


@pytest.mark.parametrize("bad", ["", "a.b", "has space", "x$y"])
def test_bad_database_names_are_rejected(mongo_uri, bad):
    with pytest.raises(InvalidInput, match="db_name"):
        tensorlab.connect(mongo_uri, db=bad)


def test_bad_uri_is_rejected_without_secret():
    with pytest.raises(InvalidInput) as caught:
        tensorlab.connect("notmongo://u:pw12345@host/")
    assert "pw12345" not in str(caught.value)


def test_mask_uri():
    assert mask_uri("mongodb+srv://me:p%40ss@cluster0.example.net/db") == "mongodb+srv://me:****@cluster0.example.net/db"
    assert mask_uri("mongodb://127.0.0.1:27017/") == "mongodb://127.0.0.1:27017/"
    assert mask_uri("mongodb://onlyuser@h/") == "mongodb://onlyuser@h/"


@pytest.mark.parametrize("password", ["se/cr3t", "se:cr@t", "s3cr%t", "a/b:c@d?e"])
def test_passwords_with_any_characters_are_never_shown(password):
    uri = f"mongodb://me:{password}@127.0.0.1:1/db"
    assert password not in mask_uri(uri) and "me:****@127.0.0.1:1/db" in mask_uri(uri)
    with pytest.raises((InvalidInput, ConnectionFailed)) as raised:
        tensorlab.connect(uri, timeout_s=0.3)
    assert password not in str(raised.value) and "****" in str(raised.value)
