"""Sample counts per study and per tag value, kept as imports commit: a count reads one small document.

The catalog (sample_catalog.py) lists every import of a study in one document, so counting from it costs
what the study's import history costs (a lab that imports every hour has thousands). `sample_counts`
keeps running totals instead: one document for the whole study (`_id` = `<study>␟*`) and one per tag
value (`<study>␟<key>␟<value>`), each holding the sample count and the count per label. So
`data_count({"tags.split": "probe"})`, `data_count({"label": 3})` and both together are one `_id` lookup
whatever the history, on every server. Beside each tag value's counts, a list document (`…␟imports`) holds
the catalog entries of the committed imports with that value, so planning `find_data` or a stream by one tag
value reads those imports, not the whole catalog.

Kept honest under kills: an import adds its counts before it is listed, each document's addition guarded
by an `inflight.<import id>` entry holding what was added (so a retry never adds twice); the entries are
removed once the import is committed, and a rollback subtracts exactly what its entry says. A document
with an entry in flight, or that counted an import whose samples were later retagged or deleted
(`mixed`), is not trusted: the count falls back to the catalog and chunk descriptions, as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pymongo.errors import DuplicateKeyError

from ..documents.build_markers import build_once, forget_built
from ..documents.by_id import find_by_ids, id_key, upsert_by_id
from ..documents.scope import Scope
from ..documents.value_keys import canonical
from .sample_catalog import catalog_equalities, decode_entry, encode_entry

COUNTS = "sample_counts"
SEPARATOR = "\x1f"


def contribution(entry: Mapping[str, Any]) -> dict[str, Any]:
    """What an import adds to every count document it belongs to: its samples and its samples per label (and
    whether a list-valued tag puts it under several values of one key)."""
    labels: dict[str, int] = {}
    uncounted = bool(entry.get("labelled")) and entry.get("label_counts") is None
    for item in entry.get("label_counts") or []:
        key = canonical(item["label"])
        if key is None:
            uncounted = True
            continue
        labels[key] = labels.get(key, 0) + item["count"]
    multi = any(isinstance(value, list) and len(value) > 1 for value in entry["tags"].values())
    return {"count": entry["count"], "labels": labels, "uncounted": uncounted, "multi": multi}


class SampleCounts:
    def __init__(self, scope: Scope) -> None:
        self._scope = scope
        self._checked_built = False

    @property
    def collection(self) -> Any:
        return self._scope.collection(COUNTS)

    def study_doc(self) -> str:
        return id_key(self._scope.study, "*", separator=SEPARATOR)

    def tag_doc(self, key: str, value: Any) -> str | None:
        canon = canonical(value)
        return None if canon is None else id_key(self._scope.study, key, canon, separator=SEPARATOR)

    @staticmethod
    def imports_doc(doc_id: str) -> str:
        """The list document beside a tag value's counts: the catalog entries of its committed imports."""
        return f"{doc_id}{SEPARATOR}imports"  # doc_id has 3 parts, the suffix makes a 4th: no collision

    def doc_ids(self, tags: Mapping[str, Any]) -> list[str]:
        """The study document, then one per tag value (each element of a list value)."""
        ids = [self.study_doc()]
        for key, value in tags.items():
            for element in value if isinstance(value, list) else [value]:
                if (doc_id := self.tag_doc(key, element)) is not None and doc_id not in ids:
                    ids.append(doc_id)
        return ids

    # -- keeping the counts ------------------------------------------------------------------------
    def add(self, import_id: Any, entry: Mapping[str, Any], doc_ids: list[str]) -> None:
        """Add a committing import to its documents, each once, however often this is retried."""
        added = contribution(entry)
        change: dict[str, Any] = {
            "$inc": {"v": 1, "count": added["count"], **{f"labels.{key}": n for key, n in added["labels"].items()}},
            "$set": {"study": self._scope.study, f"inflight.{import_id}": added,
                     **{flag: True for flag in ("multi", "uncounted") if added[flag]}}}
        for doc_id in doc_ids:
            try:
                self.collection.update_one({"_id": doc_id, f"inflight.{import_id}": {"$exists": False}}, change,
                                           upsert=True)
            except DuplicateKeyError:
                pass  # this document already holds the import (a retry)

    def settle(self, import_id: Any, doc_ids: Iterable[str], entry: Mapping[str, Any] | None) -> None:
        """The import is committed: it joins its tag values' lists, its additions stand, and its documents are
        trusted again (in that order, so a trusted document's list is complete)."""
        for doc_id in doc_ids:
            if entry is not None and doc_id != self.study_doc():
                upsert_by_id(self.collection, self.imports_doc(doc_id),
                             {"$set": {"study": self._scope.study, f"imports.{import_id}": encode_entry(entry)},
                              "$inc": {"v": 1}})
            self.collection.update_one({"_id": doc_id}, {"$unset": {f"inflight.{import_id}": ""}, "$inc": {"v": 1}})

    def undo(self, import_id: Any, doc_ids: list[str]) -> None:
        """Subtract a rolled-back import from the documents that still hold it in flight (exactly once)."""
        for doc in find_by_ids(self.collection, doc_ids):
            added = (doc.get("inflight") or {}).get(str(import_id))
            if added is None:
                continue
            change = {"$inc": {"v": 1, "count": -added["count"],
                               **{f"labels.{k}": -n for k, n in added["labels"].items()}},
                      "$unset": {f"inflight.{import_id}": ""}}
            self.collection.update_one({"_id": doc["_id"], f"inflight.{import_id}": {"$exists": True}}, change)
        for doc_id in doc_ids:  # listed only if a settle failed half-way
            self.collection.update_one({"_id": self.imports_doc(doc_id), f"imports.{import_id}": {"$exists": True}},
                                       {"$unset": {f"imports.{import_id}": ""}, "$inc": {"v": 1}})

    def mark_mixed(self, import_ids: set[Any], entries: Iterable[Mapping[str, Any]],
                   new_tags: Mapping[str, Any] | None = None) -> None:
        """Samples of these imports are being retagged (to `new_tags`) or deleted: the documents of their
        tags, and of the tags they get, no longer answer alone."""
        tagged = [entry["tags"] for entry in entries if entry["import_id"] in import_ids]
        doc_ids = {doc_id for tags in [*tagged, new_tags or {}] for doc_id in self.doc_ids(tags)}
        flags = {f"mixed.{import_id}": True for import_id in import_ids}
        if flags:
            for doc_id in doc_ids:
                upsert_by_id(self.collection, doc_id, {"$set": {"study": self._scope.study, **flags}, "$inc": {"v": 1}})

    # -- reading -----------------------------------------------------------------------------------
    def count(self, rest: Mapping[str, Any], allowed: list[Any] | None) -> int | None:
        """The number of samples matching `rest` (equality on one tag, or nothing) with a label in `allowed`
        (None: any); None when these documents cannot answer and the catalog must."""
        wanted = catalog_equalities(rest)
        doc_ids = None if wanted is None else self._value_docs(wanted)
        labels = None if allowed is None else {canonical(label) for label in allowed}
        if doc_ids is None or (labels is not None and None in labels):
            return None
        docs = find_by_ids(self.collection, doc_ids)
        if len(docs) < len(doc_ids) and not self._study_settled():
            return None  # a tag value no document holds: zero, unless retags before these counts existed
        if any(not _trusted(doc) or (labels is not None and doc.get("uncounted"))
               or (len(doc_ids) > 1 and doc.get("multi")) for doc in docs):
            return None
        if labels is None:
            return sum(doc.get("count", 0) for doc in docs)
        return sum((doc.get("labels") or {}).get(key, 0) for doc in docs for key in labels)

    def entries_for(self, wanted: Mapping[str, list[Any]]) -> list[dict[str, Any]] | None:
        """Catalog entries of the imports holding one tag value (what a plan by that value needs); None when
        `wanted` is not one tag value or its documents are not trusted (the whole catalog answers then)."""
        doc_ids = self._value_docs(wanted)
        if doc_ids is None or len(doc_ids) != 1 or doc_ids == [self.study_doc()]:
            return None
        doc_id = doc_ids[0]
        found = {doc["_id"]: doc for doc in find_by_ids(self.collection, [doc_id, self.imports_doc(doc_id)])}
        counts, listed = found.get(doc_id), found.get(self.imports_doc(doc_id))
        if counts is None:
            return [] if self._study_settled() else None
        if not _trusted(counts) or listed is None:
            return None
        entries = [decode_entry(value) for value in (listed.get("imports") or {}).values()]
        return entries if sum(entry["count"] for entry in entries) == counts.get("count") else None

    def _value_docs(self, wanted: Mapping[str, list[Any]]) -> list[str] | None:
        """The count documents of the values `wanted` accepts for its one tag (the study's when it names no
        tag); None when it names two tags, an import, or a value that has no key."""
        if len(wanted) > 1 or "import_id" in wanted:
            return None
        if not wanted:
            return [self.study_doc()]
        (field, values), = wanted.items()
        doc_ids = list(dict.fromkeys(self.tag_doc(field.split(".", 1)[1], value) for value in values))
        return None if None in doc_ids else doc_ids

    def _study_settled(self) -> bool:
        return _trusted(self.collection.find_one({"_id": self.study_doc()}) or {})

    # -- building and dropping ---------------------------------------------------------------------
    def ensure_built(self, entries: Callable[[], Iterable[Mapping[str, Any]]]) -> None:
        """Databases written before these counts get them once, from the catalog's entries."""
        if not self._checked_built:
            build_once(self._scope, COUNTS, lambda: self.refresh(entries))
            self._checked_built = True

    def expected(self, entries: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
        """The documents the catalog's entries imply (imports no longer uniform are marked mixed)."""
        docs: dict[str, dict[str, Any]] = {self.study_doc(): {"count": 0, "labels": {}}}
        for entry in entries:
            added = contribution(entry)
            for doc_id in self.doc_ids(entry["tags"]):
                if doc_id != self.study_doc():
                    listed = docs.setdefault(self.imports_doc(doc_id), {"imports": {}})
                    listed["imports"][str(entry["import_id"])] = encode_entry(entry)
                doc = docs.setdefault(doc_id, {"count": 0, "labels": {}})
                if not entry["uniform"]:
                    doc.setdefault("mixed", {})[str(entry["import_id"])] = True
                doc["count"] += added["count"]
                for key, n in added["labels"].items():
                    doc["labels"][key] = doc["labels"].get(key, 0) + n
                if added["uncounted"]:
                    doc["uncounted"] = True
                if added["multi"]:
                    doc["multi"] = True
        return docs

    def refresh(self, entries: Callable[[], Iterable[Mapping[str, Any]]], write: bool = True) -> int:
        """Rewrite the study's count documents from the catalog's entries; returns how many
        differed (`write=False`: only count them). The documents are read before the catalog, and each is
        rewritten only if no import touched it since (its `v` is unchanged) and none is in flight, so a
        refresh racing an import never loses or doubles it."""
        stored = {doc["_id"]: doc for doc in self.collection.find({"study": self._scope.study})}
        wanted = self.expected(entries())
        differing = 0
        for doc_id in set(stored) | set(wanted):
            old, new = stored.get(doc_id), wanted.get(doc_id)
            if (old or {}).get("inflight") or _comparable(old) == _comparable(new):
                continue
            differing += 1
            if not write:
                continue
            if old is None:
                try:
                    self.collection.insert_one({"_id": doc_id, "study": self._scope.study, "v": 1, **new})
                except DuplicateKeyError:
                    pass  # an import created it meanwhile: its own additions stand
            elif new is None:
                self.collection.delete_one({"_id": doc_id, "v": old.get("v")})
            else:
                self.collection.replace_one({"_id": doc_id, "v": old.get("v")},
                                            {"_id": doc_id, "study": self._scope.study, "v": old.get("v", 0) + 1,
                                             **new})
        return differing

    def drop_study(self) -> None:
        self.collection.delete_many({"study": self._scope.study})
        forget_built(self._scope, COUNTS)


def _trusted(doc: Mapping[str, Any]) -> bool:
    """No import in flight and none retagged or partly deleted: the document's counts are exact on their own."""
    return not doc.get("inflight") and not doc.get("mixed")


def _comparable(doc: Mapping[str, Any] | None) -> dict[str, Any]:
    """A count document without its bookkeeping, labels with zero counts dropped, for comparison (a missing
    document reads as one that counts nothing)."""
    doc = dict(doc or {})
    return {"count": doc.get("count", 0), "labels": {k: n for k, n in (doc.get("labels") or {}).items() if n},
            "mixed": sorted(doc.get("mixed") or {}), "uncounted": bool(doc.get("uncounted")),
            "multi": bool(doc.get("multi")), "imports": sorted(doc.get("imports") or {})}
