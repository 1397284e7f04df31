"""A study as a folder of files, for moving a lab where no network reaches: `tensorlab export` / `import`.

The folder is what `mongodump --db <db>` writes for those documents: one `<collection>.bson` file of
concatenated BSON documents per collection, so `mongorestore` and `bson.decode_file_iter` read it too.
Payloads travel as a standard GridFS bucket (`blobs.files.bson`, `blobs.chunks.bson`), whatever store
they came from; chunks follow their files in order, so both are read in one pass. `manifest.json`
(written last) lists every file's SHA-256 and size, each collection's count and a digest of its documents'
content hashes. An import checks all of it before writing anything (export_check.py), then fills the study
as a copy does (study_copy.py): hidden behind a transfer marker, primary documents where the target lacks
them, derived lists replaced, verified; an interrupted import is finished by running it again.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import bson

from ...errors import IntegrityError, InvalidInput
from ..documents.build_markers import STATE
from ..documents.transfer_marker import Transfer, check_ready, origin, server_lost
from ..payloads.blobstore import CHUNK_SIZE_BYTES
from .export_check import (
    CHUNKS,
    FILES,
    FORMAT_VERSION,
    MANIFEST,
    STATE_FILE,
    check_export,
    collection_digest,
    collection_file,
    payloads,
    read_documents,
    read_manifest,
)
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
    put_derived,
    reconcile,
    verified_collections,
)


class _BsonWriter:
    """Appends documents to `<name>` through a temporary file renamed on close (all or nothing), keeping the
    SHA-256 and size of what it wrote for the manifest."""

    def __init__(self, folder: Path, name: str) -> None:
        self.name = name
        self.final = folder / name
        self.temporary = folder / f".{name}.tmp"
        self.handle = self.temporary.open("wb")
        self.count = self.size = 0
        self.digest = hashlib.sha256()

    def write(self, doc: dict[str, Any]) -> None:
        data = bson.encode(doc)
        self.handle.write(data)
        self.digest.update(data)
        self.size += len(data)
        self.count += 1

    def close(self, files: dict[str, Any]) -> None:
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        self.temporary.replace(self.final)
        files[self.name] = {"sha256": self.digest.hexdigest(), "bytes": self.size}


def _prepare(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise InvalidInput(f"Export folder {folder} is an existing file; name a new folder (it is created).")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if any(folder.iterdir()):
            raise InvalidInput(f"Export folder {folder} is not empty; export into a new folder.")
    except OSError as error:
        raise InvalidInput(f"Cannot create the export folder {folder}: {error.strerror or error}. Choose a folder "
                           "you can write to.") from None


def export_study(source: Any, folder: str | Path, progress: bool = True) -> dict[str, Any]:
    """Write `source`'s study into `folder` (created; must be empty); returns the manifest."""
    folder = Path(folder)
    check_ready(source.db[STATE], source.db_name, source.study)  # never export a half-copied study
    _prepare(folder)
    try:
        return _export(source, folder, progress)
    except OSError as error:
        raise InvalidInput(f"Cannot write the export into {folder}: {error.strerror or error}. Choose a folder "
                           "you can write to (with enough space) and export again.") from None


def _export(source: Any, folder: Path, progress: bool) -> dict[str, Any]:
    study, digests, counts, files = source.study, {}, {}, {}
    for name in (*PRIMARY, *DERIVED):
        writer, query, hashes = _BsonWriter(folder, collection_file(name)), {"study": study}, []
        with progress_bar(source.db[name].count_documents(query), name, progress) as bar:
            for doc in source.db[name].find(query):
                writer.write(doc)
                hashes.append(document_hash(doc))
                bar.update()
        writer.close(files)
        counts[name], digests[name] = writer.count, collection_digest(hashes)
    state = _BsonWriter(folder, STATE_FILE)
    for name, doc in counters_and_markers(source.db, study):
        state.write({"collection": name, "doc": doc})
    state.close(files)
    count = _export_payloads(source, folder, progress, files)
    manifest = {"format": FORMAT_VERSION, "study": study, "database": source.db_name, "source": source.uri,
                "exported": datetime.now(timezone.utc).isoformat(), "counts": counts, "digests": digests,
                "payloads": count, "files": files}
    temporary = folder / f".{MANIFEST}.tmp"  # the manifest last, whole: its presence means a finished export
    temporary.write_text(json.dumps(manifest, indent=1))
    temporary.replace(folder / MANIFEST)
    return manifest


def _export_payloads(source: Any, folder: Path, progress: bool, files_listed: dict[str, Any]) -> int:
    ids = list(dict.fromkeys(payload_ids(source.db, source.study)))
    files, chunks = _BsonWriter(folder, FILES), _BsonWriter(folder, CHUNKS)
    with progress_bar(len(ids), "payloads", progress) as bar:
        for file_id in ids:
            found = source.blobs.stored(file_id)
            if found is None:
                raise IntegrityError(f"Payload {file_id} is named by study {source.study!r} but missing; run "
                                     "`tensorlab db fsck` first.")
            doc, payload = found
            if not intact(doc, payload):
                raise IntegrityError(f"Payload {file_id} is corrupt on the source (checksum mismatch); nothing "
                                     "exported. Run `tensorlab db fsck` there.")
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
    files.close(files_listed)
    chunks.close(files_listed)
    return files.count


def import_study(folder: str | Path, target: Any, progress: bool = True, merge: bool = False) -> CopyReport:
    """Load an exported study into `target` (connected to the same study name). The whole export is checked
    before the first write (IntegrityError naming what is damaged); the study stays hidden (StudyNotReady) until
    the import is complete and verified. `merge`: import into a study that holds other documents too."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    study = manifest["study"]
    if study != target.study:
        raise InvalidInput(f"{folder} holds study {study!r}; connect with study={study!r}.")
    transfer = Transfer(target, "import", origin(manifest.get("source", "?"), manifest.get("database", "?"), study),
                        str(folder.resolve()))
    with server_lost(f"the import of study {study!r}"):
        transfer.check(PRIMARY, merge)
        check_export(folder, manifest)  # nothing is written before the whole export passed
        transfer.begin()
        report = _load(folder, manifest, target, progress, merge)
        if report.ok:
            transfer.finish(verified=True)
    return report


def _load(folder: Path, manifest: dict[str, Any], target: Any, progress: bool, merge: bool) -> CopyReport:
    report, query = CopyReport(target.study), {"study": target.study}
    target.blobs.collect_dead_writes()  # leftovers of an import killed while writing a payload
    report.payloads_copied = _import_payloads(folder, target, manifest.get("payloads", 0), progress)
    for name in PRIMARY:
        with progress_bar(manifest["counts"].get(name, 0), name, progress) as bar:
            documents = read_documents(folder / collection_file(name))
            report.inserted[name] = insert_missing(target.db[name], documents, query, bar)
    state = [(entry["collection"], entry["doc"]) for entry in read_documents(folder / STATE_FILE)
             if entry.get("collection") in ("counters", STATE)]
    put_derived(target.db, target.study, lambda name: read_documents(folder / collection_file(name)), state, merge)
    for name, extras_allowed in verified_collections(merge):
        path = folder / collection_file(name)
        hashes = {doc["_id"]: document_hash(doc) for doc in read_documents(path)}
        reconcile(report, name, target.db[name], query, hashes,
                  lambda ids, path=path: (doc for doc in read_documents(path) if doc["_id"] in ids), extras_allowed)
    for file_id in dict.fromkeys(payload_ids(target.db, target.study)):
        found = target.blobs.stored(file_id)
        if found is None or not intact(*found):
            report.problems.append(f"payload {file_id} is missing or corrupt on the target")
        else:
            report.payloads_verified += 1
    return report


def _import_payloads(folder: Path, target: Any, total: int, progress: bool) -> int:
    copied = 0
    with progress_bar(total, "payloads", progress) as bar:
        for doc, payload in payloads(folder):
            bar.update()
            if target.blobs.is_stored(doc["_id"]):
                continue
            if not intact(doc, payload):  # checked before the first write; changed since?
                raise IntegrityError(f"Payload {doc['_id']} in {folder} is corrupt (checksum mismatch).")
            target.blobs.put_bytes(doc["filename"], payload, portable_metadata(doc), file_id=doc["_id"])
            copied += 1
    return copied
