"""The managed local server: start/stop/status, sharing across processes, stale state files."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tensorlab.errors import ServerError
from tensorlab.tensordb.server.localserver import LocalServer, ping


def _start_in_subprocess(home) -> dict:
    code = (
        "import json, sys; from tensorlab.tensordb.server.localserver import LocalServer; "
        "i = LocalServer(sys.argv[1]).start(); print(json.dumps({'pid': i.pid, 'address': i.address}))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(home)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_start_status_stop(tmp_path):
    server = LocalServer(tmp_path)
    assert server.status() is None
    info = server.start()
    try:
        assert ping(info.address)
        assert server.status() == info
        assert info.port is None and info.socket == str(tmp_path / "server.sock")  # private by default: no TCP
        assert info.uri == "mongodb://" + str(tmp_path / "server.sock").replace("/", "%2F") + "/"
        assert server.start().pid == info.pid  # idempotent
    finally:
        assert server.stop() is True
    assert server.status() is None
    assert not ping(info.address, timeout_s=0.5)
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
        assert info.pid != dead.pid and info.port is None
        assert ping(info.address)
    finally:
        server.stop()


def test_corrupt_state_file_is_replaced(tmp_path):
    server = LocalServer(tmp_path)
    server.state_file.write_text("{not json")
    info = server.start()
    try:
        assert ping(info.address)
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
    assert started.returncode == 0 and "running at mongodb://%2F" in started.stdout
    assert "private socket" in started.stdout
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
        assert ping(info.address) and info.pid != bystander.pid and bystander.poll() is None
    finally:
        server.stop()
        bystander.kill()


def test_a_paused_server_is_not_replaced_and_is_found_again(tmp_path, monkeypatch):
    import os
    import signal

    from tensorlab.tensordb.server import localserver

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
    assert (again.pid, again.address) == (info.pid, info.address)
    server.stop()


@pytest.mark.parametrize("tcp", [False, True])
def test_a_dead_server_comes_back_at_its_previous_address(tmp_path, tcp):
    import os
    import signal

    server = LocalServer(tmp_path, tcp=tcp)
    first = server.start()
    assert (first.port is not None) == tcp
    os.kill(first.pid, signal.SIGKILL)
    while ping(first.address, timeout_s=0.2):
        pass
    second = server.start()
    try:
        assert second.pid != first.pid and second.address == first.address  # clients' address still works
        assert ping(first.address)
    finally:
        server.stop()


def _as_another_user(action) -> str:
    """Run `action()` in a child process that has dropped to uid/gid 65534 (nobody); returns what it reports."""
    import os

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: another OS user from here on
        os.close(read)
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            result = action()
        except PermissionError as error:
            result = f"refused: {error.strerror}"
        except Exception as error:  # noqa: BLE001 - reported to the parent
            result = f"error: {type(error).__name__}: {error}"
        os.write(write, result.encode()[:4000])
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        report = pipe.read()
    os.waitpid(pid, 0)
    return report


def test_another_user_can_neither_connect_nor_read_the_data(tmp_path):
    import os
    import socket as sockets
    import stat

    if os.geteuid() != 0:
        pytest.skip("needs root to act as another user")
    home = tmp_path / "home"
    server = LocalServer(home)
    info = server.start()
    try:
        import tensorlab

        with tensorlab.connect(info.uri, db="private") as db:  # the owner works as usual
            db.save_parameters([np.arange(50_000, dtype=np.float64)], {"secret": "yes"})
            payload_dir = db.blobs.local_files.folder
        assert stat.S_IMODE(home.stat().st_mode) == 0o700
        assert all(stat.S_IMODE(path.stat().st_mode) & 0o077 == 0 for path in (home / "data").iterdir())
        os.chmod(tmp_path, 0o755)  # the test's own folder is open: only TensorLab's home protects the data

        def connect() -> str:
            client = sockets.socket(sockets.AF_UNIX)
            client.connect(info.socket)
            return "connected"

        def read_data() -> str:
            return f"read {len(next((home / 'data').iterdir()).read_bytes())} bytes"

        def read_payloads() -> str:
            return f"listed {os.listdir(payload_dir)}"

        for action in (connect, read_data, read_payloads):
            assert _as_another_user(action).startswith("refused"), action.__name__
        assert info.port is None  # and no TCP listener at all: nothing reachable without the home's permissions
        assert str(info.pid) not in _tcp_listener_pids()
    finally:
        server.stop()


def _tcp_listener_pids() -> str:
    """`ss` output for TCP listeners with their processes."""
    return subprocess.run(["ss", "-ltnp"], capture_output=True, text=True).stdout
