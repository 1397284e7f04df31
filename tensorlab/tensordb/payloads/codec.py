"""Raw arrays to lz4-compressed bytes and back: dtype and shape travel beside the bytes, never pickle.

Written as the standard LZ4 *frame* format (`codec: "lz4frame"`), which `lz4.frame`, the `lz4` command
line and every language's LZ4 library read; docs/FORMAT.md describes every field. Payloads written
before 2026-12 used python-lz4's *block* format with a 4-byte size prefix (`codec: "lz4"`, split every
1 GiB into size-prefixed frames when `frames` > 1); they are still read.

Floating-point data is byte-shuffled first (the Blosc trick: group the k-th byte of every value
together, so exponents sit next to each other) when a probe shows that it compresses better. Data that
lz4 cannot shrink by 10% (trained weights, noise-like features) is stored raw (`codec: "raw"`): the
attempt would cost more time than the bytes it saves, on every save and every load.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass
from typing import Any

import lz4.block
import lz4.frame
import numpy as np

from ...errors import IntegrityError, InvalidInput

_PROBE_BYTES = 1 << 16
_WORTH_COMPRESSING = 0.9  # compressed/plain size of the probe below which lz4 is used
CODECS = ("lz4frame", "raw", "lz4")  # what encode writes first; "lz4" (block) is read only
LZ4_FRAME, RAW, LZ4_BLOCK = CODECS


@dataclass(frozen=True)
class ArrayMeta:
    dtype: str
    shape: tuple[int, ...]
    shuffled: bool
    codec: str = LZ4_BLOCK  # what a document without `codec` was written with

    def to_doc(self) -> dict[str, Any]:
        return {"dtype": self.dtype, "shape": list(self.shape), "shuffled": self.shuffled, "codec": self.codec}

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> ArrayMeta:
        codec = doc.get("codec", LZ4_BLOCK)
        if codec not in CODECS:
            raise IntegrityError(f"Unknown array codec {codec!r} (known: {', '.join(CODECS)}); the item was written "
                                 "by a newer TensorLab or is corrupt. Upgrade TensorLab to read it.")
        return cls(doc["dtype"], tuple(doc["shape"]), bool(doc.get("shuffled", False)), codec)


def as_plain_array(value: Any, what: str) -> np.ndarray:
    """A numeric/bool/str numpy array, or InvalidInput for ragged or object data."""
    try:
        array = np.asarray(value)
    except ValueError as error:  # numpy >= 1.24 refuses ragged nested lists
        raise InvalidInput(f"`{what}` is ragged (its items have different shapes): {error}. "
                           "Pad or resize the samples to one shape, or import each shape separately.") from None
    if array.dtype.fields is not None or array.dtype.kind == "V":
        raise InvalidInput(f"`{what}` has a structured dtype {array.dtype}; its field names would be lost. Store "
                           "one plain array per field, or numpy.lib.recfunctions.structured_to_unstructured(x).")
    if array.dtype == object:
        raise InvalidInput(f"`{what}` has dtype object (ragged or mixed Python objects); TensorDB stores numeric, "
                           "bool or fixed-width string arrays. Convert it, e.g. np.asarray(x, dtype='float32').")
    return array


def _shuffle(raw: np.ndarray, itemsize: int) -> bytes:
    return raw.reshape(-1, itemsize).T.tobytes()


def _unshuffle(raw: bytes, itemsize: int) -> np.ndarray:
    return np.frombuffer(raw, np.uint8).reshape(itemsize, -1).T


def _choose_layout(array: np.ndarray) -> tuple[str, bool]:
    """(codec, shuffled) from compressing a 64 KB probe plain and, for floats, shuffled."""
    if array.nbytes < 1024:
        return LZ4_FRAME, False
    probe = np.ascontiguousarray(array.reshape(-1)[: max(1, _PROBE_BYTES // array.dtype.itemsize)]).view(np.uint8)
    plain = len(lz4.block.compress(probe.data, store_size=False))
    shuffled = plain + 1
    if array.dtype.kind in "fc" and array.dtype.itemsize >= 2:
        shuffled = len(lz4.block.compress(_shuffle(probe, array.dtype.itemsize), store_size=False))
    if min(plain, shuffled) > _WORTH_COMPRESSING * probe.nbytes:
        return RAW, False
    return LZ4_FRAME, shuffled < 0.95 * plain


def encode(array: np.ndarray) -> tuple[bytes | memoryview, ArrayMeta]:
    """Compress `array` (any shape; numeric, bool or fixed-width string dtype); raw bytes when lz4 would not
    help. The payload may be a view of `array`'s memory: write it before changing the array."""
    shape = tuple(np.shape(array))  # before ascontiguousarray, which turns 0-d arrays into 1-d
    array = np.ascontiguousarray(array)
    codec, shuffled = _choose_layout(array)
    raw = array.reshape(-1).view(np.uint8)
    if codec == RAW:
        return raw.data, ArrayMeta(array.dtype.str, shape, False, RAW)
    data = _shuffle(raw, array.dtype.itemsize) if shuffled else raw.data
    return lz4.frame.compress(data), ArrayMeta(array.dtype.str, shape, shuffled, LZ4_FRAME)


def decode(payload: bytes | bytearray, meta: ArrayMeta, frames: int = 1) -> np.ndarray:
    """Inverse of `encode`; the result is writable and owns its memory (or a bytearray handed in)."""
    dtype = np.dtype(meta.dtype)
    if meta.codec == RAW:
        if len(payload) != dtype.itemsize * int(np.prod(meta.shape, dtype=np.int64)):
            raise ValueError(f"{len(payload)} raw bytes do not hold {meta.shape} of {meta.dtype}")
        flat = np.frombuffer(payload, dtype=dtype)
        return (flat if isinstance(payload, bytearray) else flat.copy()).reshape(meta.shape)
    if meta.codec == LZ4_FRAME:
        data = lz4.frame.decompress(payload)
    elif frames == 1:
        data = lz4.block.decompress(payload)
    else:
        parts, offset = [], 0
        while offset < len(payload):
            size = int.from_bytes(payload[offset:offset + 8], "little")
            parts.append(lz4.block.decompress(payload[offset + 8:offset + 8 + size]))
            offset += 8 + size
        data = b"".join(parts)
    if meta.shuffled:
        flat = _unshuffle(data, dtype.itemsize).copy().view(dtype).reshape(-1)
    else:
        flat = np.frombuffer(data, dtype=dtype).copy()
    return flat.reshape(meta.shape)


def checksum(payload: bytes) -> int:
    """CRC-32 of stored bytes: catches any flipped byte at gigabytes per second."""
    return zlib.crc32(payload)


def verified_decode(payload: bytes, meta: ArrayMeta, frames: int, expected_crc: int | None, what: str) -> np.ndarray:
    """`decode` after checking the payload's CRC-32 (when one was stored); IntegrityError naming `what`
    for a mismatch or for bytes that do not decode (data written before checksums existed)."""
    if expected_crc is not None and checksum(payload) != expected_crc:
        raise IntegrityError(f"{what} is corrupt: its bytes no longer match their checksum. Re-import it or "
                             "restore it from a copy.")
    try:
        return decode(payload, meta, frames)
    except (lz4.block.LZ4BlockError, RuntimeError, ValueError) as error:
        raise IntegrityError(f"{what} is corrupt: it does not decode ({error}).") from None


def frame_count(nbytes: int) -> int:
    """The `frames` field: 1 for what encode writes now (one LZ4 frame holds any size); kept for old readers."""
    return 1


def content_hash(array: np.ndarray) -> str:
    """Identity of an array's content (dtype, shape and bytes): equal arrays get equal hashes."""
    digest = hashlib.sha256(f"{array.dtype.str}|{tuple(np.shape(array))}|".encode())
    array = np.ascontiguousarray(array)
    digest.update(array.reshape(-1).view(np.uint8).data)
    return digest.hexdigest()
