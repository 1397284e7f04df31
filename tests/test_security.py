"""What other users of the machine cannot see or steer: the home's modes, passwords on command lines, and
payload stores that a planted advert points at."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import warnings
from contextlib import contextmanager
from urllib.parse import quote_plus

import numpy as np
import pytest

import tensorlab
from tensorlab.tensordb.server.localserver import LocalServer
from tensorlab.tensordb.server.payload_advert import ADVERT, ADVERT_ID, SERVER_DB, TOKEN_FILE

PASSWORD = "Sup3r-Secret_pw"


@contextmanager
def _umask(mask: int):
    """Run with another umask: modes must come from TensorLab, not from the umask (0 keeps every bit)."""
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def _loose(root) -> list[str]:
    """Every path under `root` (root included, links skipped) whose mode is not private: folders must be 0700,
    files 0600, anything else (the socket) without group or other permissions."""
    found = []
    for folder, _folders, files in os.walk(root):
        for path in (folder, *(os.path.join(folder, name) for name in files)):
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                continue  # a link's own mode means nothing (always 0777); its target is checked where it lies
            wanted = 0o700 if stat.S_ISDIR(mode) else 0o600 if stat.S_ISREG(mode) else None
            if (stat.S_IMODE(mode) != wanted) if wanted else (mode & 0o077):
                found.append(f"{path} {stat.S_IMODE(mode):04o}")
    return found


def _names(root) -> set[str]:
    return {name for _folder, folders, files in os.walk(root) for name in (*folders, *files)}


def test_every_folder_and_file_a_new_home_gets_is_private(tmp_path, monkeypatch):
    lab = tmp_path / "lab"  # $TENSORLAB_HOME, not there yet
    monkeypatch.setenv("TENSORLAB_HOME", str(lab))
    with _umask(0):
        server = LocalServer()
        info = server.start()
        try:
            with tensorlab.connect(info.uri, db="private") as db:
                db.save_parameters([np.random.default_rng(0).random(50_000)])  # 400 KB: a payload file
                assert db.blobs.uses_files
            assert {"server", "server.json", "server.log", "server.lock", "data", "payloads", TOKEN_FILE,
                    "private"} <= _names(lab)
            assert _loose(lab) == []
        finally:
            server.stop()


def test_a_home_an_older_version_left_open_is_tightened_at_start(tmp_path):
    home = tmp_path / "home"
    old_payloads = home / "payloads" / "old" / "ab"
    old_payloads.mkdir(parents=True)
    (home / "data").mkdir()
    for path in (home / "server.log", home / "server.lock", home / "payloads" / TOKEN_FILE, old_payloads / "abcd"):
        path.write_text("from an older version")
    outside = tmp_path / "outside.txt"
    outside.write_text("not TensorLab's")
    (home / "link").symlink_to(outside)
    for path in (home, home / "data", home / "payloads", old_payloads.parent, old_payloads):
        os.chmod(path, 0o755)
    for path in (home / "server.log", home / "server.lock", home / "payloads" / TOKEN_FILE,
                 old_payloads / "abcd", outside):
        os.chmod(path, 0o644)
    server = LocalServer(home)
    server.start()
    try:
        assert _loose(home) == []
        assert stat.S_IMODE(outside.stat().st_mode) == 0o644  # a link is never followed
    finally:
        server.stop()


def test_payload_folders_and_files_are_private(tdb):
    if tdb.blobs.local_files is None:
        pytest.skip("the session's server keeps no payload files (not the managed server)")
    with _umask(0):
        tdb.save_parameters([np.random.default_rng(1).random(50_000)])
        tdb.data.import_data(np.random.default_rng(2).random((300, 784), dtype=np.float32), np.zeros(300),
                             {"split": "train"})
    store = tdb.blobs.local_files
    assert any(path.is_file() for path in store.folder.rglob("*"))
    assert _loose(store.folder) == []
    assert stat.S_IMODE(store.root.stat().st_mode) == 0o700
    assert stat.S_IMODE((store.root / TOKEN_FILE).stat().st_mode) == 0o600


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tensorlab.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)


# Port 99999 is refused before any connection is tried: each command fails at once, after its warning.
_WITH_PASSWORD = f"mongodb://me:{PASSWORD}@127.0.0.1:99999/"


@pytest.mark.parametrize("command", [
    ["worker", "--uri", _WITH_PASSWORD],
    ["db", "fsck", "--uri", _WITH_PASSWORD],
    ["db", "upgrade", "--uri", _WITH_PASSWORD],
    ["export", "--to", "{tmp}", "--uri", _WITH_PASSWORD],
    ["import", "{tmp}", "--uri", _WITH_PASSWORD],
    ["copy", "--from", _WITH_PASSWORD, "--to", "mongodb://127.0.0.1:99999/"],
    ["copy", "--from", "mongodb://127.0.0.1:99999/", "--to", _WITH_PASSWORD],
], ids=["worker", "fsck", "upgrade", "export", "import", "copy-from", "copy-to"])
def test_a_password_on_the_command_line_is_warned_about_and_never_shown(command, tmp_path):
    done = _cli(*(part.replace("{tmp}", str(tmp_path)) for part in command))
    output = done.stdout + done.stderr
    assert PASSWORD not in output and quote_plus(PASSWORD) not in output
    assert "warning" in done.stderr and "`ps`" in done.stderr and "TENSORLAB_MONGODB_URI" in done.stderr
    assert "password-env VAR" in done.stderr and "mongodb://me:****@127.0.0.1:99999/" in done.stderr


def test_a_usage_error_that_echoes_a_uri_masks_its_password():
    done = _cli("db", _WITH_PASSWORD)  # an invalid choice: argparse repeats the argument
    assert done.returncode == 2 and "invalid choice" in done.stderr
    assert PASSWORD not in done.stdout + done.stderr and "me:****@" in done.stderr


def test_password_env_passes_the_password_to_the_server_and_shows_it_masked(mongo_uri, db_name):
    if "@" in mongo_uri:
        pytest.skip("the session's server URI already carries credentials")
    # The managed server takes any user with the PLAIN mechanism: the command succeeds, and the URIs it prints
    # show that a password (from the environment, never on the command line) was given to the driver.
    user_uri = mongo_uri.replace("://", "://me@", 1) + ("&" if "?" in mongo_uri else "?") + "authMechanism=PLAIN"
    secret = "Env-Secret:/@1"  # characters a URI must escape
    with tensorlab.connect(mongo_uri, db=db_name) as source:
        try:
            done = _cli("copy", "--from", user_uri, "--from-password-env", "TL_FROM_PW", "--to", user_uri,
                        "--to-password-env", "TL_TO_PW", "--db", db_name, "--to-db", f"{db_name}_copy",
                        env={"TL_FROM_PW": secret, "TL_TO_PW": secret + "2"})
        finally:
            source.client.drop_database(db_name)
            source.client.drop_database(f"{db_name}_copy")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "warning" not in done.stderr
    assert done.stdout.count("mongodb://me:****@") == 2
    output = done.stdout + done.stderr
    assert not any(form in output for form in (secret, quote_plus(secret), "Env-Secret"))


def test_password_env_names_an_unset_variable_or_a_uri_without_user():
    unset = _cli("db", "fsck", "--uri", "mongodb://me@127.0.0.1:99999/", "--password-env", "TL_NOT_SET_PW")
    assert unset.returncode == 2 and "'TL_NOT_SET_PW'" in unset.stderr and "is not set" in unset.stderr
    no_user = _cli("db", "fsck", "--uri", "mongodb://127.0.0.1:99999/", "--password-env", "TL_PW",
                   env={"TL_PW": PASSWORD})
    assert no_user.returncode == 2 and "names the user" in no_user.stderr
    assert PASSWORD not in no_user.stdout + no_user.stderr


@contextmanager
def _planted_advert(client, folder):
    """Plant an advert naming `folder` with a token that the folder holds too (what anyone able to write
    `tensorlab_server.payload_store` could do); the server's own advert comes back afterwards."""
    adverts = client[SERVER_DB][ADVERT]
    original = adverts.find_one({"_id": ADVERT_ID})
    (folder / TOKEN_FILE).write_text("planted")
    adverts.replace_one({"_id": ADVERT_ID}, {"_id": ADVERT_ID, "root": str(folder), "token": "planted",
                                             "host": socket.gethostname()}, upsert=True)
    try:
        yield
    finally:
        if original is None:
            adverts.delete_one({"_id": ADVERT_ID})
        else:
            adverts.replace_one({"_id": ADVERT_ID}, original)


def _planted_folder(tmp_path, kind: str):
    folder = tmp_path / "planted"
    if kind == "symlink":
        target = tmp_path / "private"
        target.mkdir(mode=0o700)
        folder.symlink_to(target, target_is_directory=True)
        return folder, "symbolic link"
    folder.mkdir()
    if kind == "open":
        os.chmod(folder, 0o777)  # a world-writable folder: anyone could read or replace payloads
        return folder, "mode 0777"
    if os.geteuid() != 0:
        pytest.skip("needs root to give the folder to another user")
    os.chmod(folder, 0o700)
    os.chown(folder, 65534, 65534)
    return folder, "uid 65534"


@pytest.mark.parametrize("kind", ["open", "foreign", "symlink"])
def test_a_planted_advert_naming_a_folder_not_privately_ours_leaves_payloads_in_gridfs(kind, mongo_uri, db_name,
                                                                                         tmp_path):
    folder, why = _planted_folder(tmp_path, kind)
    with tensorlab.connect(mongo_uri, db=db_name) as db, _planted_advert(db.client, folder):
        try:
            with pytest.warns(RuntimeWarning, match=f"{folder}.*{why}.*GridFS") as caught:
                planted = tensorlab.connect(mongo_uri, db=db_name)
            assert len([w for w in caught if issubclass(w.category, RuntimeWarning)]) == 1
            assert planted.blobs.local_files is None and not planted.blobs.uses_files
            weights = np.random.default_rng(3).random(50_000)
            planted.save_parameters([weights])
            assert db.collection("blobs.files").count_documents({}) == 1  # GridFS, not the planted folder
            assert db.collection("payload_files").count_documents({}) == 0
            assert _names(folder) == {TOKEN_FILE}
            np.testing.assert_array_equal(planted.find_parameters()[0], weights)
            planted.close()
            with warnings.catch_warnings(record=True) as again:
                warnings.simplefilter("always")
                tensorlab.connect(mongo_uri, db=db_name).close()
            assert not [w for w in again if "payload files" in str(w.message)]  # said once per process
        finally:
            db.client.drop_database(db_name)
