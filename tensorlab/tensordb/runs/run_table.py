"""A study's runs as a small table, so a search can filter, sort and limit without reading every run.

"Top 10 runs with lr = 0.01 by accuracy" read every run once more than 200 matched (0.41 s at 2,000 runs) on a
server that pushes down nothing but `_id` (FerretDB 1.x). The table keeps, per run, its id, the numbers of
`summary.best` (what people sort by) and the equality keys of its status, tags and hyper-parameters (what
people filter by), in 16 chunk documents (`run_table`, chunk = the id's last byte mod 16). A search reads the
chunks (16 `_id` lookups), filters and ranks in numpy, and fetches only the runs it returns; it needs no index
entries, which cost 17 lookups more for a value past its head. Every run has a row from its start (put before
its document is inserted, at row_version 0), so the table also lists a study's runs (`ids()`) and answers
equality queries on those fields; and a run start writes one row instead of an index entry per tag and
hyper-parameter.

Source of truth: the run documents. Each run document has `row_version`, counted up (`$inc`) by every write
that changes its row's fields (summary, status, tags, hyper_parameters). Such a write first marks the run in
flight (`inflight.<run>_<token>`, a key of its writer's own), then writes the document with findAndModify,
which returns the document as that write left it, and then puts the row made from that answer under its
version (`pending.<run>_<version>`, a key of its own) and takes out its own mark, in one update by `_id`. A
run's row is the one with the highest version, wherever it is: rows put by racing writers, or by a rebuild,
settle on the document's last state, whatever order their puts land in. Readers fetch runs in flight from
their documents and check every run they return against its document, so a row can cost a lookup but never a
wrong answer (docs/CONSISTENCY.md). A writer killed mid-way leaves its mark: that run is fetched by every search.

When a chunk holds COMPACT_AT pending rows, the writer that sees them folds the chunk as its put returned it
into one new segment of packed columns and, in the same update by `_id`, `$unset`s exactly the segments and
pending keys it folded; a put landing meanwhile has a key of its own, so it stays, and two folds at once leave
rows twice, which the highest version settles. No fold needs a compare-and-swap, which FerretDB answers by
reading the whole collection (every study's chunks).
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
from ..documents.by_id import find_and_upsert_by_id, find_by_ids, id_key, upsert_by_id
from ..documents.packed_columns import PACKING, pack_array, unpack
from ..documents.scope import Scope
from ..documents.value_keys import canonical, filed_values

TABLE = "run_table"
FORMAT = "table3"  # chunk `_id` prefix (`table`, `table2`: earlier formats, deleted at the rebuild)
CHUNKS = 16
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


@dataclass
class _Rows:
    ids: np.ndarray  # S12
    versions: np.ndarray  # int64: the run document's row_version when the row was made
    columns: dict[str, np.ndarray]
    match: np.ndarray | None = None  # bool per row: matches the equalities read for
    keys: np.ndarray | None = None  # object: a list of keys per row (decoded for folds only)


class RunTable:
    def __init__(self, scope: Scope) -> None:
        self._scope = scope

    @property
    def collection(self) -> Any:
        return self._scope.collection(TABLE)

    def _chunk_id(self, chunk: int) -> str:
        return id_key(FORMAT, self._scope.study, chunk)

    def mark(self, run_id: ObjectId) -> str:
        """Mark the run in flight before its document changes; returns the mark's token for `put`."""
        token = os.urandom(4).hex()
        upsert_by_id(self.collection, self._chunk_id(_chunk_of(run_id)),
                     {"$set": {"study": self._scope.study, f"inflight.{run_id}_{token}": True}})
        return token

    def unmark(self, run_id: ObjectId, token: str) -> None:
        self.collection.update_one({"_id": self._chunk_id(_chunk_of(run_id))},
                                   {"$unset": {f"inflight.{run_id}_{token}": ""}})

    def put(self, run_id: ObjectId, doc: Mapping[str, Any], token: str | None = None) -> None:
        """The row made from `doc` (the run document as a write left it, with its row_version), and the writer's
        mark taken out: one write; one more now and then to fold pending rows."""
        row = json.dumps({"m": ranked_values(doc.get("summary")), "k": row_keys(doc)})
        change: dict[str, Any] = {"$set": {"study": self._scope.study,
                                           f"pending.{run_id}_{int(doc.get(VERSION) or 0):x}": row}}
        if token is not None:
            change["$unset"] = {f"inflight.{run_id}_{token}": ""}
        chunk = find_and_upsert_by_id(self.collection, self._chunk_id(_chunk_of(run_id)), change)
        if len(chunk.get("pending") or {}) >= COMPACT_AT:
            self._fold(chunk)

    def _fold(self, doc: Mapping[str, Any]) -> None:
        """The chunk as read into one segment, removing exactly the segments and pending rows folded."""
        rows = _latest(_rows_of(doc, None, with_keys=True))
        unset = {f"segments.{token}": "" for token in doc.get("segments") or {}}
        unset.update({f"pending.{key}": "" for key in doc.get("pending") or {}})
        change = {"$set": {f"segments.{os.urandom(6).hex()}": _segment(rows)}, "$unset": unset}
        self.collection.update_one({"_id": doc["_id"]}, change)

    def read(self, wanted: Mapping[str, Any] | None = None) -> Table:
        """Every row of the study (16 lookups); with `wanted` (equalities on keyed fields), which rows match."""
        keys = None if wanted is None else [row_key(field, value) for field, value in wanted.items()]
        docs = find_by_ids(self.collection, [self._chunk_id(k) for k in range(CHUNKS)])
        rows = _latest(_concat([_rows_of(doc, keys) for doc in docs], keys is not None))
        inflight = {ObjectId(key.partition("_")[0]).binary for doc in docs for key in doc.get("inflight") or {}}
        return Table(rows.ids, rows.columns, inflight, rows.match)

    def rebuild(self, runs: Iterable[Mapping[str, Any]]) -> None:
        """Rows for runs written before this table format (once per study, build_markers.py), one segment per
        chunk, each row under its document's row_version: a row put meanwhile is as new or newer."""
        by_chunk: dict[int, list[Mapping[str, Any]]] = {}
        for run in runs:
            by_chunk.setdefault(_chunk_of(run["_id"]), []).append(run)
        for chunk, docs in by_chunk.items():
            rows = _from_docs([doc["_id"].binary for doc in docs], [int(doc.get(VERSION) or 0) for doc in docs],
                              [{"m": ranked_values(doc.get("summary")), "k": row_keys(doc)} for doc in docs], None)
            upsert_by_id(self.collection, self._chunk_id(chunk),
                         {"$set": {"study": self._scope.study, f"segments.{os.urandom(6).hex()}": _segment(rows)}})
        for old in ("table", "table2"):  # the earlier formats' chunks, read no more
            for chunk in range(CHUNKS):
                self.collection.delete_one({"_id": id_key(old, self._scope.study, chunk)})

    def drop_study(self) -> None:
        delete_matching(self.collection, {"study": self._scope.study})


def binary_ids(ids: np.ndarray) -> list[bytes]:
    """S12 ids as the 12 bytes of their ObjectId (numpy drops trailing zero bytes)."""
    return [bytes(x).ljust(12, b"\0") for x in ids]


def _chunk_of(run_id: ObjectId) -> int:
    return run_id.binary[-1] % CHUNKS  # the id's counter byte: runs spread evenly


def _rows_of(doc: Mapping[str, Any], wanted: list[str | None] | None, with_keys: bool = False) -> _Rows:
    """Every row a chunk document holds (a run may have several: `_latest` keeps the newest version), with
    `match` for the keys `wanted` and, `with_keys`, each row's keys."""
    parts = [_segment_rows(part, wanted, with_keys) for part in (doc.get("segments") or {}).values()]
    pending = doc.get("pending") or {}
    if pending:
        names = [key.split("_") for key in pending]
        parts.append(_from_docs([ObjectId(run).binary for run, _ in names], [int(version, 16) for _, version in names],
                                [json.loads(row) for row in pending.values()], wanted))
    return _concat(parts, wanted is not None)


def _segment_rows(part: Mapping[str, Any], wanted: list[str | None] | None, with_keys: bool) -> _Rows:
    packing = part.get("packing")
    ids = unpack(part["ids"], "S12", packing)
    columns = {name: unpack(column, "<f8", packing) for name, column in (part.get("columns") or {}).items()}
    dictionary = json.loads(part["keys"])
    codes, ends = unpack(part["codes"], "<u4", packing), unpack(part["ends"], "<u4", packing)
    rows = _Rows(ids, unpack(part["versions"], "<i8", packing), columns)
    if wanted is not None:
        code_of = {key: code for code, key in enumerate(dictionary)}
        want = [code_of.get(key) for key in wanted]  # type: ignore[arg-type]
        if None in want:
            rows.match = np.zeros(len(ids), bool)
        else:  # a row's keys are distinct: it matches when it holds as many of them as are wanted
            owners = np.searchsorted(ends, np.flatnonzero(np.isin(codes, want)), side="right")
            rows.match = np.bincount(owners, minlength=len(ids)) == len(set(want))
    if with_keys:
        starts = np.concatenate([[0], ends[:-1]]).astype(np.int64)
        rows.keys = _objects([[dictionary[c] for c in codes[a:b]] for a, b in zip(starts, ends, strict=True)])
    return rows


def _from_docs(ids: list[bytes], versions: list[int], rows: list[dict[str, Any]],
               wanted: list[str | None] | None) -> _Rows:
    """Rows given as {"m": metrics, "k": keys} (pending rows, rebuilt rows)."""
    names = sorted(set().union(*(row["m"] for row in rows))) if rows else []
    columns = {name: np.array([row["m"].get(name, np.nan) for row in rows], "<f8") for name in names}
    match = None if wanted is None else np.array([set(wanted) <= set(row["k"]) for row in rows], bool)
    return _Rows(np.array(ids, "S12"), np.array(versions, "<i8"), columns, match, _objects([row["k"] for row in rows]))


def _objects(items: list[Any]) -> np.ndarray:
    """A 1-D object array of lists (np.array would make a 2-D array of lists of one length)."""
    array = np.empty(len(items), object)
    for position, item in enumerate(items):
        array[position] = item
    return array


def _concat(parts: list[_Rows], matched: bool) -> _Rows:
    if not parts:
        return _Rows(np.zeros(0, "S12"), np.zeros(0, "<i8"), {}, np.zeros(0, bool) if matched else None,
                     _objects([]))
    names = list(dict.fromkeys(name for part in parts for name in part.columns))
    columns = {name: np.concatenate([part.columns.get(name, np.full(len(part.ids), np.nan)) for part in parts])
               for name in names}
    match = np.concatenate([part.match for part in parts]) if matched else None  # type: ignore[misc]
    keys = np.concatenate([part.keys for part in parts]) if all(p.keys is not None for p in parts) else None
    return _Rows(np.concatenate([part.ids for part in parts]), np.concatenate([part.versions for part in parts]),
                 columns, match, keys)


def _latest(rows: _Rows) -> _Rows:
    """One row per run: the one of the highest version."""
    order = np.lexsort((rows.versions, rows.ids))  # by id, then version: a run's newest row ends its group
    ids = rows.ids[order]
    last = order[np.append(ids[1:] != ids[:-1], True)] if len(ids) else order
    return _Rows(rows.ids[last], rows.versions[last], {name: column[last] for name, column in rows.columns.items()},
                 None if rows.match is None else rows.match[last], None if rows.keys is None else rows.keys[last])


def _segment(rows: _Rows) -> dict[str, Any]:
    """Packed as log buckets are (packed_columns.py): ids sorted, so the bytes they share pack to almost nothing;
    keys as codes into the segment's dictionary (JSON text), row i's codes ending at `ends[i]`."""
    keys = list(rows.keys) if rows.keys is not None else [[] for _ in rows.ids]
    dictionary = sorted({key for row in keys for key in row})
    code_of = {key: code for code, key in enumerate(dictionary)}
    codes = np.array([code_of[key] for row in keys for key in row], "<u4")
    ends = np.cumsum([len(row) for row in keys], dtype="<u4") if keys else np.zeros(0, "<u4")
    return {"packing": PACKING, "ids": pack_array(rows.ids.astype("S12")),
            "versions": pack_array(rows.versions.astype("<i8")),
            "columns": {name: pack_array(column.astype("<f8")) for name, column in rows.columns.items()},
            "keys": json.dumps(dictionary), "codes": pack_array(codes), "ends": pack_array(ends.astype("<u4"))}
