"""Content-addressed blobs in GridFS: one file per distinct content, named by its hash.

Identical parameter arrays (frozen layers, repeated checkpoints) are stored once; callers delete a
blob only after checking that no document refers to it any more (`collect_garbage`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import gridfs
import numpy as np

from . import codec

BUCKET = "blobs"
CHUNK_SIZE_BYTES = 4 * 1024 * 1024  # fewer, larger GridFS chunks: much less per-document overhead


class BlobStore:
    """Arrays in and out of GridFS, addressed by content hash."""

    def __init__(self, database: Any) -> None:
        self._bucket = gridfs.GridFSBucket(database, bucket_name=BUCKET, chunk_size_bytes=CHUNK_SIZE_BYTES)
        self._files = database[f"{BUCKET}.files"]

    def put_array(self, array: np.ndarray, digest: str | None = None) -> str:
        """Store `array` unless identical content is already there; return its hash."""
        digest = digest or codec.content_hash(array)
        if self._files.find_one({"filename": digest}, {"_id": 1}) is not None:
            return digest
        payload, meta = codec.encode(array)
        metadata = {**meta.to_doc(), "frames": codec.frame_count(array.nbytes), "nbytes": int(array.nbytes)}
        self._bucket.upload_from_stream(digest, payload, metadata=metadata)
        return digest

    def put_bytes(self, name: str, payload: bytes, metadata: dict[str, Any]) -> Any:
        return self._bucket.upload_from_stream(name, payload, metadata=metadata)

    def get_array(self, digest: str) -> np.ndarray:
        """The array stored under `digest` (KeyError-free: raises gridfs.NoFile when absent)."""
        stream = self._bucket.open_download_stream_by_name(digest)
        meta = stream.metadata or {}
        payload = stream.read()
        return codec.decode(payload, codec.ArrayMeta.from_doc(meta), meta.get("frames", 1))

    def get_bytes(self, file_id: Any) -> bytes:
        return self._bucket.open_download_stream(file_id).read()

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
            for file in self._files.find({"filename": digest}, {"_id": 1}):
                self.delete_by_id(file["_id"])
                removed += 1
        return removed

    def count(self) -> int:
        return self._files.count_documents({})
