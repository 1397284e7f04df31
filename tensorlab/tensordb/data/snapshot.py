"""Which imports a data query resolves to now, and how many of their samples: a run's data snapshot.

Why: a query is text (`{"tags.split": "train"}`); imports added later under the same tag match it too, so the
query alone cannot say what a run saw. The import ids and counts can (imports are immutable once committed),
and `pinned_query` turns a snapshot back into a query that selects exactly those imports.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..documents.by_id import find_by_ids
from ..documents.query_text import query_to_text


def data_snapshot(store: Any, query: Any) -> dict[str, Any]:
    """{"query", "imports": [{"import_id", "samples"}], "samples"} for `query` on the data store `store`: one
    plan (what counting costs) and the catalog; chunks the catalog does not list are looked up by `_id`."""
    selections = store.plan(query, need_rows=False)
    owner = {chunk["id"]: entry["import_id"] for entry in store.catalog.entries() for chunk in entry["chunks"]}
    unlisted = [s.chunk_id for s in selections if s.chunk_id not in owner]
    owner.update({doc["_id"]: doc["import_id"] for doc in find_by_ids(store.chunks, unlisted)})
    samples: dict[Any, int] = {}
    for selection in selections:
        import_id = owner.get(selection.chunk_id)
        samples[import_id] = samples.get(import_id, 0) + selection.size
    imports = [{"import_id": i, "samples": n} for i, n in sorted(samples.items(), key=lambda item: str(item[0]))]
    return {"query": query_to_text(query), "imports": imports, "samples": sum(samples.values())}


def pinned_query(query: Mapping[str, Any] | None, snapshot: Mapping[str, Any]) -> dict[str, Any]:
    """`query` limited to the imports of `snapshot`: what the run saw, even after newer imports share its tags."""
    ids = [entry["import_id"] for entry in snapshot.get("imports") or []]
    return {"$and": [dict(query or {}), {"import_id": {"$in": ids}}]}
