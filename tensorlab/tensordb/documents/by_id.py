"""Reads and writes addressed by `_id` alone: the one filter every MongoDB-protocol server answers from an
index (FerretDB 1.x pushes down nothing else), so these cost the documents touched, never the collection."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bson import ObjectId
from pymongo.errors import DuplicateKeyError

PARALLEL_FROM = 8  # fewer lookups than this run one after another (a thread pool costs about 0.3 ms)
LOOKUP_THREADS = 4


def id_key(*parts: Any, separator: str = ":") -> str:
    """An `_id` built from parts, some of them user strings: each part has `%` and the separator escaped, so two
    different part lists never give one key (study 'p' + key 'q:k' vs study 'p:q' + key 'k'). Parts holding
    neither character are kept as they are, so keys written before the escaping read the same."""
    return separator.join(str(part).replace("%", "%25").replace(separator, f"%{ord(separator):02X}")
                          for part in parts)


def derived_id(key: str, prefix: bytes = b"") -> ObjectId:
    """An `_id` every process derives alike from `key` (SHA-256, after an optional prefix): the same write made
    by two processes, or retried after a crash, lands once, the second refused by the unique `_id`."""
    return ObjectId(prefix + hashlib.sha256(key.encode()).digest()[: 12 - len(prefix)])


def upsert_by_id(collection: Any, identifier: Any, change: dict[str, Any]) -> None:
    """An upsert by `_id` that survives a racing first insert (upserts are not atomic on every server)."""
    try:
        collection.update_one({"_id": identifier}, change, upsert=True)
    except DuplicateKeyError:
        collection.update_one({"_id": identifier}, change)


def find_by_ids(collection: Any, ids: Iterable[Any]) -> list[dict[str, Any]]:
    """The documents with these ids, one lookup each, in the order given; ids with no document are skipped.
    Many lookups run a few at a time: each waits mostly on the server's reply, so the panel polling 50
    jobs costs about a quarter of 50 round trips."""
    ids = list(ids)

    def lookup(identifier: Any) -> dict[str, Any] | None:
        return collection.find_one({"_id": identifier})

    if len(ids) < PARALLEL_FROM:
        found = [lookup(identifier) for identifier in ids]
    else:
        with ThreadPoolExecutor(LOOKUP_THREADS) as pool:
            found = list(pool.map(lookup, ids))
    return [doc for doc in found if doc is not None]
