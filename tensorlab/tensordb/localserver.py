"""The managed local MongoDB-protocol server: one per machine (per home folder), shared by every kernel.

A JSON state file records pid, port and binary so that a second process reuses the running server
instead of starting another; a file lock makes concurrent starts safe; a state file left by a crashed
server is detected (dead pid, or a port that does not answer) and replaced.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import pymongo
from pymongo.errors import PyMongoError

from ..errors import ServerError
from .ferretdb_build import installed_ferretdb
from .payload_files import advertise
from .run_liveness import process_start

HOME_ENV_VAR = "TENSORLAB_HOME"
SERVER_BIN_ENV_VAR = "TENSORLAB_SERVER_BIN"
SYNCHRONOUS_ENV_VAR = "TENSORLAB_SQLITE_SYNCHRONOUS"
# WAL with synchronous=NORMAL: a crash of the server or of any program loses nothing; an OS crash or power
# loss may lose the last commits, like MongoDB's default {w: 1} writes (journal flushed every 100 ms).
# FULL fsyncs every commit: about 30% slower claims and log writes here. See sqlite.org/pragma.html#pragma_synchronous
SYNCHRONOUS_LEVELS = ("normal", "full", "extra")
START_TIMEOUT_S = 30.0
START_PATIENCE_S = 10.0  # a live server gets this long to answer before `start` reports it (never replaces it)
STATUS_PATIENCE_S = 2.0


@dataclass
class ServerInfo:
    pid: int
    port: int
    binary: str
    kind: str
    data_dir: str
    started_at: float
    pid_started: int | None = None  # the process's start time: tells our server from a recycled pid

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"


def default_home() -> Path:
    return Path(os.environ.get(HOME_ENV_VAR) or Path.home() / ".tensorlab") / "server"


def find_server_binary() -> tuple[str, Path]:
    """Pick the server to run: $TENSORLAB_SERVER_BIN, then mongod, then ferretdb (PATH, tools folder)."""
    explicit = os.environ.get(SERVER_BIN_ENV_VAR)
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ServerError(
                f"{SERVER_BIN_ENV_VAR}={explicit} does not exist; point it at a mongod or ferretdb binary."
            )
        return ("mongod" if "mongod" in path.name else "ferretdb", path)
    for kind in ("mongod", "ferretdb"):
        found = shutil.which(kind)
        if found:
            return kind, Path(found)
    built = installed_ferretdb()
    if built:
        return "ferretdb", built
    raise ServerError(
        "No MongoDB-protocol server found (looked at $TENSORLAB_SERVER_BIN, mongod and ferretdb on PATH, "
        "and the tools folder). Run `tensorlab server install` to build FerretDB, or set "
        "TENSORLAB_MONGODB_URI to an existing MongoDB/Atlas."
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sqlite_synchronous() -> str:
    """The SQLite durability level for FerretDB: $TENSORLAB_SQLITE_SYNCHRONOUS, default normal."""
    level = os.environ.get(SYNCHRONOUS_ENV_VAR, "normal").strip().lower()
    if level not in SYNCHRONOUS_LEVELS:
        raise ServerError(f"{SYNCHRONOUS_ENV_VAR}={level!r} is not one of {SYNCHRONOUS_LEVELS}; unset it for normal.")
    return level


def _server_command(kind: str, binary: Path, port: int, data_dir: Path, extra_args: list[str]) -> list[str]:
    if kind == "mongod":
        return [str(binary), "--dbpath", str(data_dir), "--bind_ip", "127.0.0.1", "--port", str(port), *extra_args]
    return [
        str(binary),
        "--handler=sqlite",
        f"--sqlite-url=file:{data_dir}/?_pragma=synchronous({sqlite_synchronous().upper()})",
        f"--listen-addr=127.0.0.1:{port}",
        "--debug-addr=-",
        "--telemetry=disable",
        f"--state-dir={data_dir.parent}",
        "--log-level=warn",
        *extra_args,
    ]


def ping(port: int, timeout_s: float = 1.0) -> bool:
    """True when a MongoDB-protocol server answers `ping` on 127.0.0.1:port."""
    import pymongo

    client = pymongo.MongoClient(
        "127.0.0.1", port, serverSelectionTimeoutMS=int(timeout_s * 1000), connectTimeoutMS=int(timeout_s * 1000)
    )
    try:
        client.admin.command("ping")
        return True
    except Exception:  # noqa: BLE001 - any failure means "not answering"
        return False
    finally:
        client.close()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists() and ") Z " in stat.read_text():
        return False  # a zombie: exited, not yet reaped
    return True


def _executable(pid: int) -> str | None:
    try:
        return os.path.realpath(f"/proc/{pid}/exe")
    except OSError:
        return None


def is_own_server(info: ServerInfo) -> bool:
    """True only when `info.pid` provably is the server that was started: alive, with the recorded start
    time and the recorded executable. Anything unproven is never signalled."""
    if not _pid_alive(info.pid):
        return False
    if info.pid_started is not None and process_start(info.pid) != info.pid_started:
        return False  # the pid was recycled by another process
    executable = _executable(info.pid)
    if executable is not None and executable != os.path.realpath(info.binary):
        return False
    return info.pid_started is not None or executable is not None


def answers(port: int, patience_s: float) -> bool:
    """Whether the server answers `ping` within `patience_s` (one missed ping is not a dead server)."""
    deadline = time.monotonic() + patience_s
    while True:
        if ping(port, timeout_s=min(1.0, max(0.1, deadline - time.monotonic()))):
            return True
        if time.monotonic() >= deadline:
            return False


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class LocalServer:
    """Start, stop and query the managed server whose state lives in `home`."""

    def __init__(self, home: str | Path | None = None) -> None:
        self.home = Path(home) if home else default_home()
        self.state_file = self.home / "server.json"
        self.log_file = self.home / "server.log"
        self.data_dir = self.home / "data"
        self.payload_dir = self.home / "payloads"

    def __repr__(self) -> str:
        return f"LocalServer(home={str(self.home)!r})"

    @contextmanager
    def _lock(self) -> Iterator[None]:
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.home / "server.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _read_state(self) -> ServerInfo | None:
        try:
            return ServerInfo(**json.loads(self.state_file.read_text()))
        except (FileNotFoundError, ValueError, TypeError):
            return None

    def status(self) -> ServerInfo | None:
        """The running server, or None when none runs (a stale state file counts as none)."""
        info = self._read_state()
        if info and is_own_server(info) and answers(info.port, STATUS_PATIENCE_S):
            return info
        return None

    def start(self, extra_args: list[str] | None = None, port: int | None = None) -> ServerInfo:
        """Return the running server, starting one if needed (on `port`, else its previous port when free,
        else a free one). Safe to call from many processes at once.

        A live server that does not answer is left alone (clients keep their address) and reported; a
        state file naming any other process is dropped without signalling that process."""
        with self._lock():
            info = self._running_or_launched(extra_args, port)
            self._advertise_payload_files(info)
            return info

    def _advertise_payload_files(self, info: ServerInfo) -> None:
        """Tell the server where its payload files live (payload_files.py); its clients read it at connect."""
        client = pymongo.MongoClient(info.uri, serverSelectionTimeoutMS=int(START_PATIENCE_S * 1000))
        try:
            advertise(client, self.payload_dir)
        except (PyMongoError, OSError) as error:  # payloads then stay in GridFS: slower, never wrong
            warnings.warn(f"TensorLab: the managed server's payload file store is not available ({error}); "
                          "payloads go to GridFS.", RuntimeWarning, stacklevel=3)
        finally:
            client.close()

    def _running_or_launched(self, extra_args: list[str] | None, port: int | None) -> ServerInfo:
        info = self._read_state()
        if info and is_own_server(info):
            if answers(info.port, START_PATIENCE_S):
                return info
            raise ServerError(
                f"The managed server (pid {info.pid}, port {info.port}) is running but has not answered for "
                f"{START_PATIENCE_S:g} s; it is left running so connected programs keep their address. See "
                f"{self.log_file}, or restart it with `tensorlab server stop` and `tensorlab server start`.")
        self.state_file.unlink(missing_ok=True)
        if port is None and info and info.port >= 1024 and _port_free(info.port):
            port = info.port  # clients of the previous server reconnect to the same address
        return self._launch(extra_args or [], port)

    def _launch(self, extra_args: list[str], port: int | None) -> ServerInfo:
        kind, binary = find_server_binary()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        port = port or _free_port()
        command = _server_command(kind, binary, port, self.data_dir, extra_args)
        with open(self.log_file, "ab") as log:
            process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ServerError(f"{kind} exited at start (code {process.returncode}); see {self.log_file}")
            if ping(port, timeout_s=0.3):
                info = ServerInfo(process.pid, port, str(binary), kind, str(self.data_dir), time.time(),
                                  process_start(process.pid))
                tmp = self.state_file.with_suffix(".tmp")
                tmp.write_text(json.dumps(asdict(info)))
                tmp.replace(self.state_file)
                return info
            time.sleep(0.05)
        process.kill()
        raise ServerError(
            f"{kind} did not answer on 127.0.0.1:{port} within {START_TIMEOUT_S:.0f} s; see {self.log_file}"
        )

    def stop(self) -> bool:
        """Stop the server cleanly (SIGTERM, then SIGKILL after 10 s). False when none was running."""
        with self._lock():
            info = self._read_state()
            self.state_file.unlink(missing_ok=True)
            if not info or not is_own_server(info):
                return False  # nothing of ours runs; a recycled pid belongs to someone else
            self._terminate(info.pid)
            return True

    @staticmethod
    def _terminate(pid: int, grace_s: float = 10.0) -> None:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            if not _pid_alive(pid):
                return
            time.sleep(0.05)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def ensure_local_server(home: str | Path | None = None) -> str:
    """URI of the managed server, started on demand."""
    return LocalServer(home).start().uri
