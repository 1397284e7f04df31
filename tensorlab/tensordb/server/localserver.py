"""The managed local MongoDB-protocol server: one per machine (per home folder), shared by every kernel.

Private by default: every folder in the home is 0700 and every file 0600 (from creation on; what older
versions left looser is tightened when the server starts), and FerretDB listens
only on a Unix socket inside the home (`mongodb://%2F...%2Fserver.sock`), so on a shared machine no other
user can connect or read the data; the socket's path never changes, so clients reconnect to a restarted
server by themselves. TCP on 127.0.0.1 is opened only on request (`TENSORLAB_SERVER_TCP=1`, or
`LocalServer(tcp=True)`), e.g. for the seeds' `TensorDB(ip=..., port=...)`; mongod always uses TCP.

A JSON state file records pid, port and binary so that a second process reuses the running server
instead of starting another; a file lock makes concurrent starts safe; a state file left by a crashed
server is detected (dead pid, or a port that does not answer) and replaced.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import quote

import pymongo
from pymongo.errors import PyMongoError

from ...errors import ServerError
from ..documents.run_liveness import process_start
from .ferretdb_build import installed_ferretdb
from .payload_advert import advertise
from .private_files import open_private, private_dir, tighten_tree, write_private

HOME_ENV_VAR = "TENSORLAB_HOME"
SERVER_BIN_ENV_VAR = "TENSORLAB_SERVER_BIN"
SYNCHRONOUS_ENV_VAR = "TENSORLAB_SQLITE_SYNCHRONOUS"
TCP_ENV_VAR = "TENSORLAB_SERVER_TCP"
SOCKET_NAME = "server.sock"
_MAX_SOCKET_PATH = 100  # Linux refuses Unix socket paths over 107 bytes
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
    port: int | None  # None: no TCP listener, only the Unix socket
    binary: str
    kind: str
    data_dir: str
    started_at: float
    pid_started: int | None = None  # the process's start time: tells our server from a recycled pid
    socket: str | None = None

    @property
    def address(self) -> int | str:
        """Where clients connect: the socket path, else the TCP port on 127.0.0.1."""
        return self.socket if self.socket else int(self.port or 0)

    @property
    def uri(self) -> str:
        return address_uri(self.address)


def address_uri(address: int | str) -> str:
    if isinstance(address, str):
        return f"mongodb://{quote(address, safe='')}/"
    return f"mongodb://127.0.0.1:{address}/"


def tcp_requested() -> bool:
    return os.environ.get(TCP_ENV_VAR, "").strip().lower() in ("1", "true", "yes", "on")


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


def _server_command(kind: str, binary: Path, port: int | None, socket_path: Path, data_dir: Path,
                    extra_args: list[str]) -> list[str]:
    if kind == "mongod":
        return [str(binary), "--dbpath", str(data_dir), "--bind_ip", "127.0.0.1", "--port", str(port), *extra_args]
    return [
        str(binary),
        "--handler=sqlite",
        f"--sqlite-url=file:{data_dir}/?_pragma=synchronous({sqlite_synchronous().upper()})",
        f"--listen-addr=127.0.0.1:{port}" if port else "--listen-addr=",
        f"--listen-unix={socket_path}",
        "--debug-addr=-",
        "--telemetry=disable",
        f"--state-dir={data_dir.parent}",
        "--log-level=warn",
        *extra_args,
    ]


def ping(address: int | str, timeout_s: float = 1.0) -> bool:
    """True when a MongoDB-protocol server answers `ping` on 127.0.0.1:port or the Unix socket at a path."""
    client = pymongo.MongoClient(
        address_uri(address), serverSelectionTimeoutMS=int(timeout_s * 1000), connectTimeoutMS=int(timeout_s * 1000)
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


def answers(address: int | str, patience_s: float) -> bool:
    """Whether the server answers `ping` within `patience_s` (one missed ping is not a dead server)."""
    deadline = time.monotonic() + patience_s
    while True:
        if ping(address, timeout_s=min(1.0, max(0.1, deadline - time.monotonic()))):
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

    def __init__(self, home: str | Path | None = None, tcp: bool | None = None) -> None:
        self.home = Path(home) if home else default_home()
        self.lab_home = None if home else self.home.parent  # TensorLab's own folder ($TENSORLAB_HOME), kept private
        self.tcp = tcp_requested() if tcp is None else tcp
        self.state_file = self.home / "server.json"
        self.log_file = self.home / "server.log"
        self.data_dir = self.home / "data"
        self.payload_dir = self.home / "payloads"

    def __repr__(self) -> str:
        return f"LocalServer(home={str(self.home)!r})"

    @contextmanager
    def _lock(self) -> Iterator[None]:
        try:
            private_dir(self.home)  # private: no other user may reach the socket, the data or the payloads
        except PermissionError:
            if not self.home.is_dir():
                raise
            warnings.warn(f"TensorLab: cannot make the server home {self.home} private (it belongs to another user); "
                          "other users may be able to reach the server's data.", RuntimeWarning, stacklevel=3)
        with os.fdopen(open_private(self.home / "server.lock", os.O_WRONLY), "w") as handle:
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
        if info and is_own_server(info) and answers(info.address, STATUS_PATIENCE_S):
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
        """Tell the server where its payload files live (payload_advert.py); its clients read it at connect."""
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
            if answers(info.address, START_PATIENCE_S):
                if self.tcp and info.port is None:
                    raise ServerError(f"The managed server (pid {info.pid}) listens only on its private socket "
                                      f"{info.socket}; for TCP, run `tensorlab server stop`, then start it again "
                                      f"with {TCP_ENV_VAR}=1.")
                return info
            raise ServerError(
                f"The managed server (pid {info.pid}, at {info.uri}) is running but has not answered for "
                f"{START_PATIENCE_S:g} s; it is left running so connected programs keep their address. See "
                f"{self.log_file}, or restart it with `tensorlab server stop` and `tensorlab server start`.")
        self.state_file.unlink(missing_ok=True)
        if port is None and self.tcp and info and info.port and info.port >= 1024 and _port_free(info.port):
            port = info.port  # clients of the previous server reconnect to the same address
        return self._launch(extra_args or [], port)

    @property
    def socket_path(self) -> Path:
        """The server's socket, in its private home (or, where that path is too long for a socket, in a private
        folder of this user under /tmp named after the home)."""
        path = self.home / SOCKET_NAME
        if len(str(path)) <= _MAX_SOCKET_PATH:
            return path
        digest = hashlib.sha256(str(self.home.resolve()).encode()).hexdigest()[:16]
        folder = Path(tempfile.gettempdir()) / f"tensorlab-{os.getuid()}-{digest}"
        folder.mkdir(mode=0o700, exist_ok=True)
        if folder.stat().st_uid != os.getuid() or folder.stat().st_mode & 0o077:
            raise ServerError(f"{folder} is not a private folder of this user; remove it, or use a shorter "
                              f"{HOME_ENV_VAR}.")
        return folder / SOCKET_NAME

    def _make_private(self) -> None:
        """What older versions left looser (home, data, payload folders and files, log, state): 0700 and 0600."""
        private_dir(self.data_dir)
        tighten_tree(self.lab_home or self.home)

    def _launch(self, extra_args: list[str], port: int | None) -> ServerInfo:
        kind, binary = find_server_binary()
        self._make_private()
        tcp = self.tcp or kind == "mongod" or port is not None  # an explicit port asks for TCP
        port = (port or _free_port()) if tcp else None
        socket_path = self.socket_path
        socket_path.unlink(missing_ok=True)  # left by a server that died; ours is not running (we hold the lock)
        command = _server_command(kind, binary, port, socket_path, self.data_dir, extra_args)
        address: int | str = int(port or 0) if kind == "mongod" else str(socket_path)
        with os.fdopen(open_private(self.log_file, os.O_WRONLY | os.O_APPEND), "ab") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True, umask=0o077)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ServerError(f"{kind} exited at start (code {process.returncode}); see {self.log_file}")
            if ping(address, timeout_s=0.3):
                info = ServerInfo(process.pid, port, str(binary), kind, str(self.data_dir), time.time(),
                                  process_start(process.pid), None if kind == "mongod" else str(socket_path))
                tmp = self.state_file.with_suffix(".tmp")
                write_private(tmp, json.dumps(asdict(info)).encode())
                tmp.replace(self.state_file)
                return info
            time.sleep(0.05)
        process.kill()
        raise ServerError(
            f"{kind} did not answer at {address_uri(address)} within {START_TIMEOUT_S:.0f} s; see {self.log_file}"
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
