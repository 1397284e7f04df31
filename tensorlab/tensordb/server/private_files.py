"""Files and folders only their owner can reach: TensorLab's home, the managed server's state, log and data,
the payload files beside it.

Everything is created 0700 (folders) or 0600 (files) by explicit modes, never by changing the process's
umask (which every thread shares); what older versions left looser is tightened when the server starts.
A folder that someone else could write is never used for payloads (`folder_problem`).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600
_OTHERS = 0o077  # any permission for the group or for other users


def private_dir(path: Path) -> None:
    """Create `path` 0700, and its missing parents 0700 too (existing parents are left as they are); an
    existing `path` is made 0700. PermissionError when it belongs to another user."""
    path = Path(path)
    if not path.parent.exists():
        private_dir(path.parent)
    try:
        path.mkdir(mode=DIR_MODE)  # the umask can only remove bits from this, hence the chmod below
    except FileExistsError:
        pass
    if stat.S_IMODE(path.stat().st_mode) != DIR_MODE:
        os.chmod(path, DIR_MODE)


def open_private(path: Path, flags: int) -> int:
    """A descriptor of `path` opened with `flags` (os.O_WRONLY, ...), created 0600; an existing file of this
    user is made 0600."""
    descriptor = os.open(path, flags | os.O_CREAT, FILE_MODE)
    try:
        if stat.S_IMODE(os.fstat(descriptor).st_mode) != FILE_MODE:
            os.fchmod(descriptor, FILE_MODE)
    except PermissionError:
        pass  # another user's file that we may write: its owner decides its mode
    return descriptor


def write_private(path: Path, data: bytes) -> None:
    """Write `data` to `path` (0600), replacing what it held."""
    with os.fdopen(open_private(path, os.O_WRONLY | os.O_TRUNC), "wb") as handle:
        handle.write(data)


def tighten_tree(root: Path) -> int:
    """Take every group and other permission from `root`'s folders (0700) and files (0600), never following a
    symbolic link; returns how many were changed. What vanishes meanwhile or is not ours is skipped."""
    changed = 0
    for folder, _folders, files in os.walk(root):
        for path in (folder, *(os.path.join(folder, name) for name in files)):
            try:
                mode = os.lstat(path).st_mode
                if stat.S_ISLNK(mode) or not mode & _OTHERS:
                    continue
                os.chmod(path, DIR_MODE if stat.S_ISDIR(mode) else
                         FILE_MODE if stat.S_ISREG(mode) else stat.S_IMODE(mode) & ~_OTHERS)
                changed += 1
            except OSError:
                continue
    return changed


def folder_problem(folder: Path) -> str | None:
    """Why `folder` may not hold this user's payloads, or None when it may: it must be a folder itself (not a
    symbolic link), owned by this user, with no permission for the group or other users."""
    try:
        info = os.lstat(folder)
    except OSError as error:
        return f"cannot be examined ({error.strerror})"
    if not stat.S_ISDIR(info.st_mode):
        return "is not a folder (a symbolic link or another kind of file)"
    if info.st_uid != os.getuid():
        return f"belongs to uid {info.st_uid}, not to this user (uid {os.getuid()})"
    if info.st_mode & _OTHERS:
        return (f"has mode {stat.S_IMODE(info.st_mode):04o}, so other users could read or replace its payloads "
                "(0700 expected)")
    return None
