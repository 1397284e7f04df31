"""The managed local server: start/stop/status, sharing across processes, stale state files."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tensorlab.errors import ServerError
from tensorlab.tensordb.localserver import LocalServer, ping


def _start_in_subprocess(home) -> dict:
    code = (
        "import json, sys; from tensorlab.tensordb.localserver import LocalServer; "
        "i = LocalServer(sys.argv[1]).start(); print(json.dumps({'pid': i.pid, 'port': i.port}))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(home)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_start_status_stop(tmp_path):
    server = LocalServer(tmp_path)
    assert server.status() is None
    info = server.start()
    try:
        assert ping(info.port)
        assert server.status() == info
        assert info.uri == f"mongodb://127.0.0.1:{info.port}/"
        assert server.start().pid == info.pid  # idempotent
    finally:
        assert server.stop() is True
    assert server.status() is None
    assert not ping(info.port, timeout_s=0.5)
    assert server.stop() is False


def test_two_processes_share_one_server(tmp_path):
    first = _start_in_subprocess(tmp_path)
    try:
        second = _start_in_subprocess(tmp_path)
        assert second == first
        assert LocalServer(tmp_path).status().pid == first["pid"]
    finally:
        LocalServer(tmp_path).stop()


def test_stale_state_file_is_replaced(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    server = LocalServer(tmp_path)
    tmp_path.mkdir(exist_ok=True)
    server.state_file.write_text(json.dumps({
        "pid": dead.pid, "port": 1, "binary": "ferretdb", "kind": "ferretdb",
        "data_dir": str(tmp_path / "data"), "started_at": 0.0,
    }))
    assert server.status() is None
    info = server.start()
    try:
        assert info.pid != dead.pid and info.port != 1
        assert ping(info.port)
    finally:
        server.stop()


def test_corrupt_state_file_is_replaced(tmp_path):
    server = LocalServer(tmp_path)
    server.state_file.write_text("{not json")
    info = server.start()
    try:
        assert ping(info.port)
    finally:
        server.stop()


def test_missing_binary_explains_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("TENSORLAB_SERVER_BIN", str(tmp_path / "nope"))
    with pytest.raises(ServerError, match="TENSORLAB_SERVER_BIN"):
        LocalServer(tmp_path).start()


def test_cli_status_start_stop(tmp_path):
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "tensorlab.cli", "server", *args, "--home", str(tmp_path)],
                              capture_output=True, text=True)

    assert cli("status").returncode == 3
    started = cli("start")
    assert started.returncode == 0 and "running at mongodb://127.0.0.1:" in started.stdout
    assert cli("status").returncode == 0
    assert "stopped" in cli("stop").stdout
    assert cli("status").returncode == 3


def test_sqlite_durability_level_is_applied_and_checked(tmp_path, monkeypatch):
    from pathlib import Path

    import pymongo

    monkeypatch.setenv("TENSORLAB_SQLITE_SYNCHRONOUS", "sometimes")
    with pytest.raises(ServerError, match="TENSORLAB_SQLITE_SYNCHRONOUS='sometimes' is not one of"):
        LocalServer(tmp_path).start()
    monkeypatch.setenv("TENSORLAB_SQLITE_SYNCHRONOUS", "full")
    server = LocalServer(tmp_path)
    info = server.start()
    try:
        command = Path(f"/proc/{info.pid}/cmdline").read_bytes().split(b"\0")
        assert any(arg.endswith(b"?_pragma=synchronous(FULL)") for arg in command)
        client = pymongo.MongoClient(info.uri)
        client.t.c.insert_one({"_id": 1})  # the server accepted the SQLite URL and writes with it
        assert client.t.c.find_one({"_id": 1}) == {"_id": 1}
        client.close()
    finally:
        server.stop()


def test_a_state_file_naming_another_process_never_gets_it_signalled(tmp_path):
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    server = LocalServer(tmp_path)
    try:
        tmp_path.mkdir(exist_ok=True)
        server.state_file.write_text(json.dumps({  # e.g. a stale file whose pid was recycled by another program
            "pid": bystander.pid, "port": 1, "binary": "/usr/bin/ferretdb", "kind": "ferretdb",
            "data_dir": str(tmp_path / "data"), "started_at": 0.0, "pid_started": 1}))
        assert server.stop() is False and bystander.poll() is None
        server.state_file.write_text(json.dumps({
            "pid": bystander.pid, "port": 1, "binary": "/usr/bin/ferretdb", "kind": "ferretdb",
            "data_dir": str(tmp_path / "data"), "started_at": 0.0}))
        info = server.start()
        assert ping(info.port) and info.pid != bystander.pid and bystander.poll() is None
    finally:
        server.stop()
        bystander.kill()


def test_a_paused_server_is_not_replaced_and_is_found_again(tmp_path, monkeypatch):
    import os
    import signal

    from tensorlab.tensordb import localserver

    server = LocalServer(tmp_path)
    info = server.start()
    monkeypatch.setattr(localserver, "START_PATIENCE_S", 1.5)
    os.kill(info.pid, signal.SIGSTOP)  # a pause: alive, not answering
    try:
        with pytest.raises(ServerError, match="left running so connected programs keep their address"):
            LocalServer(tmp_path).start()
    finally:
        os.kill(info.pid, signal.SIGCONT)
    again = LocalServer(tmp_path).start()
    assert (again.pid, again.port) == (info.pid, info.port)
    server.stop()


def test_a_dead_server_comes_back_on_its_previous_port(tmp_path):
    import os
    import signal

    server = LocalServer(tmp_path)
    first = server.start()
    os.kill(first.pid, signal.SIGKILL)
    while ping(first.port, timeout_s=0.2):
        pass
    second = server.start()
    try:
        assert second.pid != first.pid and second.port == first.port  # clients' address still works
    finally:
        server.stop()
