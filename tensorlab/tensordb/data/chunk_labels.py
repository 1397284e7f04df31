"""Labels at chunk level: a count by label reads chunk descriptions, never one document per sample.

Each chunk of an import with scalar labels carries `label_counts` ([{label, count}], one entry per
distinct label in it). The rows holding each label live in a side document (`sample_chunk_labels`,
`_id` = the chunk's), as little-endian int32 row numbers, fetched by `_id` only when rows are needed.
A query can be answered this way when its `label` conditions are equality or `$in` at its top level
(or in a top-level `$and`); any other use of `label` goes through the per-sample index as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from bson import Binary

LABELS = "sample_chunk_labels"
_NO_LABEL = object()


def _wanted(condition: Any) -> list[Any] | None:
    """The labels an equality or `$in` condition accepts; None for anything else (`$gt`, `$ne`, ...)."""
    if isinstance(condition, Mapping):
        if set(condition) == {"$in"} and isinstance(condition["$in"], (list, tuple)):
            return list(condition["$in"])
        if set(condition) == {"$eq"}:
            return [condition["$eq"]]
        return None
    if isinstance(condition, (list, tuple)):
        return None  # array equality: not a scalar label
    return [condition]


def split_label_condition(query: Mapping[str, Any]) -> tuple[dict[str, Any], list[Any] | None] | None:
    """(the query without its label conditions, the labels they allow or None when there are none); None when
    `label` is used in a way chunk-level counts cannot answer."""
    rest: dict[str, Any] = {}
    allowed: list[Any] | None = None
    for key, value in query.items():
        if key == "label" or (key == "$and" and any(isinstance(p, Mapping) and "label" in p for p in value)):
            parts = [{"label": value}] if key == "label" else list(value)
            kept = []
            for part in parts:
                if "label" not in part:
                    kept.append(part)
                    continue
                if set(part) != {"label"} or (labels := _wanted(part["label"])) is None:
                    return None
                allowed = labels if allowed is None else [label for label in allowed if label in labels]
            if kept:
                rest["$and"] = kept
        elif _mentions_label(value):
            return None
        else:
            rest[key] = value
    return rest, allowed


def _mentions_label(value: Any) -> bool:
    if isinstance(value, Mapping):
        return "label" in value or any(_mentions_label(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_mentions_label(v) for v in value)
    return False


def chunk_label_index(labels: list[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """For one chunk's labels (in row order): its `label_counts` and the rows of each label."""
    rows_by_label: dict[Any, list[int]] = {}
    for row, label in enumerate(labels):
        rows_by_label.setdefault(label, []).append(row)
    counts = [{"label": label, "count": len(rows)} for label, rows in rows_by_label.items()]
    rows = [{"label": label, "rows": Binary(np.asarray(r, dtype="<i4").tobytes())}
            for label, r in rows_by_label.items()]
    return counts, rows


def selected_count(chunk: Mapping[str, Any], allowed: list[Any]) -> int:
    return sum(entry["count"] for entry in chunk.get("label_counts") or [] if entry["label"] in allowed)


def selected_rows(labels_doc: Mapping[str, Any] | None, allowed: list[Any]) -> np.ndarray:
    parts = [np.frombuffer(entry["rows"], dtype="<i4") for entry in (labels_doc or {}).get("rows", [])
             if entry["label"] in allowed]
    return np.sort(np.concatenate(parts)).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)
