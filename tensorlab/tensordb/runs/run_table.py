"""A study's runs as a small table of numbers, so a search can sort and limit without reading every run.

"Top 10 runs with lr = 0.01 by accuracy" read every run once more than 200 matched (0.41 s at 2,000 runs) on a
server that pushes down nothing but `_id` (FerretDB 1.x). The table keeps, per run, its id and the numbers of
`summary.best` (what people sort by), in 16 chunk documents (`run_table`, chunk = the id's last byte mod 16).
A search reads the chunks (16 `_id` lookups), ranks in numpy, and fetches only the runs it returns.

A put writes the row as JSON under a key of its own, `pending.<run>_<seq>` (`$set` by `_id`; seq: nanoseconds,
increasing within a process), and counts itself in the chunk's `reads` (`$inc`). When a chunk holds COMPACT_AT
pending rows, the writer that sees them folds the chunk as its put returned it (segments and pending rows,
newest row per run) into one new segment of packed columns (ids 12 bytes, a float64 column per metric, NaN
where a run has none), named by that `reads` count, and in the same update by `_id` `$unset`s exactly the
segments and pending keys it folded. A put landing meanwhile has a key of its own, so it stays; two folds at
once leave two segments holding some rows twice. A run's row: its newest pending row, else its row in the
segment with the highest count, since a fold that read the chunk later saw every row an earlier one saw, or
its successor (a run's rows are put by the process writing the run, in order). So no fold needs a
compare-and-swap, which FerretDB answers by reading the whole collection (every study's chunks).

Source of truth: the run documents. A run gets its row when its summary is first written (a run without one
sorts lowest, and is found through the run index when needed, run_search.py); every change of its summary
marks the row `inflight` before the document is written and clears it after. Readers fetch in-flight runs'
documents directly and check every run they return against its document, so a row can cost a lookup but never
a wrong answer (docs/CONSISTENCY.md).
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from bson import Binary, ObjectId

from ..documents.batched_delete import delete_matching
from ..documents.by_id import find_and_upsert_by_id, find_by_ids, id_key, upsert_by_id
from ..documents.scope import Scope

TABLE = "run_table"
FORMAT = "table2"  # chunk `_id` prefix ("table": the compare-and-swap format before sequence numbers)
CHUNKS = 16
COMPACT_AT = 32  # pending rows a chunk holds before a writer folds them into a segment
_last_seq = 0
_seq_lock = threading.Lock()


def ranked_values(summary: Any) -> dict[str, float]:
    """The numbers of a run summary's `best` that a search can sort by (finite ints and floats)."""
    best = (summary or {}).get("best") if isinstance(summary, Mapping) else None
    if not isinstance(best, Mapping):
        return {}
    return {str(name): float(value) for name, value in best.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)}


def next_seq() -> int:
    """A row's sequence number: the clock in nanoseconds, never repeated or going back within a process."""
    global _last_seq
    with _seq_lock:
        _last_seq = max(_last_seq + 1, time.time_ns())
        return _last_seq


@dataclass
class Table:
    """Every row of a study: ids (S12), a float64 column per metric, and the ids of rows in flight."""

    ids: np.ndarray
    columns: dict[str, np.ndarray]
    inflight: set[bytes]

    def column(self, name: str) -> np.ndarray:
        return self.columns.get(name, np.full(len(self.ids), np.nan))


@dataclass
class _Rows:
    ids: np.ndarray  # S12
    seq: np.ndarray  # int64: the order of precedence (a segment's rank, or a pending row's sequence number)
    columns: dict[str, np.ndarray]


class RunTable:
    def __init__(self, scope: Scope) -> None:
        self._scope = scope

    @property
    def collection(self) -> Any:
        return self._scope.collection(TABLE)

    def _chunk_id(self, chunk: int) -> str:
        return id_key(FORMAT, self._scope.study, chunk)

    def put(self, run_id: ObjectId, values: Mapping[str, float], inflight: bool) -> None:
        """Set the run's row to `values`; `inflight` marks it until `settle` (its document is about to change).
        One write; one more now and then to fold pending rows."""
        fields = {"study": self._scope.study, f"pending.{run_id}_{next_seq():x}": json.dumps(dict(values))}
        if inflight:
            fields[f"inflight.{run_id}"] = True
        doc = find_and_upsert_by_id(self.collection, self._chunk_id(_chunk_of(run_id)),
                                    {"$set": fields, "$inc": {"reads": 1}})
        if len(doc.get("pending") or {}) >= COMPACT_AT:
            self._fold(doc)

    def _fold(self, doc: Mapping[str, Any]) -> None:
        """The chunk as read into one segment, removing exactly the segments and pending rows folded."""
        rows = _latest(_rows_of(doc))
        unset = {f"segments.{token}": "" for token in doc.get("segments") or {}}
        unset.update({f"pending.{key}": "" for key in doc.get("pending") or {}})
        change = {"$set": {f"segments.{_segment_name(doc.get('reads', 0))}": _segment(rows)}, "$unset": unset}
        self.collection.update_one({"_id": doc["_id"]}, change)

    def settle(self, run_id: ObjectId) -> None:
        """The run's document is written: its row is trusted again."""
        self.collection.update_one({"_id": self._chunk_id(_chunk_of(run_id))}, {"$unset": {f"inflight.{run_id}": ""}})

    def read(self) -> Table:
        """Every row of the study (16 lookups)."""
        docs = find_by_ids(self.collection, [self._chunk_id(k) for k in range(CHUNKS)])
        rows = _latest(_concat([_rows_of(doc) for doc in docs]))
        inflight = {ObjectId(key).binary for doc in docs for key in doc.get("inflight") or {}}
        return Table(rows.ids, rows.columns, inflight)

    def rebuild(self, runs: Iterable[Mapping[str, Any]]) -> None:
        """Rows for runs written before the table existed (once per study, build_markers.py): one segment per
        chunk, ranked below every fold, so a row any writer puts meanwhile wins."""
        by_chunk: dict[int, dict[bytes, dict[str, float]]] = {}
        for run in runs:
            values = ranked_values(run.get("summary"))
            if values:
                by_chunk.setdefault(_chunk_of(run["_id"]), {})[run["_id"].binary] = values
        for chunk, pending in by_chunk.items():
            rows = _from_values(list(pending), [0] * len(pending), list(pending.values()))
            upsert_by_id(self.collection, self._chunk_id(chunk),
                         {"$set": {"study": self._scope.study, f"segments.{_segment_name(0)}": _segment(rows)}})
        for chunk in range(CHUNKS):  # the earlier format's chunks, read no more
            self.collection.delete_one({"_id": id_key("table", self._scope.study, chunk)})

    def drop_study(self) -> None:
        delete_matching(self.collection, {"study": self._scope.study})


def _chunk_of(run_id: ObjectId) -> int:
    return run_id.binary[-1] % CHUNKS  # the id's counter byte: runs spread evenly


def _rows_of(doc: Mapping[str, Any]) -> _Rows:
    """Every row a chunk document holds, ranked (a run may have several: `_latest` keeps the highest-ranked):
    segments by the count in their name, then pending rows by sequence number, above every segment."""
    segments = sorted((doc.get("segments") or {}).items())
    parts = []
    for rank, (_, part) in enumerate(segments):
        ids = np.frombuffer(part["ids"], "S12")
        columns = {name: np.frombuffer(column, "<f8") for name, column in (part.get("columns") or {}).items()}
        parts.append(_Rows(ids, np.full(len(ids), rank - len(segments), "<i8"), columns))
    pending = doc.get("pending") or {}
    if pending:
        keys = [key.split("_") for key in pending]
        parts.append(_from_values([ObjectId(run).binary for run, _ in keys], [int(seq, 16) for _, seq in keys],
                                  [json.loads(row) for row in pending.values()]))
    return _concat(parts)


def _from_values(ids: list[bytes], seqs: list[int], values: list[dict[str, float]]) -> _Rows:
    names = set().union(*values) if values else set()
    columns = {name: np.array([row.get(name, np.nan) for row in values], "<f8") for name in names}
    return _Rows(np.array(ids, "S12"), np.array(seqs, "<i8"), columns)


def _concat(parts: list[_Rows]) -> _Rows:
    if not parts:
        return _Rows(np.zeros(0, "S12"), np.zeros(0, "<i8"), {})
    names = list(dict.fromkeys(name for part in parts for name in part.columns))
    columns = {name: np.concatenate([part.columns.get(name, np.full(len(part.ids), np.nan)) for part in parts])
               for name in names}
    return _Rows(np.concatenate([part.ids for part in parts]), np.concatenate([part.seq for part in parts]), columns)


def _latest(rows: _Rows) -> _Rows:
    """One row per run: the one ranked highest (`_Rows.seq`)."""
    order = np.lexsort((rows.seq, rows.ids))  # by id, then sequence: a run's newest row is the last of its group
    ids = rows.ids[order]
    last = order[np.append(ids[1:] != ids[:-1], True)] if len(ids) else order
    return _Rows(rows.ids[last], rows.seq[last], {name: column[last] for name, column in rows.columns.items()})


def _segment(rows: _Rows) -> dict[str, Any]:
    return {"ids": Binary(rows.ids.astype("S12").tobytes()),
            "columns": {name: Binary(column.astype("<f8").tobytes()) for name, column in rows.columns.items()}}


def _segment_name(reads: int) -> str:
    """Sorts by the chunk's `reads` count when folded (then at random, for two folds of one count)."""
    return f"{reads:016x}{os.urandom(4).hex()}"
