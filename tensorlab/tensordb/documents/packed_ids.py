"""An index entry's ids packed into binary, so reading or updating an entry costs its bytes, not its elements.

FerretDB reads and rewrites a whole document for every update, at about 5.5 µs per array element (ObjectId,
string or int alike) and next to nothing per byte of binary: an entry shard of 625 ids cost 3.9 ms to read or
update as an array, 0.7 ms as 12-byte ids in one binary. At 10,000 runs, `status=finished` and every study-wide
tag hold that many per shard, and a search reads 2,000 ids for one hyper-parameter value.

An entry document holds `ids` (recently filed ids, an array), `packed` ({token: binary of 12-byte ObjectIds})
and `gone` (ids taken out that may be packed). Its ids are (packed ∪ ids) − gone.
- add: `$addToSet ids` + `$pull gone`; remove: `$pull ids` + `$addToSet gone` (ObjectIds). Both idempotent.
- merge (`merge_change`): folds a document as read (its packed fields, the ObjectIds of `ids`, less `gone`) into
  one new packed field, in one update by `_id` that also unsets the packed fields it read and `$pullAll`s from
  `ids` and `gone` exactly what it folded. An id leaves `ids` only in the update that packs it, so a merge racing
  another merge, an add or a remove can leave an id in two places or back in the answer, never out of it: an id
  too many costs a reader a lookup, never a wrong answer (docs/CONSISTENCY.md).
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

from bson import Binary, ObjectId

PACK_AT = 32  # ids or removals an entry's document collects before its writer packs them
PACK_EVERY = 32  # a shard is packed after about one id in this many filed (writers of shards see no document)


def ids_of(doc: Mapping[str, Any]) -> set[Any]:
    """The ids an entry document files: packed and recent, less those gone."""
    found = set(doc.get("ids") or ())
    for packed in (doc.get("packed") or {}).values():
        found.update(unpack(packed))
    found.difference_update(doc.get("gone") or ())
    return found


def unpack(packed: bytes) -> list[ObjectId]:
    return [ObjectId(packed[start:start + 12]) for start in range(0, len(packed), 12)]


def add_change(doc_id: Any, study: str) -> dict[str, Any]:
    change: dict[str, Any] = {"$addToSet": {"ids": doc_id}, "$set": {"study": study}}
    if isinstance(doc_id, ObjectId):
        change["$pull"] = {"gone": doc_id}  # filed again after it was taken out: no longer gone
    return change


def remove_change(doc_id: Any) -> dict[str, Any]:
    change: dict[str, Any] = {"$pull": {"ids": doc_id}}
    if isinstance(doc_id, ObjectId):
        change["$addToSet"] = {"gone": doc_id}  # it may be packed, where no $pull reaches
    return change


def pack_due(doc: Mapping[str, Any]) -> bool:
    """A document a writer has just read back has collected enough to pack."""
    return len(doc.get("ids") or ()) >= PACK_AT or len(doc.get("gone") or ()) >= PACK_AT


def shard_pack_due(doc_id: Any) -> bool:
    """About one filing in PACK_EVERY packs the shards it wrote (from a hash: the id's last byte picks the shard)."""
    binary = doc_id.binary if isinstance(doc_id, ObjectId) else repr(doc_id).encode()
    return zlib.crc32(binary) % PACK_EVERY == 0


def merge_change(doc: Mapping[str, Any]) -> dict[str, Any] | None:
    """The update that folds `doc` (as read) into one packed field; None when there is nothing to fold."""
    recent = [x for x in doc.get("ids") or () if isinstance(x, ObjectId)]
    gone = list(doc.get("gone") or ())
    packed = doc.get("packed") or {}
    if not recent and not gone and len(packed) <= 1:
        return None
    kept = ids_of({"ids": recent, "packed": packed, "gone": gone})
    change: dict[str, Any] = {}
    if kept:
        change["$set"] = {f"packed.{os.urandom(6).hex()}": pack(kept)}
    if packed:
        change["$unset"] = {f"packed.{token}": "" for token in packed}
    pulled = {field: values for field, values in (("ids", recent), ("gone", gone)) if values}
    if pulled:
        change["$pullAll"] = pulled
    return change or None


def pack(ids: Iterable[ObjectId]) -> Binary:
    return Binary(b"".join(sorted(x.binary for x in ids)))
