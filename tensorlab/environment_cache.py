"""The installed-package list kept on disk between processes, so a new kernel's first fit does not pay for
reading every distribution's metadata (~180 ms with a full ML stack) before its run can start.

Source of truth: `importlib.metadata.distributions()` over `sys.path`. The cache file is trusted only when its
key matches: the interpreter, `sys.path` itself, and the modification time of every folder on it. Installing,
upgrading or removing a package adds or removes a `*.dist-info`/`*.egg-info` entry in its folder, which changes
that folder's mtime, so the next process reads the metadata again and rewrites the file. The file is written
atomically (a temporary file, then `os.replace`), so a process killed mid-write leaves the old file or none,
and an unreadable or foreign file is treated as absent, never as an error.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

FORMAT = 1


def cache_folder() -> Path:
    """$TENSORLAB_CACHE_DIR, else $XDG_CACHE_HOME/tensorlab, else ~/.cache/tensorlab."""
    chosen = os.environ.get("TENSORLAB_CACHE_DIR")
    if chosen:
        return Path(chosen)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tensorlab"


def environment_key() -> list[Any]:
    """What the package list depends on: the interpreter, sys.path, and each folder's mtime (ns)."""
    folders = []
    for entry in sys.path:
        try:
            folders.append([entry, os.stat(entry or ".").st_mtime_ns])
        except OSError:
            folders.append([entry, None])
    return [FORMAT, sys.executable, sys.version, folders]


def _cache_file(key: list[Any]) -> Path:
    # one file per interpreter and sys.path, so two venvs (or a kernel and a worker) never evict each other
    place = hashlib.sha256(json.dumps(key[:2] + [[entry for entry, _ in key[3]]]).encode()).hexdigest()[:16]
    return cache_folder() / f"environment-{place}.json"


def _read(path: Path, key: list[Any]) -> dict[str, Any] | None:
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(stored, dict) or stored.get("key") != key or not isinstance(stored.get("environment"), dict):
        return None
    return stored["environment"]


def _write(path: Path, key: list[Any], environment: dict[str, Any]) -> None:
    """Best effort: on a read-only home the list is simply read again next time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        out = tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=path.name, suffix=".tmp", delete=False)
    except OSError:
        return
    try:
        with out:
            json.dump({"key": key, "environment": environment}, out)
        os.replace(out.name, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(out.name)


def cached_environment(read: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """`read()`'s answer from the cache file when its key still matches, else read and stored."""
    key = environment_key()
    path = _cache_file(key)
    found = _read(path, key)
    if found is not None:
        return found
    found = read()
    _write(path, key, found)
    return found
