"""Deletes of any size.

FerretDB 1.x (SQLite) deletes the documents a filter matched with one SQL statement holding one
variable per document, and SQLite refuses more than 32,766: a `delete_many` over an MNIST-sized
import failed with "too many SQL variables". Deleting in batches of ids stays under that limit on
FerretDB and costs MongoDB nothing extra.
"""

from __future__ import annotations

from typing import Any

DELETE_BATCH = 30_000  # ids per delete: below SQLite's 32,766 variables


def delete_matching(collection: Any, query: dict[str, Any], batch: int = DELETE_BATCH) -> int:
    """Delete every document matching `query`, `batch` at a time; returns how many were deleted.

    Each batch is bounded by an `_id` range, not a list of ids: FerretDB tests `$in` against every
    document of the collection, so deleting 15,000 ids from 300,000 documents took minutes."""
    deleted = 0
    while True:
        ids = [doc["_id"] for doc in collection.find(query, {"_id": 1}, sort=[("_id", 1)], limit=batch)]
        if not ids:
            return deleted
        deleted += collection.delete_many({"$and": [query, {"_id": {"$lte": ids[-1]}}]}).deleted_count
        if len(ids) < batch:
            return deleted


def tried(step: Any) -> bool:
    """Run one step of a best-effort cleanup; False when it failed (the caller's original error is the one to
    report, and the cleanup is tried again later)."""
    try:
        step()
        return True
    except Exception:  # noqa: BLE001
        return False
