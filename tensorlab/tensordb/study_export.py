"""A study as a folder of files, for moving a lab where no network reaches: `tensorlab export` / `import`.

The folder is what `mongodump --db <db>` writes for those documents: one `<collection>.bson` file of
concatenated BSON documents per collection, so `mongorestore` and `bson.decode_file_iter` read it too.
Payloads travel as a standard GridFS bucket (`blobs.files.bson`, `blobs.chunks.bson`), whatever store
they came from; chunks follow their files in order, so both are read in one pass. `manifest.json`
lists each collection's count and a digest of its documents' content hashes, checked after an import.
Importing inserts only what the target lacks, so an interrupted import is finished by running it again.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import bson

from ..errors import IntegrityError, InvalidInput
from .blobstore import CHUNK_SIZE_BYTES
from .study_copy import (
    DERIVED,
    PRIMARY,
    CopyReport,
    counters_and_markers,
    document_hash,
    insert_missing,
    intact,
    payload_ids,
    portable_metadata,
    progress_bar,
)

MANIFEST = "manifest.json"
FORMAT_VERSION = 2
FILES, CHUNKS = "blobs.files.bson", "blobs.chunks.bson"


class _BsonWriter:
    """Appends documents to `<name>.bson` through a temporary file renamed on close (all or nothing)."""

    def __init__(self, folder: Path, name: str) -> None:
        self.final = folder / name
        self.temporary = folder / f".{name}.tmp"
        self.handle = self.temporary.open("wb")
        self.count = 0

    def write(self, doc: dict[str, Any]) -> None:
        self.handle.write(bson.encode(doc))
        self.count += 1

    def close(self) -> None:
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        self.temporary.replace(self.final)


def export_study(source: Any, folder: str | Path, progress: bool = True) -> dict[str, Any]:
    """Write `source`'s study into `folder` (created; must be empty); returns the manifest."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if any(folder.iterdir()):
        raise InvalidInput(f"Export folder {folder} is not empty; export into a new folder.")
    study, digests, counts = source.study, {}, {}
    for name in (*PRIMARY, *DERIVED):
        writer, query, hashes = _BsonWriter(folder, f"{name}.bson"), {"study": study}, []
        with progress_bar(source.db[name].count_documents(query), name, progress) as bar:
            for doc in source.db[name].find(query):
                writer.write(doc)
                hashes.append(document_hash(doc))
                bar.update()
        writer.close()
        counts[name], digests[name] = writer.count, collection_digest(hashes)
    state = _BsonWriter(folder, "state.bson")
    for name, doc in counters_and_markers(source.db, study):
        state.write({"collection": name, "doc": doc})
    state.close()
    payloads = _export_payloads(source, folder, progress)
    manifest = {"format": FORMAT_VERSION, "study": study, "database": source.db_name, "source": source.uri,
                "exported": datetime.now(timezone.utc).isoformat(), "counts": counts, "digests": digests,
                "payloads": payloads}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return manifest


def _export_payloads(source: Any, folder: Path, progress: bool) -> int:
    ids = list(dict.fromkeys(payload_ids(source.db, source.study)))
    files, chunks = _BsonWriter(folder, FILES), _BsonWriter(folder, CHUNKS)
    with progress_bar(len(ids), "payloads", progress) as bar:
        for file_id in ids:
            found = source.blobs.stored(file_id)
            if found is None:
                raise IntegrityError(f"Payload {file_id} is named by study {source.study!r} but missing; run "
                                     "`tensorlab db fsck` first.")
            doc, payload = found
            view = memoryview(payload)
            count = max(1, -(-len(view) // CHUNK_SIZE_BYTES)) if len(view) else 0
            chunk_ids = [f"{file_id}:{n}" for n in range(count)]
            for n, chunk_id in enumerate(chunk_ids):
                chunks.write({"_id": chunk_id, "files_id": file_id, "n": n,
                              "data": bson.Binary(bytes(view[n * CHUNK_SIZE_BYTES:(n + 1) * CHUNK_SIZE_BYTES]))})
            metadata = {**portable_metadata(doc), "chunk_ids": chunk_ids}
            files.write({"_id": file_id, "length": len(view), "chunkSize": CHUNK_SIZE_BYTES,
                         "uploadDate": doc.get("uploadDate") or datetime.now(timezone.utc),
                         "filename": doc.get("filename") or str(file_id), "metadata": metadata})
            bar.update()
    files.close()
    chunks.close()
    return files.count


def collection_digest(hashes: list[str]) -> str:
    """One digest of a collection's documents, whatever order they are read in."""
    return hashlib.sha256("".join(sorted(hashes)).encode()).hexdigest()


def _documents(path: Path) -> Iterator[dict[str, Any]]:
    if path.exists():
        with path.open("rb") as handle:
            yield from bson.decode_file_iter(handle)


def import_study(folder: str | Path, target: Any, progress: bool = True) -> CopyReport:
    """Load an exported study into `target` (connected to the same study name); checked against the manifest."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except FileNotFoundError:
        raise InvalidInput(f"{folder} has no {MANIFEST}: not a finished `tensorlab export`.") from None
    if manifest.get("format", 0) > FORMAT_VERSION:
        raise InvalidInput(f"{folder} was exported by a newer TensorLab (format {manifest['format']}); upgrade.")
    if manifest["study"] != target.study:
        raise InvalidInput(f"{folder} holds study {manifest['study']!r}; connect with study={manifest['study']!r}.")
    report = CopyReport(target.study)
    target.blobs.collect_dead_writes()
    report.payloads_copied = _import_payloads(folder, target, manifest.get("payloads", 0), progress)
    query = {"study": target.study}
    for name in (*PRIMARY, *DERIVED):
        with progress_bar(manifest["counts"].get(name, 0), name, progress) as bar:
            report.inserted[name] = insert_missing(target.db[name], _documents(folder / f"{name}.bson"), query, bar)
    for entry in _documents(folder / "state.bson"):
        target.db[entry["collection"]].replace_one({"_id": entry["doc"]["_id"]}, entry["doc"], upsert=True)
    _check_against_manifest(manifest, target, report)
    return report


def _import_payloads(folder: Path, target: Any, total: int, progress: bool) -> int:
    copied = 0
    chunks = _documents(folder / CHUNKS)
    with progress_bar(total, "payloads", progress) as bar:
        for doc in _documents(folder / FILES):
            parts = [next(chunks) for _ in doc["metadata"]["chunk_ids"]]  # in lockstep: chunks follow their file
            bar.update()
            if target.blobs.is_stored(doc["_id"]):
                continue
            payload = b"".join(bytes(part["data"]) for part in parts)
            if not intact(doc, payload):
                raise IntegrityError(f"Payload {doc['_id']} in {folder} is corrupt (checksum mismatch).")
            target.blobs.put_bytes(doc["filename"], payload, portable_metadata(doc), file_id=doc["_id"])
            copied += 1
    return copied


def _check_against_manifest(manifest: dict[str, Any], target: Any, report: CopyReport) -> None:
    for name in (*PRIMARY, *DERIVED):
        hashes = [document_hash(doc) for doc in target.db[name].find({"study": target.study})]
        if manifest["digests"].get(name) != collection_digest(hashes):
            report.problems.append(f"{name}: the target's documents differ from the export")
        report.counts[name] = (manifest["counts"].get(name, 0), len(hashes))
    for file_id in payload_ids(target.db, target.study):
        found = target.blobs.stored(file_id)
        if found is None or not intact(*found):
            report.problems.append(f"payload {file_id} is missing or corrupt on the target")
        else:
            report.payloads_verified += 1
