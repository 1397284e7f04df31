"""A run's log rows for the browser: only what is new since the client's cursor, as columns.

`db.logbook.cursor(run).poll()` remembers, per stream (kind, writer), the bucket it reads and how many of
its rows it returned; a browser tab cannot hold that object between HTTP requests (and should not: tabs
outlive kernels, servers restart). So the same positions travel to the client as an opaque token and come
back with the next poll: each poll reads the run's index document, then only the buckets a stream grew
into, by `_id` (docs/FORMAT.md: `log_index`, `log_buckets`). Rows go out as columns (one list per field
and metric per stream), decoded straight from the buckets' packed columns (the logs room's `bucket_column`).

A response holding more than `max_points` rows of a stream (a first load of a long run, a tab hidden for an
hour) keeps, per metric, the rows holding the minimum and maximum of each bin: what a chart that wide can
show. Rows after the cursor are always complete: downsampling never moves the cursor past a row unread.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tensorlab.tensordb.documents.by_id import find_by_ids
from tensorlab.tensordb.logs.log_buckets import BUCKETS, bucket_id, stream_key
from tensorlab.tensordb.logs.log_columns import bucket_column

from .params import BadParameter

MAX_BUCKETS_PER_POLL = 400  # 200,000 rows a response at most; `complete: false` says "poll again now"
TOKEN_VERSION = 1


@dataclass
class Position:
    """Where a stream was left: the bucket being read, rows taken from it, rows taken in all."""

    seq: int = 0
    taken: int = 0
    total: int = 0


@dataclass
class Chunk:
    """Rows read from one stream in this poll, as arrays."""

    kind: str
    writer: str
    step: list[np.ndarray] = field(default_factory=list)
    time: list[np.ndarray] = field(default_factory=list)
    epoch: list[np.ndarray] = field(default_factory=list)
    metrics: dict[str, list[tuple[int, np.ndarray]]] = field(default_factory=dict)  # name -> (row offset, values)
    rows: int = 0


def encode_cursor(positions: dict[str, Position]) -> str:
    payload = {"v": TOKEN_VERSION, "s": {key: [p.seq, p.taken, p.total] for key, p in positions.items()}}
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(token: str | None) -> dict[str, Position]:
    """The positions a client sent back; an empty or absent token starts at the beginning."""
    if not token:
        return {}
    try:
        payload = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        streams = payload["s"]
        if payload.get("v") != TOKEN_VERSION or not isinstance(streams, dict):
            raise ValueError("version")
        positions = {}
        for key, value in streams.items():
            if (not isinstance(key, str) or not isinstance(value, list) or len(value) != 3
                    or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2 ** 53 for v in value)):
                raise ValueError("shape")
            positions[key] = Position(*value)
        return positions
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
        raise BadParameter("cursor", token, "the `cursor` token of a previous answer (or none)") from None


def _streams(index: dict[str, Any] | None, kinds: list[str] | None) -> list[dict[str, Any]]:
    streams = (index or {}).get("streams", {}).values()
    return sorted((s for s in streams if kinds is None or s["kind"] in kinds), key=lambda s: (s["kind"], s["writer"]))


class BucketCache:
    """Decoded buckets that can no longer change, kept in the Jupyter server's memory (least recently used out).

    A bucket is rewritten only while it is its stream's last one; once a later bucket exists it is final, so a
    second look at a long run (another tab, a page reload, a comparison) reads from memory instead of the server.
    """

    def __init__(self, max_cells: int = 16_000_000) -> None:  # 8 bytes a cell: 128 MB at most
        self.max_cells = max_cells
        self._items: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()
        self._cells = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> dict[str, Any] | None:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: tuple[str, str], decoded: dict[str, Any]) -> None:
        cells = len(decoded["step"]) * (3 + len(decoded["metrics"]))
        with self._lock:
            if key in self._items or cells > self.max_cells:
                return
            self._items[key] = {**decoded, "cells": cells}
            self._cells += cells
            while self._cells > self.max_cells:
                _, dropped = self._items.popitem(last=False)
                self._cells -= dropped["cells"]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._cells = 0


CACHE = BucketCache()


def decode_bucket(bucket: dict[str, Any]) -> dict[str, Any]:
    """A bucket's columns as arrays, whatever its format (docs/FORMAT.md); a metric a row lacks is NaN there (a
    gap, not a zero)."""
    absent = bucket.get("absent") or {}
    metrics = {}
    for name in bucket["metrics"]:
        values = bucket_column(bucket, "metrics", name, "<f8")
        if name in absent:
            values = np.where(bucket_column(bucket, "absent", name, "u1").astype(bool), np.nan, values)
        metrics[name] = values
    return {"step": bucket_column(bucket, "columns", "step", "<i8"),
            "time": bucket_column(bucket, "columns", "time", "<f8"),
            "epoch": bucket_column(bucket, "columns", "epoch", "<f8"), "metrics": metrics}


def _fetch(db: Any, run: str, stream: dict[str, Any], first: int, last: int) -> dict[int, dict[str, Any]]:
    """Buckets `first..last` of a stream, decoded: final ones from the cache, the rest by `_id`, a few at a time."""
    ids = {seq: bucket_id(db.study, run, stream["kind"], stream["writer"], seq) for seq in range(first, last + 1)}
    found: dict[int, dict[str, Any]] = {}
    for seq, identifier in ids.items():
        cached = CACHE.get((db.db_name, identifier))
        if cached is not None:
            found[seq] = cached
    missing = [identifier for seq, identifier in ids.items() if seq not in found]
    for doc in find_by_ids(db.collection(BUCKETS), missing) if missing else ():
        decoded = decode_bucket(doc)
        found[doc["seq"]] = decoded
        if doc["seq"] < stream["buckets"] - 1:  # a later bucket exists: this one is final
            CACHE.put((db.db_name, doc["_id"]), decoded)
    return found


def _take(chunk: Chunk, decoded: dict[str, Any], start: int, metrics: list[str] | None) -> int:
    """Append rows `start:` of a decoded bucket to the chunk; returns how many."""
    step = decoded["step"][start:]
    if not len(step):
        return 0
    chunk.step.append(step)
    chunk.time.append(decoded["time"][start:])
    chunk.epoch.append(decoded["epoch"][start:])
    for name, values in decoded["metrics"].items():
        if metrics is None or name in metrics:
            chunk.metrics.setdefault(name, []).append((chunk.rows, values[start:]))
    chunk.rows += len(step)
    return len(step)


def read_stream(db: Any, run: str, stream: dict[str, Any], position: Position, metrics: list[str] | None,
                budget: int) -> tuple[Chunk, int]:
    """The rows of one stream after `position` (which moves on), reading at most `budget` buckets."""
    chunk = Chunk(stream["kind"], stream["writer"])
    if position.total >= stream["rows"] or position.seq >= stream["buckets"] or budget <= 0:
        return chunk, 0
    first = position.seq
    last = min(stream["buckets"] - 1, first + budget - 1)
    buckets = _fetch(db, run, stream, first, last)
    for seq in range(first, last + 1):
        bucket = buckets.get(seq)
        if bucket is None:
            break  # announced by the index, not readable yet: its rows come on a later poll
        taken = _take(chunk, bucket, position.taken, metrics)
        position.taken += taken
        position.total += taken
        if seq + 1 < stream["buckets"]:  # a later bucket exists: this one is full, move on
            position.seq, position.taken = seq + 1, 0
        else:
            break
    return chunk, last - first + 1


def _bins(values: np.ndarray, groups: int) -> np.ndarray:
    """Indices of the minimum and maximum of each of `groups` equal slices (NaN ignored)."""
    size = math.ceil(len(values) / groups)
    padded = np.full(size * groups, np.nan)
    padded[: len(values)] = values
    shaped = padded.reshape(groups, size)
    finite = np.isfinite(shaped)
    low = np.where(finite, shaped, np.inf).argmin(axis=1)
    high = np.where(finite, shaped, -np.inf).argmax(axis=1)
    offsets = np.arange(groups) * size
    keep = finite.any(axis=1)
    picked = np.concatenate([(offsets + low)[keep], (offsets + high)[keep]])
    return picked[picked < len(values)]


def _column(values: np.ndarray, integer: bool = False) -> list[Any]:
    """A JSON-ready list; NaN and ±inf become null (JSON has no such numbers; a chart draws a gap)."""
    out = values.tolist()
    bad = np.flatnonzero(~np.isfinite(values)) if values.dtype.kind == "f" else ()
    for index in bad:
        out[index] = None
    if integer:
        out = [None if v is None else int(v) for v in out]
    return out


def chunk_json(chunk: Chunk, total: int, max_points: int) -> dict[str, Any]:
    """One stream's rows as columns, min/max-downsampled past `max_points` rows."""
    step = np.concatenate(chunk.step) if chunk.step else np.zeros(0, "<i8")
    metrics = {}
    for name, parts in chunk.metrics.items():
        column = np.full(chunk.rows, np.nan)
        for offset, values in parts:
            column[offset: offset + len(values)] = values
        metrics[name] = column
    keep = None
    if chunk.rows > max_points:
        groups = max(1, max_points // (2 * max(1, len(metrics))))
        picked = [_bins(values, groups) for values in metrics.values()] or [np.linspace(0, chunk.rows - 1, groups)]
        keep = np.unique(np.concatenate([*picked, np.array([0, chunk.rows - 1])]).astype(np.int64))
    pick = (lambda column: column) if keep is None else (lambda column: column[keep])
    return {
        "kind": chunk.kind, "writer": chunk.writer, "rows": total, "count": chunk.rows,
        "downsampled": keep is not None,
        "step": pick(step).tolist(),
        "epoch": _column(pick(np.concatenate(chunk.epoch)) if chunk.epoch else np.zeros(0), integer=True),
        "time": _column(pick(np.concatenate(chunk.time)) if chunk.time else np.zeros(0)),
        "metrics": {name: _column(pick(values)) for name, values in sorted(metrics.items())},
    }


def poll(db: Any, run: str, token: str | None, *, kinds: list[str] | None = None, metrics: list[str] | None = None,
         max_points: int = 4000) -> dict[str, Any]:
    """What is new in `run`'s logs since `token`: streams as columns, the next token, and whether this is all."""
    positions = decode_cursor(token)
    index = db.logbook.reader.index(run)
    budget = MAX_BUCKETS_PER_POLL
    streams, complete = [], True
    for stream in _streams(index, kinds):
        key = stream_key(stream["kind"], stream["writer"])
        position = positions.setdefault(key, Position())
        chunk, used = read_stream(db, run, stream, position, metrics, budget)
        budget -= used
        if position.total < stream["rows"] and budget <= 0:
            complete = False
        if chunk.rows:
            streams.append(chunk_json(chunk, stream["rows"], max_points))
    return {"run": run, "cursor": encode_cursor(positions), "complete": complete, "streams": streams,
            "last": _last_rows(index)}


def _last_rows(index: dict[str, Any] | None) -> dict[str, Any]:
    """The newest row of each kind (the index keeps it): what the side bar shows beside a run."""
    last = (index or {}).get("last") or {}
    return {kind: {"step": row.get("step"), "epoch": row.get("epoch"), "time": row.get("time"),
                   "metrics": {k: v for k, v in (row.get("metrics") or {}).items()
                               if isinstance(v, (int, float)) and math.isfinite(v)}}
            for kind, row in last.items()}
