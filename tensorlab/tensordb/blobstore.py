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
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any

import gridfs
import numpy as np
from bson import Binary, ObjectId
from pymongo.errors import DuplicateKeyError

from ..errors import IntegrityError
from . import codec

BUCKET = "blobs"
# Larger than GridFS's 255 KiB default (less per-document overhead), yet small enough that a driver's
# first batch of 101 chunks stays under 48 MB: FerretDB, unlike MongoDB, does not cap batches at 16 MB.
CHUNK_SIZE_BYTES = 384 * 1024
READ_BATCH = 32  # chunks per reply when we read files ourselves (12 MB), for the same reason
INSERT_GROUP = 16
READ_THREADS = 4


class BlobStore:
    """Arrays in and out of GridFS, addressed by content hash."""

    def __init__(self, database: Any) -> None:
        self._bucket = gridfs.GridFSBucket(database, bucket_name=BUCKET, chunk_size_bytes=CHUNK_SIZE_BYTES)
        self._files = database[f"{BUCKET}.files"]
        self._chunks = database[f"{BUCKET}.chunks"]
        self._indexed = False

    def put_array(self, array: np.ndarray, digest: str | None = None) -> str:
        """Store `array` unless identical content is already there; return its hash."""
        digest = digest or codec.content_hash(array)
        if self._files.find_one({"_id": digest}, {"_id": 1}) is not None:
            return digest
        payload, meta = codec.encode(array)
        metadata = {**meta.to_doc(), "frames": codec.frame_count(array.nbytes), "nbytes": int(array.nbytes),
                    "crc32": codec.checksum(payload)}
        try:
            self.put_bytes(digest, payload, metadata, file_id=digest)
        except DuplicateKeyError:  # another process stored the same content at the same moment
            pass
        return digest

    def put_bytes(self, name: str, payload: bytes, metadata: dict[str, Any], file_id: Any = None) -> Any:
        """Write a GridFS file (its `_id` is `file_id`, else a new ObjectId); returns the `_id`."""
        self._ensure_indexes()
        file_id = ObjectId() if file_id is None else file_id
        view = memoryview(payload)
        chunk_ids = []
        try:
            for group_start in range(0, max(len(payload), 1), CHUNK_SIZE_BYTES * INSERT_GROUP):
                docs = []
                for offset in range(group_start, min(len(payload), group_start + CHUNK_SIZE_BYTES * INSERT_GROUP),
                                    CHUNK_SIZE_BYTES):
                    chunk_ids.append(ObjectId())
                    docs.append({"_id": chunk_ids[-1], "files_id": file_id, "n": len(chunk_ids) - 1,
                                 "data": Binary(bytes(view[offset:offset + CHUNK_SIZE_BYTES]))})
                if docs:
                    self._chunks.insert_many(docs, ordered=True)
            self._files.insert_one({"_id": file_id, "length": len(payload), "chunkSize": CHUNK_SIZE_BYTES,
                                    "uploadDate": datetime.now(timezone.utc), "filename": name,
                                    "metadata": {**metadata, "chunk_ids": chunk_ids}})
        except BaseException:
            self._chunks.delete_many({"files_id": file_id})
            raise
        return file_id

    def _read_chunk(self, chunk_id: ObjectId) -> bytes:
        chunk = self._chunks.find_one({"_id": chunk_id})
        if chunk is None:
            raise IntegrityError(f"GridFS chunk {chunk_id} is missing (bucket {BUCKET!r}).")
        return bytes(chunk["data"])

    def _read(self, file: dict[str, Any]) -> bytes:
        """A file's bytes, checked against its recorded length."""
        chunk_ids = (file.get("metadata") or {}).get("chunk_ids")
        if chunk_ids is not None:
            if len(chunk_ids) <= 2:
                parts = [self._read_chunk(chunk_id) for chunk_id in chunk_ids]
            else:
                with ThreadPoolExecutor(READ_THREADS) as pool:
                    parts = list(pool.map(self._read_chunk, chunk_ids))
        else:
            parts = [bytes(chunk["data"]) for chunk in
                     self._chunks.find({"files_id": file["_id"]}, {"data": 1, "_id": 0}, sort=[("n", 1)],
                                       batch_size=READ_BATCH)]
        payload = b"".join(parts)
        if len(payload) != file["length"]:
            raise IntegrityError(f"GridFS file {file['_id']} has {len(payload)} of {file['length']} "
                                                "bytes; it is incomplete or being deleted.")
        return payload

    def _file(self, digest: str) -> dict[str, Any] | None:
        """The files document of a blob: by `_id`; a blob of the first layout by filename (a scan, once)."""
        file = self._files.find_one({"_id": digest})
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

    def get_bytes(self, file_id: Any) -> bytes:
        file = self._files.find_one({"_id": file_id})
        if file is None:
            raise gridfs.errors.NoFile(f"No GridFS file {file_id} in bucket {BUCKET!r}.")
        return self._read(file)

    def delete_by_id(self, file_id: Any) -> None:
        try:
            self._bucket.delete(file_id)
        except gridfs.errors.NoFile:
            pass

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
        return self._files.count_documents({})
