"""Fixed-size arrays packed for documents: the k-th byte of every value together, in a standard LZ4 frame.

Why: the managed server parses a document's binary at about 16 MB/s (base64 inside JSON), so bytes a document
carries cost every read and every rewrite. Shuffled, the bytes values share (the high bytes of steps and times,
the timestamp and process bytes of ObjectIds made by one process) pack to almost nothing. Any tool reads them:
`np.frombuffer(lz4.frame.decompress(b), np.uint8).reshape(itemsize, -1).T.copy().view(dtype)`. Used by log
buckets (format 2) and run table segments.
"""

from __future__ import annotations

import lz4.frame
import numpy as np
from bson import Binary

PACKING = "shuffle-lz4"


def pack_array(array: np.ndarray) -> Binary:
    """Any fixed-size array (numbers, or 12-byte ids as S12), read back by `unpack`."""
    shuffled = np.ascontiguousarray(array).view(np.uint8).reshape(-1, array.itemsize).T.tobytes()
    return Binary(lz4.frame.compress(shuffled, store_size=False))


def unpack(packed: bytes, dtype: str, packing: str | None = None) -> np.ndarray:
    """One packed array (plain bytes where `packing` is not PACKING) as a read-only array."""
    if packing != PACKING:
        return np.frombuffer(packed, dtype=dtype)
    itemsize = np.dtype(dtype).itemsize
    raw = np.frombuffer(lz4.frame.decompress(packed), np.uint8)
    return np.ascontiguousarray(raw.reshape(itemsize, -1).T).view(dtype).reshape(-1)
