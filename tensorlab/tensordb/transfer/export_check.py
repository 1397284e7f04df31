"""Reading an export folder, and checking all of it before an import writes anything.

`manifest.json` (format 3) lists every file of the folder with its SHA-256 and size, each collection's
document count and a digest of its documents' content hashes, and the payload count. Before the first
write, an import checks every file's size and hash, decodes every document, compares each collection's
digest and count with the manifest, and checks every payload's CRC-32 (from its own metadata, or from the
sample chunk that names it) and that every payload a document names is there. Manifests of format 2 have
no file hashes: they get the decode, digest and payload pass alone. Any mismatch raises IntegrityError
naming the file (and the document's index when it is known): an export damaged on a disk or in transit
is refused whole, never half imported.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bson

from ...errors import IntegrityError, InvalidInput
from ..payloads import codec
from .study_copy import DERIVED, PRIMARY, document_hash

MANIFEST = "manifest.json"
FORMAT_VERSION = 3  # 3: `files` (SHA-256 and size of every file); 2: counts, digests and payloads only
FILES, CHUNKS, STATE_FILE = "blobs.files.bson", "blobs.chunks.bson", "state.bson"
MAX_DOCUMENT_BYTES = 64 * 1024 * 1024  # far above any document TensorLab writes (16 MB is MongoDB's limit)
HASH_BLOCK = 1 << 20
REDO = "Nothing was imported. Export the study again, or copy the export folder again from a good copy."


def collection_file(name: str) -> str:
    return f"{name}.bson"


# Files of collections added after exports were first written: an export from before them lacks them (it had no
# such documents), and still imports.
ADDED_LATER = {collection_file("environments"), collection_file("sources")}


def every_file() -> list[str]:
    """The files an export writes besides the manifest."""
    return [*(collection_file(name) for name in (*PRIMARY, *DERIVED)), STATE_FILE, FILES, CHUNKS]


def collection_digest(hashes: list[str]) -> str:
    """One digest of a collection's documents, whatever order they are read in."""
    return hashlib.sha256("".join(sorted(hashes)).encode()).hexdigest()


def file_digest(path: Path) -> tuple[str, int]:
    """(SHA-256 hex, size in bytes) of a file."""
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as handle:
        while block := handle.read(HASH_BLOCK):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def read_manifest(folder: Path) -> dict[str, Any]:
    """The folder's manifest, checked for the keys an import needs; InvalidInput saying what is wrong."""
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise InvalidInput(f"{folder} has no {MANIFEST}: not a finished `tensorlab export`.") from None
    except OSError as error:
        raise InvalidInput(f"Cannot read {path}: {error.strerror or error}.") from None
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError
        raise InvalidInput(f"{path} is not JSON ({error}); the export is damaged. {REDO}") from None
    if not isinstance(manifest, dict):
        raise InvalidInput(f"{path} holds {type(manifest).__name__}, not a manifest object. {REDO}")
    wanted = {"study": str, "counts": dict, "digests": dict}
    if manifest.get("format", 0) >= 3:
        wanted["files"] = dict
    wrong = [key for key, kind in wanted.items() if not isinstance(manifest.get(key), kind)]
    if wrong or not manifest["study"]:
        raise InvalidInput(f"{path} lacks {', '.join(wrong or ['study'])} (or has the wrong type); it was not "
                           f"written by `tensorlab export` or is damaged. {REDO}")
    if not isinstance(manifest.get("format", 0), int) or manifest.get("format", 0) > FORMAT_VERSION:
        raise InvalidInput(f"{folder} was exported by a newer TensorLab (format {manifest.get('format')!r}); "
                           "upgrade TensorLab to import it.")
    return manifest


def read_documents(path: Path) -> Iterator[dict[str, Any]]:
    """The BSON documents of an export file, in order (none when the file is absent); IntegrityError naming the
    file and the document's index for a truncated file or a document that does not decode."""
    if not path.exists():
        return
    with path.open("rb") as handle:
        index = 0
        while head := handle.read(4):
            size = int.from_bytes(head, "little")
            body = handle.read(size - 4) if 5 <= size <= MAX_DOCUMENT_BYTES else b""
            if len(head) < 4 or len(body) != size - 4:
                raise IntegrityError(f"Export file {path} is truncated or corrupt at document {index} (its length "
                                     f"field says {size} bytes). {REDO}")
            try:
                yield bson.decode(head + body)
            except (bson.errors.BSONError, ValueError, OverflowError) as error:
                raise IntegrityError(f"Export file {path} is corrupt: document {index} does not decode ({error}). "
                                     f"{REDO}") from None
            index += 1


def payloads(folder: Path) -> Iterator[tuple[dict[str, Any], bytes]]:
    """(GridFS files document, bytes) of every payload in the export: chunks follow their file in order."""
    chunks = read_documents(folder / CHUNKS)
    for doc in read_documents(folder / FILES):
        parts = []
        for n, chunk_id in enumerate((doc.get("metadata") or {}).get("chunk_ids") or []):
            chunk = next(chunks, None)
            if chunk is None or chunk.get("_id") != chunk_id or chunk.get("files_id") != doc["_id"] or \
                    chunk.get("n") != n:
                raise IntegrityError(f"Export file {folder / CHUNKS} does not hold chunk {n} of payload {doc['_id']} "
                                     f"where {FILES} says it is (missing or out of order). {REDO}")
            parts.append(bytes(chunk["data"]))
        yield doc, b"".join(parts)
    if next(chunks, None) is not None:
        raise IntegrityError(f"Export file {folder / CHUNKS} holds chunks that no payload of {FILES} names. {REDO}")


def check_export(folder: Path, manifest: dict[str, Any]) -> None:
    """Everything an import will read, checked against the manifest (see the module's docstring)."""
    if "files" in manifest:
        _check_files(folder, manifest["files"])
    crcs, named = _check_collections(folder, manifest)
    _check_payloads(folder, manifest, crcs, named)
    for _entry in read_documents(folder / STATE_FILE):
        pass


def _check_files(folder: Path, listed: dict[str, Any]) -> None:
    unlisted = [name for name in every_file() if name not in listed and name not in ADDED_LATER]
    if unlisted:
        raise IntegrityError(f"{folder / MANIFEST} does not list {', '.join(unlisted[:3])}. {REDO}")
    for name, entry in listed.items():
        path = folder / name
        if Path(name).name != name or not isinstance(entry, dict):
            raise IntegrityError(f"{folder / MANIFEST} lists {name!r}, which is not a file of the export. {REDO}")
        try:
            digest, size = file_digest(path)
        except FileNotFoundError:
            raise IntegrityError(f"Export file {path} is missing. {REDO}") from None
        except OSError as error:
            raise InvalidInput(f"Cannot read {path}: {error.strerror or error}.") from None
        if size != entry.get("bytes"):
            raise IntegrityError(f"Export file {path} has {size:,} bytes; the manifest says {entry.get('bytes')!r}: "
                                 f"it is truncated or was changed. {REDO}")
        if digest != entry.get("sha256"):
            raise IntegrityError(f"Export file {path} does not match its SHA-256 in the manifest: it was damaged or "
                                 f"changed after the export. {REDO}")


def _check_collections(folder: Path, manifest: dict[str, Any]) -> tuple[dict[Any, int], set[Any]]:
    """Decode every document; each collection's count and digest against the manifest. Returns the CRC-32 that
    sample chunks record for their payloads, and every payload the documents name."""
    crcs: dict[Any, int] = {}
    named: set[Any] = set()
    for name in (*PRIMARY, *DERIVED):
        path = folder / collection_file(name)
        hashes = []
        for doc in read_documents(path):
            hashes.append(document_hash(doc))
            for part in ("x", "y") if name == "sample_chunk_data" else ():
                if isinstance(doc.get(part), dict) and doc[part].get("file") is not None:
                    named.add(doc[part]["file"])
                    crcs[doc[part]["file"]] = doc[part].get("crc32")
            for entry in (doc.get("arrays") or []) if name == "parameters" else ():
                named.add(entry.get("blob"))
        expected = manifest["counts"].get(name, 0)
        if len(hashes) != expected:
            raise IntegrityError(f"Export file {path} holds {len(hashes):,} documents; the manifest says {expected!r}. "
                                 f"{REDO}")
        if hashes and manifest["digests"].get(name) != collection_digest(hashes):
            raise IntegrityError(f"Export file {path}: its documents do not match the manifest's digest (a document "
                                 f"was changed after the export). {REDO}")
    return crcs, named


def _check_payloads(folder: Path, manifest: dict[str, Any], crcs: dict[Any, int], named: set[Any]) -> None:
    found = set()
    for doc, payload in payloads(folder):
        expected = (doc.get("metadata") or {}).get("crc32", crcs.get(doc["_id"]))
        if len(payload) != doc.get("length") or (expected is not None and codec.checksum(payload) != expected):
            raise IntegrityError(f"Payload {doc['_id']} in {folder / CHUNKS} is corrupt (its length or CRC-32 does "
                                 f"not match). {REDO}")
        found.add(doc["_id"])
    missing = named - found
    if missing:
        raise IntegrityError(f"Payload {sorted(map(str, missing))[0]} (and {len(missing) - 1} more) is named by the "
                             f"export's documents but not in {folder / FILES}. {REDO}")
    if len(found) != manifest.get("payloads", len(found)):
        raise IntegrityError(f"{folder / FILES} holds {len(found):,} payloads; the manifest says "
                             f"{manifest.get('payloads')!r}. {REDO}")
