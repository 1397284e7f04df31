"""Inverted indexes for the equality filters notebooks repeat, kept in documents read by `_id`.

`runs({"tags.sweep": "lr"})`, a comparison panel's query, a run looked up by name, or the best
parameters of one run would otherwise read every document of the collection on a server that pushes
down nothing but `_id` (FerretDB 1.x). Each entry is one document, `_id` =
`<study>:<field>=<value as JSON>`, listing the ids of the documents with that value, for a few
top-level fields and every scalar under a few prefixes (runs: `name`, `status`, `job`, `tags.*`,
`hyper_parameters.*`; parameters: `run`, `architecture`, `tags.*`). A query made only of such
equalities reads those entries, intersects them and fetches the documents by `_id`; each document is
then checked against the query, so an entry that is out of date can cost a lookup but never a wrong
answer. Other queries, and answers so large that one scan is cheaper, read the collection as before.

Entries follow MongoDB's equality (value_keys.py): a value is filed under its canonical key, so 64 and
64.0 share an entry, and an array under each of its elements, so `{'tags.x': 1}` finds `tags.x=[1, 2]`.
An entry's document holds at most HEAD_CAP ids: FerretDB reads and rewrites a whole document for every
update, at about 8 µs per array element, so an entry every run shares (`status=finished`, a study-wide tag)
made each run start cost more than the one before (19 ms at 250 runs, 44 ms at 2,000). When the head is full
(a writer's findAndModify, by `_id` alone, returns it with HEAD_CAP ids), it is marked `full` and new ids
go to one of SHARDS shard documents (`<entry>#<n>`, n from the id), so a write touches a document of about
1/SHARDS of the entry; a reader of a full entry reads the head and its shards. Within each document, ids are
packed into binary now and then (packed_ids.py): an array costs FerretDB per element, a binary per byte.

Source of truth: the documents. An entry is written before the document it names (a kill leaves an
entry too many, never one too few) and its updates are `$addToSet`/`$pull` of the document's id, so a
retry changes nothing (docs/CONSISTENCY.md). `full` is set before any shard is written and never unset (drop_study
empties a full head but keeps it), so a reader that sees no `full` has every id in the head.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from bson import ObjectId
from pymongo import UpdateOne
from pymongo.errors import BulkWriteError

from .batched_delete import delete_matching
from .build_markers import build_once, forget_built
from .by_id import bulk_in_batches, find_and_upsert_by_id, find_by_ids, id_key, run_together, upsert_by_id
from .packed_ids import add_change, ids_of, merge_change, pack_due, remove_change, shard_pack_due
from .scope import Scope
from .value_keys import canonical, field_matches, filed_values

SCAN_ABOVE = 200  # candidates past which one collection scan is cheaper than one lookup per document
KEY_FORMAT = 2  # entries keyed by canonical values (1: by JSON text, where 64 and 64.0 differed)
HEAD_CAP = 64  # ids an entry's own document holds; more go to its shards
SHARDS = 16
_MISSING = object()


def _value_at(doc: Mapping[str, Any], field: str) -> Any:
    head, _, rest = field.partition(".")
    value = doc.get(head, _MISSING)
    if rest:
        return value.get(rest, _MISSING) if isinstance(value, Mapping) else _MISSING
    return value


def matches(doc: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """MongoDB's answer for equalities on scalars: across int/float, and on any element of an array."""
    for field, value in wanted.items():
        stored = _value_at(doc, field)
        if stored is _MISSING or not field_matches(stored, [value]):
            return False
    return True


def equalities(query: Mapping[str, Any], indexable: Callable[[str], bool]) -> dict[str, Any] | None:
    """{field: value} when `query` (beyond `study`) is only equalities on scalars of fields `indexable` accepts;
    else None (arrays match as a whole and None matches missing fields: the collection answers those)."""
    found: dict[str, Any] = {}
    for field, value in query.items():
        if field == "study":
            continue
        if field == "$and" and isinstance(value, list) and all(isinstance(part, Mapping) for part in value):
            for part in value:
                inner = equalities(part, indexable)
                if inner is None:
                    return None
                for name, wanted in inner.items():
                    if name in found and canonical(found[name]) != canonical(wanted):
                        return None
                    found[name] = wanted
            continue
        if isinstance(value, Mapping) and set(value) == {"$eq"}:
            value = value["$eq"]
        if not indexable(field) or isinstance(value, (list, Mapping)) or canonical(value) is None:
            return None
        if field in found and canonical(found[field]) != canonical(value):
            return None
        found[field] = value
    return found or None


class EqualityIndex:
    def __init__(self, scope: Scope, name: str, top_fields: tuple[str, ...], prefixes: tuple[str, ...]) -> None:
        self._scope = scope
        self.name = name
        self.top_fields = top_fields
        self.prefixes = prefixes
        self._checked_built = False
        self._full: set[str] = set()  # entries this process saw full (never unset, not even by drop_study)

    @property
    def collection(self) -> Any:
        return self._scope.collection(self.name)

    def entries_of(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        """The indexed fields of a document, as {field: stored value} (an array is filed under each element)."""
        pairs = {field: doc[field] for field in self.top_fields if filed_values(doc.get(field))}
        for prefix in self.prefixes:
            for key, value in (doc.get(prefix[:-1]) or {}).items():
                if filed_values(value):
                    pairs[prefix + key] = value
        return pairs

    def _indexable(self, field: str) -> bool:
        return field in self.top_fields or (field.startswith(self.prefixes) and field.count(".") == 1)

    def equalities(self, query: Mapping[str, Any]) -> dict[str, Any] | None:
        """{field: value} when `query` (beyond `study`) is only equalities on indexed fields; else None."""
        return equalities(query, self._indexable)

    def lookup(self, documents: Any, query: Mapping[str, Any]) -> list[dict[str, Any]] | None:
        """The documents of `documents` (a collection) matching `query`, through the index; None when the
        index cannot answer (not only indexed equalities, another study, or a scan would be cheaper)."""
        wanted = self.equalities(query) if query.get("study", self._scope.study) == self._scope.study else None
        if wanted is None:
            return None
        self.ensure_built(documents)
        ids = self.candidates(wanted)
        if ids is None:
            return None
        return [d for d in find_by_ids(documents, ids) if d.get("study") == self._scope.study and matches(d, wanted)]

    def key(self, field: str, value: Any) -> str:
        """`<study>:<field>=<canonical value>`, the study and field escaped (by_id.id_key): no two collide."""
        return f"{id_key(self._scope.study)}:{id_key(field, separator='=')}={canonical(value)}"

    def add(self, doc_id: Any, pairs: Mapping[str, Any]) -> dict[str, set[Any]]:
        """File `doc_id` under every (field, value) pair: entries known full in one bulk write to their shards,
        the others one findAndModify each (its answer tells when a head is full). Returns the ids each head
        written holds now, by field, for the fields whose entry is not full (a caller may need no read then)."""
        keys = self._keys(pairs)
        shards = [_shard(key, doc_id) for key in keys if key in self._full]
        heads: dict[str, set[Any]] = {}
        writes = [functools.partial(self._add_to_head, key, doc_id, heads) for key in keys if key not in self._full]
        if shards:
            writes.append(functools.partial(self._add_to_shards, shards, doc_id))
        # different documents: all at once, each waited for before the caller goes on; on a pool of their own, as
        # a run's update calls this from the "write" pool
        run_together(writes, use="index-write")
        return heads

    def _add_to_shards(self, shards: list[str], doc_id: Any) -> None:
        change = add_change(doc_id, self._scope.study)
        if len(shards) == 1:
            upsert_by_id(self.collection, shards[0], change)
        else:
            try:
                bulk_in_batches(self.collection, [UpdateOne({"_id": key}, change, upsert=True) for key in shards],
                                ordered=True)
            except (BulkWriteError, KeyError):  # a racing first insert; FerretDB's answer lacks nModified
                for key in shards:  # $addToSet: writing one twice changes nothing
                    upsert_by_id(self.collection, key, change)
        if shard_pack_due(doc_id):
            for shard in find_by_ids(self.collection, shards):
                self._merge(shard)

    def _merge(self, doc: Mapping[str, Any]) -> None:
        change = merge_change(doc)
        if change:
            self.collection.update_one({"_id": doc["_id"]}, change)

    def _add_to_head(self, key: str, doc_id: Any, heads: dict[str, set[Any]]) -> None:
        """`doc_id` into the entry's head. A head that reaches HEAD_CAP ids is marked full, and this process
        files the next ids in shards; other writers that have not seen it full yet put a few more in it, and
        readers read the head too."""
        head = find_and_upsert_by_id(self.collection, key, add_change(doc_id, self._scope.study))
        filed = ids_of(head)
        if not head.get("full") and len(filed) >= HEAD_CAP:
            self.collection.update_one({"_id": key}, {"$set": {"full": True}})
            head["full"] = True
        if pack_due(head):
            self._merge(head)
        if head.get("full"):
            self._full.add(key)
        else:
            heads[key] = filed

    def remove(self, doc_id: Any, pairs: Mapping[str, Any]) -> None:
        """Take `doc_id` out of the head, and out of its shard where this process has seen the entry full. An id
        another process filed in a shard this process does not know of stays: an entry too many, which costs
        a reader one lookup, never a wrong answer."""
        change = remove_change(doc_id)
        operations = [UpdateOne({"_id": where}, change) for key in self._keys(pairs)
                      for where in ((key, _shard(key, doc_id)) if key in self._full else (key,))]
        if operations:  # no upserts: nothing here can fail one by one
            bulk_in_batches(self.collection, operations)

    def _keys(self, pairs: Mapping[str, Any]) -> list[str]:
        return list(dict.fromkeys(self.key(field, value) for field, stored in pairs.items()
                                  for value in filed_values(stored)))

    def candidates(self, wanted: Mapping[str, Any], cap: int | None = SCAN_ABOVE) -> list[Any] | None:
        """Ids that may match (every equality's entry intersected); None when more than `cap` (a scan is
        cheaper)."""
        ids: set[Any] | None = None
        for field, value in sorted(wanted.items(), key=lambda item: item[0] != "name"):
            found = self._entry_ids(self.key(field, value))
            ids = found if ids is None else ids & found
            if not ids:
                return []
        return None if ids is None or (cap is not None and len(ids) > cap) else list(ids)

    def _entry_ids(self, key: str) -> set[Any]:
        """The ids filed under one entry: its head's, and its shards' once it is full."""
        shards = [f"{key}#{number}" for number in range(SHARDS)]
        if key in self._full:  # full for good: the head and its shards in one round of lookups
            return set().union(*(ids_of(doc) for doc in find_by_ids(self.collection, [key, *shards])))
        head = self.collection.find_one({"_id": key}) or {}
        found = ids_of(head)
        if head.get("full"):
            self._full.add(key)
            for shard in find_by_ids(self.collection, shards):
                found.update(ids_of(shard))
        return found

    def ensure_built(self, documents: Any) -> None:
        """Databases written before the index get it once, from their documents (one scan)."""
        if not self._checked_built:
            build_once(self._scope, f"{self.name}-{KEY_FORMAT}",
                       lambda: self.rebuild(documents.find({"study": self._scope.study})))
            self._checked_built = True

    def rebuild(self, documents: Iterable[Mapping[str, Any]]) -> int:
        count = 0
        for run in documents:
            self.add(run["_id"], self.entries_of(run))
            count += 1
        return count

    def drop_study(self) -> None:
        # a full head stays (emptied), so a process that saw it full may go on writing to its shards
        delete_matching(self.collection, {"study": self._scope.study, "full": {"$ne": True}})
        self.collection.update_many({"study": self._scope.study, "full": True},
                                    {"$set": {"ids": []}, "$unset": {"packed": "", "gone": ""}})
        forget_built(self._scope, f"{self.name}-{KEY_FORMAT}")


def _shard(key: str, doc_id: Any) -> str:
    """The shard of a full entry that files `doc_id`: from an ObjectId's counter byte (runs spread evenly)."""
    number = doc_id.binary[-1] if isinstance(doc_id, ObjectId) else zlib.crc32(repr(doc_id).encode())
    return f"{key}#{number % SHARDS}"
