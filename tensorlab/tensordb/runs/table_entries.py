"""Entries for the rare keys of the run table, so `runs({"tags.sweep": "probe"})` costs its answer, not the study.

An equality read from the whole table costs the table's bytes, which grow with the study (about 340 KB and
30 ms at 10,000 runs with two metrics and four keys each). Each fold (run_table.py) files the keys of the rows
it folds: a key that at most RARE_IN_CHUNK rows of the chunk hold gets those runs' ids in its entry (`_id`
`<format>:<study>:key:<key>`, in the table's collection); a commoner key marks its entry `broad` instead, and
readers of a broad entry read the whole table. A reader takes the union of an entry's ids, the chunks' pending
rows that hold the key, and the runs in flight, and checks each run against its document.

Source of truth: the run documents, through the rows. A fold files its entries before it writes its segment and
takes its pending rows out, and readers read the pending rows before the entries: a row is pending when read,
or was filed (or its key marked broad) before that read. Filing is `$addToSet` of ids and `$set` of `broad`, so
two folds of the same rows, or a retried one, change nothing. Entries only grow: a run that left a key stays
listed (checked out by its document, like every row). Status is never filed: its few values are common.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Set
from typing import Any

import numpy as np
from bson import ObjectId
from pymongo import UpdateOne
from pymongo.errors import BulkWriteError

from ..documents.by_id import bulk_in_batches, find_by_ids, id_key, upsert_by_id
from ..documents.scope import Scope
from .row_segments import Rows, binary_ids

RARE_IN_CHUNK = 8  # rows of one chunk (1/16 of the study) a key may have and still be filed
UNFILED = "status="  # row keys never filed (a handful of values, each held by many runs)
READ_UP_TO = 200  # ids past which an entry is not worth its lookups: the table is read instead


class TableEntries:
    def __init__(self, scope: Scope, table_format: str, collection_name: str) -> None:
        self._scope = scope
        self._format = table_format
        self._collection_name = collection_name

    @property
    def _collection(self) -> Any:
        return self._scope.collection(self._collection_name)  # through the scope: ConnectionFailed once closed

    def entry_id(self, key: str) -> str:
        return id_key(self._format, self._scope.study, "key", key)

    def file(self, chunk: Rows, folded: np.ndarray, known_broad: Set[str] = frozenset()) -> set[str]:
        """The keys of the rows `folded` (ids), given every latest row of their chunk (with keys): rare keys get
        their ids, common ones are marked broad, except those `known_broad` (marked by an earlier fold of the
        chunk, which its cold document lists). One bulk write; returns the keys it marked broad."""
        counts = Counter(key for keys in chunk.keys for key in keys)  # type: ignore[union-attr]
        filed: dict[str, list[ObjectId]] = defaultdict(list)
        broad: set[str] = set()
        mine = np.isin(chunk.ids, folded)
        for run, keys in zip(binary_ids(chunk.ids[mine]), chunk.keys[mine], strict=True):  # type: ignore[index]
            for key in keys:
                if key.startswith(UNFILED) or key in known_broad:
                    continue
                if counts[key] > RARE_IN_CHUNK:  # a key's count is the chunk's: broad or filed, never both
                    broad.add(key)
                else:
                    filed[key].append(ObjectId(run))
        study = self._scope.study
        changes = {self.entry_id(key): {"$set": {"study": study}, "$addToSet": {"ids": {"$each": ids}}}
                   for key, ids in filed.items()}
        changes.update({self.entry_id(key): {"$set": {"study": study, "broad": True}} for key in broad})
        self._write(changes)
        return broad

    def _write(self, changes: Mapping[str, dict[str, Any]]) -> None:
        if not changes:
            return
        try:
            bulk_in_batches(self._collection, [UpdateOne({"_id": key}, change, upsert=True)
                                               for key, change in changes.items()])
        except (BulkWriteError, KeyError):  # a racing first insert; FerretDB's answer lacks nModified
            for key, change in changes.items():  # idempotent: writing one twice changes nothing
                upsert_by_id(self._collection, key, change)

    def may_tell(self, keys: list[str | None]) -> bool:
        """Whether an entry may answer for `keys` (one of them is filed)."""
        return None not in keys and any(not key.startswith(UNFILED) for key in keys)  # type: ignore[union-attr]

    def ids(self, keys: list[str]) -> set[ObjectId] | None:
        """Runs whose folded rows may hold every one of `keys` (each usable entry intersected; a key no fold
        filed has none); None when every entry is broad or past READ_UP_TO ids. Read after the pending rows."""
        keys = [key for key in keys if not key.startswith(UNFILED)]
        docs = {doc["_id"]: doc for doc in find_by_ids(self._collection, [self.entry_id(key) for key in keys])}
        usable = []
        for key in keys:
            doc = docs.get(self.entry_id(key)) or {}
            if not doc.get("broad") and len(doc.get("ids") or ()) <= READ_UP_TO:
                usable.append(set(doc.get("ids") or ()))
        return set.intersection(*usable) if usable else None
