"""Large payloads as plain files beside the managed server's data, instead of base64 inside its JSON.

FerretDB's SQLite backend stores every document as JSON, so a binary payload travels as base64 and is
parsed by Go on every read: 100 MB of parameters took 4.8 s to save and load through GridFS, against
0.75 s as files. The managed server binds 127.0.0.1 only, so every client of it runs on the machine that
holds its data folder and can read the files directly.

The server manager advertises the store in the server itself (server/payload_advert.py:
`tensorlab_server.payload_store`, one document read by `_id`) and writes the same random token into the
store's folder; a client (`discover`, here) uses the files only when it finds that token there, so a folder
of the same name on another machine, or a copy of an old one, is never mistaken for the store. Nor is a
folder that another user owns or could write (a planted advert on a shared server must not send payloads
there): the store's folder must be this user's own, mode 0700 (server/private_files.py), else payloads go
to GridFS with a warning. MongoDB and Atlas advertise nothing:
payloads stay in GridFS. Folders are created 0700 and files 0600.

Files are written to a temporary name, fsynced, renamed and the folder fsynced, so a crash leaves
either the whole file or none. Which payload a file holds, its length and its CRC-32 are in a document
of `payload_files` (written after the file, like a GridFS files document), so integrity checks, copies
and exports treat file payloads and GridFS payloads alike.
"""

from __future__ import annotations

import os
import re
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pymongo.errors import PyMongoError

from ...errors import IntegrityError, TensorLabError
from ..server.payload_advert import ADVERT, ADVERT_ID, SERVER_DB, TOKEN_FILE
from ..server.private_files import folder_problem, open_private, private_dir

_SAFE_NAME = re.compile(r"^[0-9A-Za-z_-]{1,128}$")
_warned: set[tuple[str, str]] = set()  # (folder, problem) already reported by this process


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class PayloadFiles:
    """One database's payload files: `<root>/<database>/<first two characters>/<name>`."""

    def __init__(self, root: Path, database: str) -> None:
        self.root = Path(root)
        self.folder = self.root / database

    def __repr__(self) -> str:
        return f"PayloadFiles({str(self.folder)!r})"

    def path(self, name: str) -> Path:
        if not _SAFE_NAME.match(name):  # names come from documents: never let one point outside the store
            raise IntegrityError(f"Payload file name {name!r} is not a store name; the document naming it is "
                                 "corrupt or was not written by TensorLab.")
        return self.folder / name[:2] / name

    def write(self, name: str, payload: bytes | memoryview) -> None:
        """Write atomically and durably: the whole file under `name`, or nothing."""
        final = self.path(name)
        private_dir(final.parent)
        temporary = final.with_name(f".{name}.{uuid.uuid4().hex}.tmp")
        try:
            with os.fdopen(open_private(temporary, os.O_WRONLY | os.O_EXCL), "wb") as handle:
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, final)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        _fsync_folder(final.parent)

    def read(self, name: str) -> bytearray:
        """The file's bytes, in a bytearray: raw arrays are then used in place, without another copy."""
        try:
            with open(self.path(name), "rb", buffering=0) as handle:
                size = os.fstat(handle.fileno()).st_size
                data = bytearray(size)
                got = handle.readinto(data)
            return data if got == size else data[:got]
        except FileNotFoundError:
            raise IntegrityError(f"Payload file {self.path(name)} is missing; its document says it was stored. "
                                 "Restore the file from a copy, or delete and re-import the item.") from None

    def exists(self, name: str) -> bool:
        return self.path(name).exists()

    def delete(self, name: str) -> None:
        self.path(name).unlink(missing_ok=True)

    def delete_temporaries(self, name: str) -> int:
        """Remove half-written temporaries of `name` (left by a killed writer); returns how many."""
        removed = 0
        for temporary in self.path(name).parent.glob(f".{name}.*.tmp"):
            temporary.unlink(missing_ok=True)
            removed += 1
        return removed

    def names(self) -> list[str]:
        """Every stored file's name (fsck compares them with the documents)."""
        return [path.name for path in self.folder.glob("??/*") if not path.name.startswith(".")]

    def temporaries(self) -> list[Path]:
        return list(self.folder.glob("??/.*.tmp"))


@dataclass(frozen=True)
class StoreAdvert:
    """What the server says about its file store; `files` is None when this process cannot reach it."""

    root: str
    host: str
    files: PayloadFiles | None
    problem: str | None = None  # why a folder that exists here is not used (see `folder_problem`)

    def unreachable_error(self, name: str) -> TensorLabError:
        why = f"which is not used because it {self.problem}" if self.problem else "which this process cannot read"
        return TensorLabError(
            f"Payload {name} is stored as a file beside the managed server ({self.root} on host {self.host!r}), "
            f"{why}. Run on that machine, or copy the lab to a server that keeps "
            "payloads in GridFS (MongoDB/Atlas).")


def discover(client: Any, database: str, adverts: str = ADVERT) -> StoreAdvert | None:
    """The file store the server advertises (None on MongoDB/Atlas, or where the advert cannot be read)."""
    try:
        advert = client[SERVER_DB][adverts].find_one({"_id": ADVERT_ID})
    except PyMongoError:  # e.g. a user without rights on that database: payloads go to GridFS
        return None
    if not advert or not isinstance(advert.get("root"), str):
        return None
    root = Path(advert["root"])
    if not os.path.lexists(root):  # another machine's store: reads say so, writes go to GridFS
        return StoreAdvert(advert["root"], str(advert.get("host")), None)
    problem = folder_problem(root)  # before reading anything in it
    if problem is not None:
        _warn_once(root, problem)
        return StoreAdvert(advert["root"], str(advert.get("host")), None, problem)
    try:
        reachable = (root / TOKEN_FILE).read_text() == advert.get("token")
    except OSError:
        reachable = False
    return StoreAdvert(advert["root"], str(advert.get("host")), PayloadFiles(root, database) if reachable else None)


def _warn_once(root: Path, problem: str) -> None:
    if (str(root), problem) in _warned:
        return
    _warned.add((str(root), problem))
    warnings.warn(f"TensorLab: the server advertises payload files in {root}, which is not used because it "
                  f"{problem}; payloads go to GridFS. (`tensorlab server start` makes its own store private.)",
                  RuntimeWarning, stacklevel=4)
