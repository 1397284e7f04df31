"""Which rows of which chunks a data query selects, read from the cheapest place that can answer it.

In order: the study's catalog (one `_id` lookup, then the chunks of matching imports by `_id`) for
equalities on tags, `import_id` and labels; chunk descriptions (one scan of them) for other queries on
those fields; the per-sample index for anything else, and for chunks whose samples were retagged or
partly deleted (`uniform: false`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from bson import ObjectId

from .chunk_labels import selected_count, selected_rows

CHUNK_LEVEL_FIELDS = ("study", "tags", "import_id")
_LOGICAL = ("$and", "$or", "$nor")


@dataclass(frozen=True)
class ChunkSelection:
    """Rows of one chunk that a query selects (`rows is None`: all of them)."""

    chunk_id: ObjectId
    count: int
    rows: np.ndarray | None
    selected: int | None = None  # rows chosen, when only counted (plan(need_rows=False)) and rows is None

    @property
    def size(self) -> int:
        if self.rows is not None:
            return len(self.rows)
        return self.count if self.selected is None else self.selected


def is_chunk_level(query: Mapping[str, Any]) -> bool:
    """Whether a query names only fields every sample of a uniform chunk shares with its chunk."""
    for key, value in query.items():
        if key in _LOGICAL:
            if not all(isinstance(part, Mapping) and is_chunk_level(part) for part in value):
                return False
        elif key.startswith("$") or not any(key == f or key.startswith(f + ".") for f in CHUNK_LEVEL_FIELDS):
            return False
    return True


def has_label_counts(chunk: Mapping[str, Any]) -> bool:
    """A chunk whose label conditions its description can answer (no labels, or counted ones)."""
    return not chunk.get("labels") or "label_counts" in chunk


def select_in_uniform(chunks: Iterable[Mapping[str, Any]], allowed: list[Any] | None, need_rows: bool,
                      label_rows: Any) -> list[ChunkSelection]:
    """Selections of uniform chunks already known to match the rest of the query; `label_rows(chunk_id)`
    fetches a chunk's rows by label when only some of its rows hold an allowed label."""
    selections = []
    for doc in chunks:
        chosen = doc["count"] if allowed is None else selected_count(doc, allowed)
        if chosen == doc["count"]:
            selections.append(ChunkSelection(doc["_id"], doc["count"], None))
        elif chosen and need_rows:
            selections.append(ChunkSelection(doc["_id"], doc["count"], selected_rows(label_rows(doc["_id"]), allowed)))
        elif chosen:
            selections.append(ChunkSelection(doc["_id"], doc["count"], None, chosen))
    return selections


def group_rows(docs: Iterable[Mapping[str, Any]], counts: Mapping[ObjectId, int]) -> list[ChunkSelection]:
    """Selections from per-sample index documents ({chunk, row})."""
    rows: dict[ObjectId, list[int]] = {}
    for doc in docs:
        rows.setdefault(doc["chunk"], []).append(doc["row"])
    return [ChunkSelection(chunk_id, counts.get(chunk_id, len(r)), np.sort(np.asarray(r, dtype=np.int64)))
            for chunk_id, r in rows.items()]
