"""Reading log buckets: a run's rows, the rows since a step, and a cursor that returns only what is new.

Each read starts from the run's index document and then fetches buckets by `_id`, so it costs the rows
it returns (plus one small document), however many other runs and rows the lab holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from ..documents.by_id import find_by_ids
from ..documents.scope import Scope
from .log_buckets import BUCKETS, INDEX, bucket_id, index_id
from .log_columns import decode_rows
from .log_frames import Part, bucket_part


def _rows_of(bucket: dict[str, Any] | None, start: int = 0) -> list[dict[str, Any]]:
    if bucket is None:  # announced by the index, not written yet (or being rewritten): nothing to add yet
        return []
    return decode_rows(bucket, start)


def _streams(index: dict[str, Any] | None, kinds: Iterable[str] | None) -> list[dict[str, Any]]:
    wanted = None if kinds is None else set(kinds)
    streams = (index or {}).get("streams", {}).values()
    return [s for s in streams if wanted is None or s["kind"] in wanted]


class LogReader:
    def __init__(self, scope: Scope) -> None:
        self._scope = scope

    def index(self, run: Any) -> dict[str, Any] | None:
        return self._scope.collection(INDEX).find_one({"_id": index_id(self._scope.study, run)})

    def _bucket(self, run: Any, stream: dict[str, Any], seq: int) -> dict[str, Any] | None:
        identifier = bucket_id(self._scope.study, run, stream["kind"], stream["writer"], seq)
        return self._scope.collection(BUCKETS).find_one({"_id": identifier})

    def run_rows(self, run: Any, kinds: Iterable[str] | None = None, since_step: int | None = None) -> list[dict]:
        """Every row of one run (of `kinds`), or only rows with step >= `since_step`: newest buckets first,
        stopping at the first bucket that starts before that step."""
        rows: list[dict[str, Any]] = []
        for stream in _streams(self.index(run), kinds):
            for seq in range(stream["buckets"] - 1, -1, -1):
                bucket = self._bucket(run, stream, seq)
                part = _rows_of(bucket)
                if since_step is not None:
                    part = [row for row in part if row.get("step") is not None and row["step"] >= since_step]
                rows[:0] = part
                if since_step is not None and bucket is not None and (bucket.get("first_step") or 0) < since_step:
                    break
        return rows

    def run_parts(self, run: Any, kinds: Iterable[str] | None = None, metrics: set[str] | None = None,
                  since: int | None = None, until: int | None = None) -> list[Part]:
        """One run's rows (of `kinds`, with since <= step <= until) as column arrays: only the buckets whose step
        range (kept in the run's index) meets the range are fetched, a few lookups at a time in parallel."""
        wanted = []
        for stream in _streams(self.index(run), kinds):
            ranges = stream.get("ranges") or {}
            for seq in range(stream["buckets"]):
                span = ranges.get(f"b{seq}")
                if span is not None and ((since is not None and span[1] < since) or (until is not None and
                                                                                       span[0] > until)):
                    continue
                wanted.append(bucket_id(self._scope.study, run, stream["kind"], stream["writer"], seq))
        buckets = find_by_ids(self._scope.collection(BUCKETS), wanted)
        return [part for bucket in buckets if (part := bucket_part(bucket, metrics, since, until)) is not None]

    def study_parts(self, kinds: Iterable[str] | None = None, metrics: set[str] | None = None,
                    since: int | None = None, until: int | None = None) -> list[Part]:
        """Every run's rows: an explicit read of the whole history, so it costs the whole history."""
        query: dict[str, Any] = {"study": self._scope.study}
        if kinds is not None:
            query["kind"] = {"$in": list(kinds)}
        parts = (bucket_part(bucket, metrics, since, until) for bucket in self._scope.collection(BUCKETS).find(query))
        return [part for part in parts if part is not None]

    def study_rows(self, kinds: Iterable[str] | None = None) -> Iterator[dict[str, Any]]:
        """Every row of the study: an explicit read of the whole history, so it costs the whole history."""
        query: dict[str, Any] = {"study": self._scope.study}
        if kinds is not None:
            query["kind"] = {"$in": list(kinds)}
        for bucket in self._scope.collection(BUCKETS).find(query):
            yield from _rows_of(bucket)

    def count(self, run: Any = None, kind: str | None = None) -> int:
        """Rows stored for one run (or, with run=None, the whole study), from index documents only."""
        indexes = [self.index(run)] if run is not None else \
            self._scope.collection(INDEX).find({"study": self._scope.study}, {"streams": 1})
        return sum(s["rows"] for index in indexes for s in _streams(index, None if kind is None else [kind]))

    def cursor(self, run: Any, kinds: Iterable[str] | None = None) -> LogCursor:
        return LogCursor(self, run, kinds)


class LogCursor:
    """Follows one run: each `poll()` returns the rows stored since the previous poll, in each stream's order.

    It remembers, per stream, the bucket it is in and how many of its rows it returned; a poll reads the
    index and then only buckets whose stream grew. Rows of several processes interleave correctly because
    each process writes its own streams (nothing depends on ids being in insertion order).
    """

    def __init__(self, reader: LogReader, run: Any, kinds: Iterable[str] | None = None) -> None:
        self._reader = reader
        self.run = run
        self._kinds = None if kinds is None else list(kinds)
        self._position: dict[tuple[str, str], list[int]] = {}  # (kind, writer) -> [seq, rows taken, total taken]

    def poll(self) -> list[dict[str, Any]]:
        new: list[dict[str, Any]] = []
        for stream in _streams(self._reader.index(self.run), self._kinds):
            position = self._position.setdefault((stream["kind"], stream["writer"]), [0, 0, 0])
            while position[2] < stream["rows"] and position[0] < stream["buckets"]:
                rows = _rows_of(self._reader._bucket(self.run, stream, position[0]), position[1])
                new += rows
                position[1] += len(rows)
                position[2] += len(rows)
                if position[0] + 1 < stream["buckets"]:  # a later bucket exists: this one is full, move on
                    position[0], position[1] = position[0] + 1, 0
                elif not rows:
                    break  # the index ran ahead of the bucket: the rows come on a later poll
        return new
