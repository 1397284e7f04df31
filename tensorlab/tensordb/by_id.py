"""Reads and writes addressed by `_id` alone: the one filter every MongoDB-protocol server answers from an
index (FerretDB 1.x pushes down nothing else), so these cost the documents touched, never the collection."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pymongo.errors import DuplicateKeyError


def upsert_by_id(collection: Any, identifier: Any, change: dict[str, Any]) -> None:
    """An upsert by `_id` that survives a racing first insert (upserts are not atomic on every server)."""
    try:
        collection.update_one({"_id": identifier}, change, upsert=True)
    except DuplicateKeyError:
        collection.update_one({"_id": identifier}, change)


def find_by_ids(collection: Any, ids: Iterable[Any]) -> list[dict[str, Any]]:
    """The documents with these ids, one lookup each, in the order given; ids with no document are skipped."""
    return [doc for doc in (collection.find_one({"_id": identifier}) for identifier in ids) if doc is not None]
