"""Log rows stored as buckets: what a run's logs cost to read is that run's rows, not the lab's history.

MongoDB's bucket pattern for time series: the rows of one run, kind and writer go into bucket documents
of at most `BUCKET_ROWS` rows, addressed by `_id` = `<study>:<run>:<kind>:<writer>:<seq>`; a small
index document per run (`_id` = `<study>:<run>`) says how many buckets and rows each stream has and
holds the last row of each kind. Every read and write names one `_id`, the lookup every
MongoDB-protocol server answers without a collection scan (FerretDB 1.x pushes down nothing else).

Why whole-bucket replaces: the writer keeps its open bucket in memory and rewrites it with
`replace_one(_id, upsert=True)`. Sent twice after a lost reply, it leaves the same document, so
retries never duplicate a row and need no conditional write (which FerretDB would answer by a scan).
"""

from __future__ import annotations

import math
import numbers
import os
import secrets
from dataclasses import dataclass, field
from typing import Any

from ...validation import is_metric_name
from ..documents.by_id import id_key, upsert_by_id
from ..documents.scope import Scope
from .log_columns import ColumnBuffer, encode_rows, row_cells
from .log_rows import LogRow, row_fields

BUCKETS = "log_buckets"
INDEX = "log_index"
BUCKET_ROWS = 2000  # rows per bucket: a 100k-row run is 50 lookups; an open bucket rewrite stays ~40 KB packed
BUCKET_BYTES = 1 << 20  # and never more than 1 MB, whatever the rows hold (the server's limit is 16 MB)
FORMAT = 2  # columns packed as in log_columns.py (1: plain bytes, still read)


def run_key(run: Any) -> str:
    """How a run appears inside `_id`s: its id as text, or `none` for rows logged outside any run."""
    return "none" if run is None else str(run)


def index_id(study: str, run: Any) -> str:
    return id_key(study, run_key(run))


def bucket_id(study: str, run: Any, kind: str, writer: str, seq: int) -> str:
    return id_key(study, run_key(run), kind, writer, seq)


def stream_key(kind: str, writer: str) -> str:
    """The index field of one stream; kinds and writer tokens hold neither '.' nor '$'."""
    return f"{kind}-{writer}"


def new_writer_token() -> str:
    """Distinct per writer, so two processes logging into one run never write the same bucket."""
    return f"{os.getpid():x}{secrets.token_hex(4)}"


@dataclass
class _Stream:
    """One (run, kind) of this writer: the open bucket's rows (as columns), and what the index should say."""

    run: Any
    kind: str
    seq: int = 0
    bucket: str = ""  # the open bucket's `_id`
    rows: ColumnBuffer = field(default_factory=ColumnBuffer)
    nbytes: int = 0
    total: int = 0
    last: dict[str, Any] | None = None


class BucketSink:
    """Stages rows in memory (never fails) and persists changed buckets, then the index (may fail, retried)."""

    def __init__(self, scope: Scope, writer: str | None = None, *, bucket_rows: int = BUCKET_ROWS) -> None:
        self._scope = scope
        self.writer = writer or new_writer_token()
        self.bucket_rows = bucket_rows
        self._streams: dict[tuple[str, str], _Stream] = {}
        self._dirty_buckets: dict[str, tuple[_Stream, int, ColumnBuffer]] = {}
        self._dirty_streams: dict[tuple[str, str], _Stream] = {}
        self.unsaved = 0  # rows staged but not yet confirmed by the server

    def stage(self, rows: list[LogRow | dict[str, Any]]) -> list[tuple[Any, str]]:
        """Add rows to their open buckets; returns (row, reason) for rows that can never be stored."""
        rejected = []
        for queued in rows:
            row = queued
            try:
                row = row_fields(queued)
                stored = storable_row(row)
            except Exception as error:  # noqa: BLE001 - any bad row is rejected; the writer thread must live on
                rejected.append((row, f"{type(error).__name__}: {error}"))
                continue
            size = row_cells(stored)
            if size > BUCKET_BYTES:
                rejected.append((row, f"the row has {len(stored['metrics']):,} metrics; a bucket holds at most "
                                      f"{BUCKET_BYTES // 8 - 4:,} per row"))
                continue
            self._add(row.get("run"), row["kind"], stored, size)
        return rejected

    def _add(self, run: Any, kind: str, stored: dict[str, Any], size: int) -> None:
        key = (run_key(run), kind)
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = _Stream(run, kind)
            stream.bucket = bucket_id(self._scope.study, run, kind, self.writer, stream.seq)
        if stream.rows and (len(stream.rows) >= self.bucket_rows or stream.nbytes + size > BUCKET_BYTES):
            self._open_next_bucket(stream)  # the full bucket stays dirty until sent
        stream.rows.append(stored)
        stream.nbytes += size
        stream.total += 1
        stream.last = stored
        self._dirty_buckets[stream.bucket] = (stream, stream.seq, stream.rows)
        self._dirty_streams[key] = stream
        self.unsaved += 1

    def persist(self) -> None:
        """Write every changed bucket, then the index documents; raises a PyMongoError to be retried."""
        buckets = self._scope.collection(BUCKETS)
        ranges: dict[int, dict[int, list[int]]] = {}  # id(stream) -> seq -> [min step, max step]
        for identifier, (stream, seq, rows) in list(self._dirty_buckets.items()):
            buckets.replace_one({"_id": identifier}, self._bucket_document(identifier, stream, seq, rows), upsert=True)
            ranges.setdefault(id(stream), {})[seq] = [min(rows.steps), max(rows.steps)]
            del self._dirty_buckets[identifier]  # stage() and persist() both run on the writer thread
        for key, stream in list(self._dirty_streams.items()):
            self._update_index(stream, ranges.get(id(stream), {}))
            del self._dirty_streams[key]
        self.unsaved = 0

    def abandon_unsaved(self) -> int:
        """After a persist failed for a reason a retry cannot cure: forget what is staged (each stream goes on in
        a new bucket, so the rows that could not be encoded are never sent again); returns how many rows."""
        lost = self.unsaved
        for stream in self._dirty_streams.values():
            self._open_next_bucket(stream)
        self._dirty_buckets.clear()
        self._dirty_streams.clear()
        self.unsaved = 0
        return lost

    def _open_next_bucket(self, stream: _Stream) -> None:
        stream.seq, stream.rows, stream.nbytes = stream.seq + 1, ColumnBuffer(), 0
        stream.bucket = bucket_id(self._scope.study, stream.run, stream.kind, self.writer, stream.seq)

    def _bucket_document(self, identifier: str, stream: _Stream, seq: int, rows: ColumnBuffer) -> dict[str, Any]:
        return bucket_document(identifier, self._scope.study, stream.run, stream.kind, self.writer, seq, rows)

    def _update_index(self, stream: _Stream, ranges: dict[int, list[int]]) -> None:
        write_stream_index(self._scope.collection(INDEX), self._scope.study, stream.run, stream.kind, self.writer,
                           stream.seq + 1, stream.total, stream.last, ranges)


INT64_LIMIT = 2 ** 63  # BSON's integers are 64-bit


def _whole_number(value: Any, name: str) -> int:
    """An int the server can store, or TypeError/ValueError naming the field (1e30 as a step killed the writer)."""
    if type(value) is int and -INT64_LIMIT <= value < INT64_LIMIT:  # the usual case, without ABC checks
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or (
            not isinstance(value, numbers.Integral) and not float(value).is_integer()):
        raise TypeError(f"`{name}` must be a whole number; got {value!r}")
    number = int(value)
    if not -INT64_LIMIT <= number < INT64_LIMIT:
        raise ValueError(f"`{name}`={number:.3g} is outside the 64-bit range a server stores")
    return number


def check_metric_name(name: Any) -> None:
    """A metric name becomes a field name: a non-empty string without NUL, '.' or a leading '$'."""
    if not is_metric_name(name):
        raise ValueError(f"metric name {name!r} must be a non-empty string without NUL, '.' or a leading '$'")


def storable_row(row: dict[str, Any]) -> dict[str, Any]:
    """The fields a bucket keeps, as plain numbers; TypeError/ValueError names what cannot be stored."""
    when = float(row["time"])
    if not math.isfinite(when):
        raise ValueError(f"`time` must be finite; got {when!r}")
    stored: dict[str, Any] = {"step": _whole_number(row["step"], "step"), "time": when}
    for name in ("epoch", "batch"):
        value = row.get(name)
        stored[name] = None if value is None else _whole_number(value, name)
    metrics = {}
    for name, value in (row.get("metrics") or {}).items():
        check_metric_name(name)
        metrics[name] = None if value is None else float(value)
    for name, text in (row.get("non_finite") or {}).items():  # stored as null + flag before buckets could hold NaN
        if metrics.get(name) is None:
            metrics[name] = float(text)
    stored["metrics"] = metrics
    return stored


def summary_row(row: dict[str, Any]) -> dict[str, Any]:
    """A row for an ordinary document (the index's `last`): non-finite metrics as null plus a `non_finite`
    flag, since some servers refuse NaN in documents (FerretDB closes the connection)."""
    metrics = row["metrics"]
    non_finite = {name: repr(value) for name, value in metrics.items() if not math.isfinite(value)}
    return {**row, "metrics": {name: None if name in non_finite else value for name, value in metrics.items()},
            "non_finite": non_finite}


def bucket_document(identifier: str, study: str, run: Any, kind: str, writer: str, seq: int,
                    rows: ColumnBuffer | list[dict[str, Any]]) -> dict[str, Any]:
    steps = rows.steps if isinstance(rows, ColumnBuffer) else [row["step"] for row in rows]
    packed = rows.encode() if isinstance(rows, ColumnBuffer) else encode_rows(rows)
    return {"_id": identifier, "format": FORMAT, "study": study, "run": run, "kind": kind, "writer": writer,
            "seq": seq, "count": len(steps), "first_step": steps[0], "last_step": steps[-1], **packed}


def write_stream_index(index: Any, study: str, run: Any, kind: str, writer: str, buckets: int, rows: int,
                       last: dict[str, Any], ranges: dict[int, list[int]] | None = None) -> None:
    """Record in the run's index document how many buckets and rows one stream has, its last row, and the step
    range of each bucket written now (`ranges.b<seq>`: [min, max]), so a read of a step range fetches only the
    buckets that hold it."""
    prefix = f"streams.{stream_key(kind, writer)}"
    upsert_by_id(index, index_id(study, run), {"$set": {
        "study": study, "run": run, f"{prefix}.kind": kind, f"{prefix}.writer": writer, f"{prefix}.buckets": buckets,
        f"{prefix}.rows": rows, f"last.{kind}": summary_row(last),
        **{f"{prefix}.ranges.b{seq}": span for seq, span in (ranges or {}).items()}}})
