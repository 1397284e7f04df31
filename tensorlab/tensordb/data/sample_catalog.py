"""One document per study listing its committed imports: counts and plans by tag or label read it by `_id`.

Counting `{"tags.split": "probe"}` or `{"label": 3}` used to read every chunk description of the study
(one document per few MB of samples), so a lab's data counts slowed as it grew. The catalog
(`sample_catalog`, `_id` = the study) holds, per committed import (one BSON binary value each): its
tags, sample count, label counts, chunk ids with their sizes, and `uniform` (every sample still carries
the import's tags and no sample was deleted). A query made of equalities (or `$in`) on `import_id` and
`tags.<key>`, plus label equalities, is answered from it: a count costs one lookup; a plan fetches only
the chunks of matching imports. Imports whose samples were retagged or partly deleted are marked
non-uniform and planned chunk by chunk.

Being listed here is what makes an import visible (written just before its ledger marker flips, see
imports.py); databases written before the catalog get it built once from their chunk descriptions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import bson
from bson import Binary, ObjectId

from ..documents.build_markers import build_once, forget_built
from ..documents.by_id import upsert_by_id
from ..documents.scope import Scope
from ..documents.value_keys import SCALARS, field_matches

CATALOG = "sample_catalog"


def catalog_equalities(query: Mapping[str, Any]) -> dict[str, list[Any]] | None:
    """{field: accepted values} when `query` (beyond `study`) is only equality or `$in` on `import_id` and
    `tags.<key>`, in any number of top-level `$and`s; None for anything else."""
    found: dict[str, list[Any]] = {}
    for field, value in query.items():
        if field == "study":
            continue
        if field == "$and" and isinstance(value, list) and all(isinstance(part, Mapping) for part in value):
            for part in value:
                inner = catalog_equalities(part)
                if inner is None:
                    return None
                for key, accepted in inner.items():
                    found[key] = [v for v in found[key] if field_matches(v, accepted)] if key in found else accepted
            continue
        if not (field == "import_id" or (field.startswith("tags.") and field.count(".") == 1)):
            return None
        accepted = _accepted(value)
        if accepted is None:
            return None
        found[field] = [v for v in found[field] if field_matches(v, accepted)] if field in found else accepted
    return found


def _accepted(condition: Any) -> list[Any] | None:
    if isinstance(condition, Mapping):
        if set(condition) == {"$eq"}:
            condition = condition["$eq"]
        elif set(condition) == {"$in"} and isinstance(condition["$in"], (list, tuple)):
            values = list(condition["$in"])
            return values if all(isinstance(v, SCALARS) for v in values) else None
        else:
            return None
    return [condition] if isinstance(condition, SCALARS) else None


def entry_matches(fields: Mapping[str, Any], wanted: Mapping[str, list[Any]]) -> bool:
    """Whether a document with `import_id` and `tags` (an entry or a chunk description) meets `wanted`."""
    for field, accepted in wanted.items():
        if field == "import_id":
            stored = fields.get("import_id")
        else:
            tags = fields.get("tags") or {}
            key = field.split(".", 1)[1]
            if key not in tags:
                return False
            stored = tags[key]
        if not field_matches(stored, accepted):
            return False
    return True


def merged_label_counts(chunks: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]] | None:
    """The label counts of several chunks added up; None when one chunk has labels but no counts."""
    totals: list[dict[str, Any]] = []
    for chunk in chunks:
        if not chunk.get("labels"):
            continue
        if "label_counts" not in chunk:
            return None
        for entry in chunk["label_counts"]:
            same = next((t for t in totals if field_matches(t["label"], [entry["label"]])), None)
            if same is None:
                totals.append(dict(entry))
            else:
                same["count"] += entry["count"]
    return totals


def new_entry(import_id: ObjectId, tags: Mapping[str, Any], chunks: list[Mapping[str, Any]]) -> dict[str, Any]:
    """The catalog entry of an import from its chunk descriptions (`count`, `labels`, `label_counts`)."""
    labelled = any(chunk.get("labels") for chunk in chunks)
    first = chunks[0]
    return {"import_id": import_id, "tags": dict(tags), "uniform": all(c.get("uniform", True) for c in chunks),
            "dtype": first.get("dtype"), "sample_shape": first.get("sample_shape"), "created": first.get("created"),
            "count": sum(chunk["count"] for chunk in chunks), "labelled": labelled,
            "label_counts": merged_label_counts(chunks) if labelled else None,
            "chunks": [{"id": chunk["_id"], "count": chunk["count"]} for chunk in chunks]}


def encode_entry(entry: Mapping[str, Any]) -> Binary:
    """An entry as one BSON binary value: FerretDB parses a document's JSON value by value (a 7 KB catalog of
    nested ids, dates and counts took 7 ms to read), but passes a binary through in one piece."""
    return Binary(bson.encode(dict(entry)))


def decode_entry(value: Any) -> dict[str, Any]:
    return bson.decode(bytes(value)) if isinstance(value, bytes) else dict(value or {})


class SampleCatalog:
    def __init__(self, scope: Scope) -> None:
        self._scope = scope
        self._checked_built = False

    @property
    def collection(self) -> Any:
        return self._scope.collection(CATALOG)

    def _read(self, projection: dict[str, Any] | None = None) -> dict[str, Any]:
        doc = self.collection.find_one({"_id": self._scope.study}, projection) or {}
        return {key: decode_entry(value) for key, value in (doc.get("imports") or {}).items()}

    def entries(self) -> list[dict[str, Any]]:
        """Every listed import of the study (one `_id` lookup)."""
        return [entry for entry in self._read().values() if "chunks" in entry and "count" in entry]

    def entry(self, import_id: ObjectId) -> dict[str, Any] | None:
        """One listed import's entry, or None."""
        return self._read({f"imports.{import_id}": 1}).get(str(import_id))

    def listed(self, import_id: ObjectId) -> bool:
        return "count" in self._read({f"imports.{import_id}": 1}).get(str(import_id), {})

    def publish(self, entry: Mapping[str, Any]) -> None:
        """List an import: from this write on, its samples are visible."""
        self._write(entry["import_id"], entry)

    def _write(self, import_id: ObjectId, entry: Mapping[str, Any]) -> None:
        upsert_by_id(self.collection, self._scope.study,
                     {"$set": {"study": self._scope.study, f"imports.{import_id}": encode_entry(entry)}})

    def unlist(self, import_id: ObjectId) -> None:
        self.collection.update_one({"_id": self._scope.study}, {"$unset": {f"imports.{import_id}": ""}})

    def mark_mixed(self, import_ids: Iterable[ObjectId]) -> None:
        """Samples of these imports were retagged or deleted: plan them chunk by chunk from now on."""
        entries = self._read()
        for key in {str(import_id) for import_id in import_ids}:
            if key in entries and entries[key].get("uniform"):
                self._write(entries[key]["import_id"], {**entries[key], "uniform": False})

    def keep_chunks(self, import_id: ObjectId, remaining: list[Mapping[str, Any]]) -> None:
        """After deletes: the import's remaining chunk descriptions (unlisted once none is left)."""
        entry = self._read({f"imports.{import_id}": 1}).get(str(import_id))
        if not remaining or entry is None:
            self.unlist(import_id)
            return
        self._write(import_id, {**entry, "chunks": [{"id": c["_id"], "count": c["count"]} for c in remaining],
                                "count": sum(c["count"] for c in remaining)})

    def ensure_built(self, visible_chunks: Callable[[], list[dict[str, Any]]]) -> None:
        """Databases written before the catalog list their committed imports once, from their chunks."""
        if not self._checked_built:
            build_once(self._scope, CATALOG, lambda: self._build(visible_chunks()))
            self._checked_built = True

    def _build(self, chunks: list[dict[str, Any]]) -> None:
        by_import: dict[ObjectId, list[dict[str, Any]]] = {}
        for chunk in chunks:
            by_import.setdefault(chunk["import_id"], []).append(chunk)
        for import_id, members in by_import.items():
            self.publish(new_entry(import_id, members[0].get("tags") or {}, members))

    def drop_study(self) -> None:
        self.collection.delete_one({"_id": self._scope.study})
        forget_built(self._scope, CATALOG)
