"""Content-addressed blobs in GridFS: one file per distinct content, whose `_id` is its hash.

The hash is the file's `_id` (and its filename, for tools that list by name), so the dedup check of a
save and every load are lookups by `_id`, which cost the same with 10 blobs or 100,000 on any server.
Files written before this layout have an ObjectId `_id` and the hash as filename; they are still found.

Identical parameter arrays (frozen layers, repeated checkpoints) are stored once; callers delete a
blob only after checking that no document refers to it any more (`collect_garbage`).

Files follow the GridFS spec (chunks first, the files document last, so a half-written upload is
invisible), and the files document also lists its chunks' `_id`s. Reading by `_id` is the one
lookup every MongoDB-protocol server answers without a collection scan (FerretDB 1.x pushes down
nothing else), so reads cost the file's size, not the bucket's. Files written by other GridFS
clients have no such list and are read by `files_id`.

Beside the managed server, payloads go to files instead (payload_files.py): a `payload_files` document
(same fields as a GridFS files document) names the file, and every read looks there first by `_id`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any

import gridfs
import numpy as np
from bson import Binary, ObjectId
from pymongo.errors import DuplicateKeyError

from ...errors import IntegrityError
from ..documents.run_liveness import HEARTBEAT_S
from . import codec
from .payload_files import StoreAdvert
from .pending_writes import PendingWrites

BUCKET = "blobs"
# Larger than GridFS's 255 KiB default (less per-document overhead), yet small enough that a driver's
# first batch of 101 chunks stays under 48 MB: FerretDB, unlike MongoDB, does not cap batches at 16 MB.
CHUNK_SIZE_BYTES = 384 * 1024
READ_BATCH = 32  # chunks per reply when we read files ourselves (12 MB), for the same reason
INSERT_GROUP = 16
READ_THREADS = 4
PAYLOAD_FILES = "payload_files"
PAYLOAD_WRITE = "payload"
FILE_MIN_BYTES = 64 * 1024  # beside a file store, payloads larger than this become files


class BlobStore:
    """Arrays in and out of GridFS, addressed by content hash."""

    def __init__(self, database: Any, advert: StoreAdvert | None = None, write_files: bool = True) -> None:
        self._bucket = gridfs.GridFSBucket(database, bucket_name=BUCKET, chunk_size_bytes=CHUNK_SIZE_BYTES)
        self._files = database[f"{BUCKET}.files"]
        self._chunks = database[f"{BUCKET}.chunks"]
        self._payload_docs = database[PAYLOAD_FILES]
        self._advert = advert  # the managed server's file store, when it has one
        self.local_files = advert.files if advert is not None else None
        self.uses_files = write_files and self.local_files is not None  # where new payloads go (else GridFS)
        self.pending = PendingWrites(database)
        self._indexed = False

    def put_array(self, array: np.ndarray, digest: str | None = None, covered: bool = False) -> str:
        """Store `array` unless identical content is already there; return its hash. `covered`: the caller's own
        pending record names this digest, so leftovers are found by it (see `remove_leftovers`)."""
        digest = digest or codec.content_hash(array)
        if self.is_stored(digest):
            return digest
        payload, meta = codec.encode(array)
        metadata = {**meta.to_doc(), "frames": codec.frame_count(array.nbytes), "nbytes": int(array.nbytes),
                    "crc32": codec.checksum(payload)}
        try:
            self.put_bytes(digest, payload, metadata, file_id=digest, covered=covered)
        except DuplicateKeyError:  # another process stored the same content at the same moment
            pass
        return digest

    def put_bytes(self, name: str, payload: bytes | memoryview, metadata: dict[str, Any],
                  file_id: Any = None, covered: bool = False) -> Any:
        """Write a payload (its `_id` is `file_id`, else a new ObjectId); returns the `_id`.

        What the write creates is recorded first (pending_writes.py), so that leftovers of a writer killed
        half-way are removed by the next save, or by `fsck`, without reading any payload. A `covered` write
        (its name is in the caller's record) that lands in one file or one GridFS chunk needs no record of its
        own: its leftovers have names derived from `file_id`. Small payloads go to GridFS even beside a file
        store: one document costs less than a file and two fsyncs."""
        file_id = ObjectId() if file_id is None else file_id
        if self.uses_files and len(payload) > FILE_MIN_BYTES:
            return self._put_file(name, payload, metadata, file_id, covered)
        self._ensure_indexes()
        view = memoryview(payload).cast("B")
        if covered and len(view) <= CHUNK_SIZE_BYTES:
            return self._put_single_chunk(name, view, metadata, file_id)
        chunk_ids = [ObjectId() for _ in range(max(1, -(-len(view) // CHUNK_SIZE_BYTES)))] if len(view) else []
        record = self.pending.begin(PAYLOAD_WRITE, file_id=file_id, chunk_ids=chunk_ids)
        try:
            beat_at = time.monotonic() + HEARTBEAT_S
            for group in range(0, len(chunk_ids), INSERT_GROUP):
                self._chunks.insert_many([
                    {"_id": chunk_ids[n], "files_id": file_id, "n": n,
                     "data": Binary(bytes(view[n * CHUNK_SIZE_BYTES:(n + 1) * CHUNK_SIZE_BYTES]))}
                    for n in range(group, min(group + INSERT_GROUP, len(chunk_ids)))], ordered=True)
                if time.monotonic() > beat_at:
                    self.pending.beat(record)
                    beat_at = time.monotonic() + HEARTBEAT_S
            self._files.insert_one({"_id": file_id, "length": len(view), "chunkSize": CHUNK_SIZE_BYTES,
                                    "uploadDate": datetime.now(timezone.utc), "filename": name,
                                    "metadata": {**metadata, "chunk_ids": chunk_ids}})
        except BaseException:
            self._delete_chunks(chunk_ids)  # only this write's chunks: a racing identical save keeps its own
            self.pending.end(record)
            raise
        self.pending.end(record)
        return file_id

    def _put_single_chunk(self, name: str, view: memoryview, metadata: dict[str, Any], file_id: Any) -> Any:
        """One chunk named `<file_id>:0`: rewriting it is harmless (same name, same content), so a retry after a
        killed attempt, or a racing identical save, just writes it again."""
        chunk_id = f"{file_id}:0"
        chunk = {"_id": chunk_id, "files_id": file_id, "n": 0, "data": Binary(bytes(view))}
        try:
            self._chunks.replace_one({"_id": chunk_id}, chunk, upsert=True)
        except DuplicateKeyError:  # a racing first upsert: the chunk exists now
            self._chunks.replace_one({"_id": chunk_id}, chunk)
        self._files.insert_one({"_id": file_id, "length": len(view), "chunkSize": CHUNK_SIZE_BYTES,
                                "uploadDate": datetime.now(timezone.utc), "filename": name,
                                "metadata": {**metadata, "chunk_ids": [chunk_id] if len(view) else []}})
        return file_id

    def remove_leftovers(self, file_id: Any) -> None:
        """What a killed `covered` write of `file_id` left (an unlisted file or chunk), unless it completed."""
        if self.is_stored(file_id):
            return
        self._chunks.delete_one({"_id": f"{file_id}:0"})
        if self.local_files is not None:
            self.local_files.delete(str(file_id))
            self.local_files.delete_temporaries(str(file_id))

    def _delete_chunks(self, chunk_ids: Iterable[Any]) -> None:
        for chunk_id in chunk_ids:
            self._chunks.delete_one({"_id": chunk_id})

    def _put_file(self, name: str, payload: bytes | memoryview, metadata: dict[str, Any], file_id: Any,
                  covered: bool) -> Any:
        """The file first, its document last: a crash in between leaves an unnamed file, never a dangling name."""
        assert self.local_files is not None
        if covered:
            self.local_files.write(str(file_id), payload)
            self._payload_docs.insert_one({"_id": file_id, "length": len(payload), "filename": name,
                                           "uploadDate": datetime.now(timezone.utc), "metadata": metadata})
            return file_id
        record = self.pending.begin(PAYLOAD_WRITE, file_id=file_id, in_files=True)
        try:
            self.local_files.write(str(file_id), payload)
            self._payload_docs.insert_one({"_id": file_id, "length": len(payload), "filename": name,
                                           "uploadDate": datetime.now(timezone.utc), "metadata": metadata})
        except DuplicateKeyError:  # an identical payload was listed meanwhile: the file is that one's too
            self.pending.end(record)
            raise
        except BaseException:
            self._clean_dead_write({"_id": record, "file_id": file_id, "in_files": True})
            self.pending.end(record)
            raise
        self.pending.end(record)
        return file_id

    def collect_dead_writes(self) -> int:
        """Remove what writers that died half-way left: chunks or a file that no document names."""
        return self.pending.collect_dead(PAYLOAD_WRITE, self._clean_dead_write)

    def _clean_dead_write(self, record: dict[str, Any]) -> None:
        file_id = record["file_id"]
        if self.is_stored(file_id):
            return  # the write finished (or a later identical one did): nothing is left over
        self._delete_chunks(record.get("chunk_ids") or [])
        writing = [other for other in self.pending.live({"file_id": file_id}) if other["_id"] != record["_id"]]
        if record.get("in_files") and self.local_files is not None and not writing:
            self.local_files.delete(str(file_id))  # named but never listed; a live identical write keeps it
            self.local_files.delete_temporaries(str(file_id))

    def _read_chunk(self, chunk_id: ObjectId) -> bytes:
        chunk = self._chunks.find_one({"_id": chunk_id})
        if chunk is None:
            raise IntegrityError(f"GridFS chunk {chunk_id} is missing (bucket {BUCKET!r}).")
        return bytes(chunk["data"])

    def _read(self, file: dict[str, Any]) -> bytes | bytearray:
        """A file's bytes, checked against its recorded length."""
        chunk_ids = (file.get("metadata") or {}).get("chunk_ids")
        if file.get("in_files"):
            if self.local_files is None:
                assert self._advert is not None
                raise self._advert.unreachable_error(str(file["_id"]))
            parts = [self.local_files.read(str(file["_id"]))]
        elif chunk_ids is not None:
            try:
                parts = self._read_listed(chunk_ids)
            except IntegrityError:  # re-uploaded by a standard GridFS client, which kept our metadata: its
                parts = self._read_standard(file["_id"])  # chunks have new ids, found by `files_id` as any reader does
        else:
            parts = self._read_standard(file["_id"])
        payload = parts[0] if len(parts) == 1 else b"".join(parts)
        if len(payload) != file["length"]:
            raise IntegrityError(f"Payload {file['_id']} has {len(payload)} of {file['length']} "
                                                "bytes; it is incomplete or being deleted.")
        return payload

    def _read_listed(self, chunk_ids: list[Any]) -> list[bytes]:
        """The fast path: chunks by the `_id`s the files document lists (one `_id` lookup each)."""
        if len(chunk_ids) <= 2:
            return [self._read_chunk(chunk_id) for chunk_id in chunk_ids]
        with ThreadPoolExecutor(READ_THREADS) as pool:
            return list(pool.map(self._read_chunk, chunk_ids))

    def _read_standard(self, file_id: Any) -> list[bytes]:
        """What every GridFS reader does: chunks by `files_id`, in `n` order (a scan on FerretDB 1.x)."""
        return [bytes(chunk["data"]) for chunk in self._chunks.find(
            {"files_id": file_id}, {"data": 1, "_id": 0}, sort=[("n", 1)], batch_size=READ_BATCH)]

    def is_stored(self, file_id: Any) -> bool:
        """Whether a document names this payload (a payload file's or a GridFS file's): its write completed."""
        return self._payload_doc(file_id) is not None or self._files.find_one({"_id": file_id}, {"_id": 1}) is not None

    def _payload_doc(self, file_id: Any) -> dict[str, Any] | None:
        """The `payload_files` document of a payload stored as a file (only looked for beside a file store)."""
        if self._advert is None:
            return None
        doc = self._payload_docs.find_one({"_id": file_id})
        return None if doc is None else {**doc, "in_files": True}

    def _file(self, digest: str) -> dict[str, Any] | None:
        """The files document of a blob: by `_id`; a blob of the first layout by filename (a scan, once)."""
        file = self._payload_doc(digest) or self._files.find_one({"_id": digest})
        if file is None:
            file = self._files.find_one({"filename": digest}, sort=[("uploadDate", -1)])
        return file

    def get_array(self, digest: str) -> np.ndarray:
        """The array stored under `digest` (raises gridfs.NoFile when absent)."""
        file = self._file(digest)
        if file is None:
            raise gridfs.errors.NoFile(f"No blob {digest} in GridFS bucket {BUCKET!r}.")
        meta = file.get("metadata") or {}
        what = f"Parameter blob {digest}"
        array = codec.verified_decode(self._read(file), codec.ArrayMeta.from_doc(meta), meta.get("frames", 1),
                                      meta.get("crc32"), what)
        if codec.content_hash(array) != digest:  # the name is the content's SHA-256: check it on every load
            raise IntegrityError(f"{what} is corrupt: its content no longer matches its SHA-256 name. Restore it "
                                 "from a copy or save the parameters again.")
        return array

    def stored(self, file_id: Any) -> tuple[dict[str, Any], bytes | bytearray] | None:
        """A payload's files document and bytes, whatever layout wrote it; None when it is not stored."""
        file = self._file(file_id)
        return None if file is None else (file, self._read(file))

    def get_bytes(self, file_id: Any) -> bytes | bytearray:
        file = self._payload_doc(file_id) or self._files.find_one({"_id": file_id})
        if file is None:
            raise gridfs.errors.NoFile(f"No GridFS file {file_id} in bucket {BUCKET!r}.")
        return self._read(file)

    def delete_by_id(self, file_id: Any) -> None:
        if self._payload_doc(file_id) is not None:  # the name first: a crash in between leaves an unnamed file
            self._payload_docs.delete_one({"_id": file_id})
            if self.local_files is not None:
                self.local_files.delete(str(file_id))
            return
        try:
            self._bucket.delete(file_id)
        except gridfs.errors.NoFile:
            pass

    def release_files(self, query: dict[str, Any]) -> int:
        """Unlink the payload files whose documents match `query`, keeping the documents (delete_matching removes
        them after): on a full disk the unlink frees the space those deletes need. Only for payloads nothing
        visible names (a rolled-back import)."""
        if self.local_files is None:
            return 0
        names = [str(doc["_id"]) for doc in self._payload_docs.find(query, {"_id": 1})]
        for name in names:
            self.local_files.delete(name)
        return len(names)

    def delete_matching(self, query: dict[str, Any]) -> int:
        """Delete every payload whose document matches `query` (e.g. an import's); reads the payload documents."""
        ids = [doc["_id"] for doc in self._payload_docs.find(query, {"_id": 1})]
        ids += [doc["_id"] for doc in self._files.find(query, {"_id": 1})]
        for file_id in ids:
            self.delete_by_id(file_id)
        return len(ids)

    def collect_garbage(self, digests: Iterable[str], is_referenced: Callable[[str], bool]) -> int:
        """Delete each blob in `digests` that nothing refers to; return how many files were removed."""
        removed = 0
        for digest in set(digests):
            if is_referenced(digest):
                continue
            file = self._file(digest)
            while file is not None:  # the content-addressed file, then any copies of the first layout
                self.delete_by_id(file["_id"])
                removed += 1
                file = self._file(digest)
        return removed

    def _ensure_indexes(self) -> None:
        """The indexes every GridFS driver expects (MongoDB uses them; FerretDB reads by `_id` anyway)."""
        if not self._indexed:
            self._chunks.create_index([("files_id", 1), ("n", 1)], unique=True)
            self._files.create_index([("filename", 1), ("uploadDate", 1)])
            self._indexed = True

    def count(self) -> int:
        return self._files.count_documents({}) + self._payload_docs.count_documents({})
