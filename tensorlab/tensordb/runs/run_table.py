"""A study's runs as a small table, so a search can filter, sort and limit without reading every run.

"Top 10 runs with lr = 0.01 by accuracy" read every run once more than 200 matched (0.41 s at 2,000 runs) on a
server that pushes down nothing but `_id` (FerretDB 1.x). The table keeps, per run, its id, the numbers of
`summary.best` (what people sort by) and the equality keys of its status, tags and hyper-parameters (what
people filter by), in 8 chunks (`run_table`, chunk = the id's last byte mod 8). Each chunk is two documents:
a hot one, which every write rewrites (the rows put since the last fold, and the marks of runs in flight: a few
KB), and a cold one, which only folds rewrite (packed segments, row_segments.py: about 10 KB at 10,000 runs
with one metric). Each lookup costs FerretDB about half a millisecond besides its bytes, so fewer chunks read
faster (a top 10 of 10,000 runs: 16 chunks, 42 lookups, 51 ms; 8 chunks, 26 lookups, 24-33 ms), but each fold
rewrites more.
A search reads the chunks (8 pairs of `_id` lookups), filters and ranks in numpy, and fetches only the runs it
returns. An equality on a rare key (a sweep's tag) reads the hot documents and the key's entry instead
(table_entries.py). Every run has a row from its start (put before
its document is inserted, at row_version 0), so the table also lists a study's runs (`ids()`) and answers
equality queries on those fields; and a run start writes one row instead of an index entry per tag and
hyper-parameter.

Source of truth: the run documents. Each run document has `row_version`, counted up (`$inc`) by every write
that changes its row's fields (summary, status, tags, hyper_parameters). Such a write first marks the run in
flight (`inflight.<run>_<token>`, a key of its writer's own), then writes the document with findAndModify,
which returns the document as that write left it, and then puts the row made from that answer under its
version (`pending.<run>_<version>`, a key of its own) and takes out its own mark and the run's pending row one
version older (outdated by this one, so a chunk folds one row per run started and finished), in one update. A
run's row is the one with the highest version, wherever it is: rows put by racing writers, or by a rebuild,
settle on the document's last state, whatever order their puts land in. Readers fetch runs in flight from
their documents and check every run they return against its document, so a row can cost a lookup but never a
wrong answer (docs/CONSISTENCY.md). A writer killed mid-way leaves its mark: that run is fetched by every search.

When a chunk holds COMPACT_AT pending rows, the writer that sees them folds them, with the cold document's
segments, into one new segment: it files the folded rows' keys (table_entries.py; a key the cold document lists
as `broad` is not written again), writes the new segment while `$unset`ting exactly the segments it read, then
`$unset`s exactly the pending rows it folded. A put landing meanwhile has a key of its own, so it stays; two
folds at once leave rows twice, which the highest version settles. No fold needs a compare-and-swap, which
FerretDB answers by reading the whole collection. Readers read each chunk's hot document before its cold one: a
row taken out of the hot one was in the cold one before.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from bson import ObjectId

from ..documents.batched_delete import delete_matching
from ..documents.by_id import find_and_upsert_by_id, find_by_ids, find_in_pairs, id_key, upsert_by_id
from ..documents.scope import Scope
from ..documents.value_keys import canonical, filed_values
from .row_segments import Rows, binary_ids, concat, latest, pending_rows, rows_of_dicts, segment, segment_rows
from .table_entries import TableEntries

TABLE = "run_table"
FORMAT = "table5"  # document `_id` prefix (`table` to `table4`: earlier formats, deleted at the rebuild)
OLD_FORMATS = ("table", "table2", "table3", "table4")
OLD_CHUNKS = 16  # chunks per study of every earlier format
BUILT = "run_table-6"  # the build marker of this format (build_markers.py)
CHUNKS = 8  # fewer: a search reads fewer documents (each lookup costs FerretDB about 0.5 ms), a fold rewrites more
COMPACT_AT = 16  # pending rows a chunk holds before a writer folds them (fewer: each write rewrites less)
VERSION = "row_version"  # the run document's count of writes that changed its row
ROW_FIELDS = ("summary", "status", "tags", "hyper_parameters")
KEYED_ROOTS = ("tags", "hyper_parameters")


def ranked_values(summary: Any) -> dict[str, float]:
    """The numbers of a run summary's `best` that a search can sort by (finite ints and floats)."""
    best = (summary or {}).get("best") if isinstance(summary, Mapping) else None
    if not isinstance(best, Mapping):
        return {}
    return {str(name): float(value) for name, value in best.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)}


def keyed(field: str) -> bool:
    """Whether the table files equalities on `field` (status, tags.<key>, hyper_parameters.<key>)."""
    root, dot, rest = field.partition(".")
    return field == "status" or (root in KEYED_ROOTS and bool(dot) and bool(rest) and "." not in rest)


def row_key(field: str, value: Any) -> str | None:
    """The key a (field, scalar) pair is filed under, following MongoDB's equality (value_keys.py)."""
    key = canonical(value)
    return None if key is None else f"{id_key(field, separator='=')}={key}"


def row_keys(doc: Mapping[str, Any]) -> list[str]:
    """Every key a run document is filed under: its status, and each scalar (or array element) of its tags and
    hyper-parameters."""
    pairs = [("status", doc.get("status"))]
    for root in KEYED_ROOTS:
        values = doc.get(root)
        pairs += [(f"{root}.{name}", value) for name, value in (values if isinstance(values, Mapping) else {}).items()]
    return sorted({key for field, stored in pairs for value in filed_values(stored)
                   if (key := row_key(field, value)) is not None})


@dataclass
class Table:
    """Every row of a study: ids (S12), a float64 column per metric, the ids of rows in flight, and which rows
    match the equalities read for (None: none asked)."""

    ids: np.ndarray
    columns: dict[str, np.ndarray]
    inflight: set[bytes]
    match: np.ndarray | None = None

    def column(self, name: str) -> np.ndarray:
        return self.columns.get(name, np.full(len(self.ids), np.nan))


class RunTable:
    def __init__(self, scope: Scope) -> None:
        self._scope = scope
        self.entries = TableEntries(scope, FORMAT, TABLE)

    @property
    def collection(self) -> Any:
        return self._scope.collection(TABLE)

    def _chunk_id(self, chunk: int) -> str:
        """The cold document: the chunk's segments."""
        return id_key(FORMAT, self._scope.study, chunk)

    def _hot_id(self, chunk: int) -> str:
        """The hot document: the chunk's pending rows and marks."""
        return id_key(FORMAT, self._scope.study, chunk, "hot")

    def mark(self, run_id: ObjectId) -> str:
        """Mark the run in flight before its document changes; returns the mark's token for `put`."""
        token = os.urandom(4).hex()
        upsert_by_id(self.collection, self._hot_id(_chunk_of(run_id)),
                     {"$set": {"study": self._scope.study, f"inflight.{run_id}_{token}": True}})
        return token

    def unmark(self, run_id: ObjectId, token: str) -> None:
        self.collection.update_one({"_id": self._hot_id(_chunk_of(run_id))},
                                   {"$unset": {f"inflight.{run_id}_{token}": ""}})

    def put(self, run_id: ObjectId, doc: Mapping[str, Any], token: str | None = None) -> None:
        """The row made from `doc` (the run document as a write left it, with its row_version), and the writer's
        mark taken out: one write; a few more now and then to fold pending rows."""
        version = int(doc.get(VERSION) or 0)
        row = json.dumps(_row(doc))
        change: dict[str, Any] = {"$set": {"study": self._scope.study, f"pending.{run_id}_{version:x}": row}}
        taken = {f"inflight.{run_id}_{token}": ""} if token is not None else {}
        if version:  # the run's row one version older, if pending, is outdated by this one: a fold folds one row
            taken[f"pending.{run_id}_{version - 1:x}"] = ""
        if taken:
            change["$unset"] = taken
        chunk = _chunk_of(run_id)
        hot = find_and_upsert_by_id(self.collection, self._hot_id(chunk), change)
        if len(hot.get("pending") or {}) >= COMPACT_AT:
            self._fold(chunk, hot)

    def _fold(self, chunk: int, hot: Mapping[str, Any], cold: Mapping[str, Any] | None = None) -> None:
        """The hot document's pending rows (as read) and the cold one's segments (`cold`: as read earlier) into
        one segment; entries for the folded rows' keys first, the pending rows taken out last."""
        if cold is None:
            cold = self.collection.find_one({"_id": self._chunk_id(chunk)}) or {}
        folded = pending_rows(hot.get("pending") or {}, None)
        rows = latest(concat([*_segments_of(cold, None, True), folded], False))
        broad = self.entries.file(rows, folded.ids, set(cold.get("broad") or ()))
        new = f"segments.{os.urandom(6).hex()}"
        change: dict[str, Any] = {"$set": {"study": self._scope.study, new: segment(rows)}}
        if broad:  # listed once their entries say so: later folds of the chunk need not write them again
            change["$addToSet"] = {"broad": {"$each": sorted(broad)}}
        if cold.get("segments"):
            change["$unset"] = {f"segments.{old}": "" for old in cold["segments"]}
        upsert_by_id(self.collection, self._chunk_id(chunk), change)
        if hot.get("pending"):
            taken = {f"pending.{key}": "" for key in hot["pending"]}
            self.collection.update_one({"_id": hot["_id"]}, {"$unset": taken})

    def read(self, wanted: Mapping[str, Any] | None = None) -> Table:
        """Every row of the study (8 pairs of lookups); with `wanted` (equalities on keyed fields), which rows
        match."""
        keys = None if wanted is None else [row_key(field, value) for field, value in wanted.items()]
        pairs = find_in_pairs(self.collection, [(self._hot_id(k), self._chunk_id(k)) for k in range(CHUNKS)])
        parts = []
        for hot, cold in pairs:
            parts += _segments_of(cold or {}, keys, False)
            parts.append(pending_rows((hot or {}).get("pending") or {}, keys))
        rows = latest(concat(parts, keys is not None))
        return Table(rows.ids, rows.columns, _inflight([hot for hot, _ in pairs]), rows.match)

    def candidates(self, wanted: Mapping[str, Any]) -> set[ObjectId] | None:
        """Runs that may match the equalities `wanted` (keyed fields), from the rows pending and in flight and
        the entries of the wanted keys (table_entries.py), without the segments; None when no entry can tell
        (every key common): the caller reads the table."""
        keys = [row_key(field, value) for field, value in wanted.items()]
        if not self.entries.may_tell(keys):
            return None
        hot = find_by_ids(self.collection, [self._hot_id(k) for k in range(CHUNKS)])  # before the entries
        filed = self.entries.ids(keys)  # type: ignore[arg-type]
        if filed is None:
            return None
        pending = latest(concat([pending_rows(doc.get("pending") or {}, keys) for doc in hot], True))
        matched = binary_ids(pending.ids[pending.match])  # type: ignore[index]
        return filed | {ObjectId(run) for run in [*matched, *_inflight(hot)]}

    def rebuild(self, runs: Iterable[Mapping[str, Any]]) -> None:
        """Rows for runs written before this table format (once per study, build_markers.py), one segment per
        chunk, each row under its document's row_version: a row put meanwhile is as new or newer."""
        by_chunk: dict[int, list[Mapping[str, Any]]] = {}
        for run in runs:
            by_chunk.setdefault(_chunk_of(run["_id"]), []).append(run)
        for chunk, docs in by_chunk.items():
            rows = rows_of_dicts([doc["_id"].binary for doc in docs], [int(doc.get(VERSION) or 0) for doc in docs],
                                 [_row(doc) for doc in docs], None)
            broad = self.entries.file(rows, rows.ids)  # one row per run already: each document once
            upsert_by_id(self.collection, self._chunk_id(chunk),
                         {"$set": {"study": self._scope.study, f"segments.{os.urandom(6).hex()}": segment(rows)},
                          "$addToSet": {"broad": {"$each": sorted(broad)}}})
        if by_chunk:  # a study without runs has no rows of an earlier format either
            self._delete_old_formats()

    def _delete_old_formats(self) -> None:
        """The earlier formats' chunks, hot documents and entries, which nothing reads any more."""
        study, table4 = self._scope.study, 0
        for old in OLD_FORMATS:
            for chunk in range(OLD_CHUNKS):
                for part in ((chunk,), (chunk, "hot")):
                    gone = self.collection.delete_one({"_id": id_key(old, study, *part)}).deleted_count
                    table4 += gone if old == "table4" else 0
        if table4:  # its entries (the first format with any): one scan of the collection, once
            entries = id_key("table4", study, "key") + ":"  # up to the next character (";"): every key, none else
            delete_matching(self.collection, {"study": study, "_id": {"$gte": entries, "$lt": entries[:-1] + ";"}})

    def drop_study(self) -> None:
        """The cold documents first: one left by a killed drop never lists a key as broad whose entry is gone."""
        for chunk in range(CHUNKS):
            self.collection.delete_one({"_id": self._chunk_id(chunk)})
        delete_matching(self.collection, {"study": self._scope.study})


def _row(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A run document's row as pending rows hold it: {"m": metrics to sort by, "k": equality keys}."""
    return {"m": ranked_values(doc.get("summary")), "k": row_keys(doc)}


def _chunk_of(run_id: ObjectId) -> int:
    return run_id.binary[-1] % CHUNKS  # the id's counter byte: runs spread evenly


def _segments_of(cold: Mapping[str, Any], wanted: list[str | None] | None, with_keys: bool) -> list[Rows]:
    return [segment_rows(part, wanted, with_keys) for part in (cold.get("segments") or {}).values()]


def _inflight(hot_docs: Iterable[Mapping[str, Any] | None]) -> set[bytes]:
    return {ObjectId(key.partition("_")[0]).binary for doc in hot_docs for key in (doc or {}).get("inflight") or {}}
