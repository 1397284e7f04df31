"""train_log / valid_log / test_log: rows with run, step, epoch and time, sent by the async writer.

Rows are stored in buckets per run (log_buckets.py) and read back through the run's index
(log_reader.py), so reading one run, or polling it, never costs the rest of the lab's history.
"""

from __future__ import annotations

import math
import numbers
import time
import warnings
from collections.abc import Mapping
from typing import Any

from ...errors import InvalidInput
from ...validation import check_query, restore_metrics, split_metrics
from ...validation_values import INT64_MAX, check_number, is_object_id, short
from ..documents.batched_delete import delete_matching
from ..documents.scope import Scope
from .log_buckets import BUCKETS, INDEX, BucketSink
from .log_frames import FRAME_COLUMNS, downsample, frame_of
from .log_migration import LEGACY_LOGS, migrate_legacy_logs
from .log_reader import LogCursor, LogReader
from .log_rows import make_row
from .logwriter import AsyncLogWriter

LOGS = LEGACY_LOGS
KINDS = ("train", "valid", "test")
ROW_QUERY_FIELDS = ("study", "run", "kind")


def _metric_names(metrics: Any) -> list[str] | None:
    """`metrics=` as a list of names (a single name is fine); None reads every metric."""
    if metrics is None:
        return None
    names = [metrics] if isinstance(metrics, str) else list(metrics) if isinstance(metrics, (list, tuple)) else None
    if not names or not all(isinstance(name, str) and name for name in names):
        raise InvalidInput(f"Invalid value for argument `metrics`: {metrics!r:.80}. Expected a metric name or a "
                           "list of names, e.g. metrics=['loss', 'val_accuracy'].")
    return names


def _whole_number(value: Any, name: str) -> int | None:
    """`step`/`epoch`/`batch` as a plain int from 0 to 2**63-1: numpy integers are welcome, anything else is refused
    here, before the row is queued (the writer thread could only drop it later)."""
    if value is None or (type(value) is int and 0 <= value <= INT64_MAX):  # the usual case, without ABC checks
        return value
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and not isinstance(value, numbers.Integral):
        value = int(value) if math.isfinite(value) and float(value).is_integer() else value
    return check_number(value, name, integer=True, minimum=0, maximum=INT64_MAX, allow_none=True)


def _check_kinds(kinds: Any) -> None:
    for kind in [kinds] if isinstance(kinds, str) or kinds is None else kinds:
        if kind is not None and kind not in KINDS:
            raise InvalidInput(f"Invalid log kind {short(kind)}. Expected one of {KINDS} (or None for all).")


def _check_run(run: Any) -> None:
    """What a row's `run` may be: a run's id or name (or None, for rows of no run)."""
    if run is None or is_object_id(run) or (isinstance(run, str) and run and "\x00" not in run):
        return
    if isinstance(run, int) and not isinstance(run, bool) and abs(run) <= INT64_MAX:
        return
    raise InvalidInput(f"Invalid value for argument `run`: {short(run)}. Expected a run's id (ObjectId) or name "
                       "(a non-empty string), or None.")


class LogBook:
    def __init__(self, scope: Scope, **writer_options: Any) -> None:
        self._scope = scope
        migrate_legacy_logs(scope)  # once per database; a no-op after the first time
        self.sink = BucketSink(scope)
        self.writer = AsyncLogWriter(self.sink, **writer_options)
        self.reader = LogReader(scope)
        self._steps: dict[tuple[Any, str], int] = {}
        self._warned_non_finite: set[str] = set()

    def log(self, kind: str, metrics: Mapping[str, Any], *, run: Any = None, step: int | None = None,
            epoch: int | None = None, batch: int | None = None) -> bool:
        """Queue one row; returns False only when the writer had to drop it (reported loudly)."""
        if kind not in KINDS:
            raise InvalidInput(f"Invalid log kind {short(kind)}. Expected one of {KINDS}.")
        _check_run(run)
        values, non_finite = split_metrics(metrics)
        step, epoch = _whole_number(step, "step"), _whole_number(epoch, "epoch")
        batch = _whole_number(batch, "batch")
        key = (run, kind)
        if step is None:
            step = self._steps.get(key, -1) + 1
        self._steps[key] = step
        if non_finite:
            values = restore_metrics(values, non_finite)  # buckets hold NaN and ±inf as they are
            fresh = [f"{name}={text}" for name, text in non_finite.items() if name not in self._warned_non_finite]
            if fresh:
                self._warned_non_finite.update(non_finite)
                warnings.warn(f"TensorLab: non-finite value logged for {fresh} (stored and flagged in "
                              "`non_finite`).", RuntimeWarning, stacklevel=3)
        return self.writer.write(make_row(run, kind, step, epoch, batch, time.time(), values))

    def cursor(self, run: Any, kinds: Any = None) -> LogCursor:
        """Follow a run: each `poll()` returns only the rows stored since the last one (what panels use)."""
        _check_kinds(kinds)
        return self.reader.cursor(run, kinds)

    def count(self, run: Any = None, kind: str | None = None) -> int:
        """Rows stored for a run (or the whole study), read from index documents; flushes first."""
        _check_kinds(kind)
        self.writer.flush()
        return self.reader.count(run, kind)

    def rows_since(self, run: Any, step: int, kind: str | None = None) -> list[dict[str, Any]]:
        """A run's rows with step >= `step`, reading only the buckets that hold them; flushes first."""
        _check_kinds(kind)
        self.writer.flush()
        return self.reader.run_rows(run, None if kind is None else [kind], since_step=step)

    def read(self, query: Any = None, *, run: Any = None, kind: str | None = None, metrics: Any = None,
             since: int | None = None, until: int | None = None, max_points: int | None = None) -> Any:
        """Log rows as a pandas DataFrame, one column per metric (flushes pending rows first).

        `query` may name `run` and `kind` (as MongoDB equality or `$in`); filter on metrics in the DataFrame.
        `metrics` (names), `since`/`until` (steps, inclusive) read only those columns and rows; `max_points` keeps
        per metric the minimum and maximum of each step bin, for a chart of that many points (log_frames.py)."""
        _check_kinds(kind)
        names = _metric_names(metrics)
        since, until = _whole_number(since, "since"), _whole_number(until, "until")
        if max_points is not None:
            check_number(max_points, "max_points", integer=True, minimum=4)
        self.writer.flush()
        run, kinds = self._row_filter(check_query(query), run, kind)
        _check_kinds(kinds)
        wanted = None if names is None else set(names)
        parts = self.reader.run_parts(run, kinds, wanted, since, until) if run is not None else \
            self.reader.study_parts(kinds, wanted, since, until)
        frame = frame_of(parts, names)
        if max_points is not None:
            shown = names or [c for c in frame.columns if c not in (*FRAME_COLUMNS, "batch", "non_finite")]
            frame = downsample(frame, shown, int(max_points))
        return frame

    def _row_filter(self, query: dict[str, Any], run: Any, kind: str | None) -> tuple[Any, list[str] | None]:
        unknown = [key for key in query if key not in ROW_QUERY_FIELDS]
        if unknown:
            raise InvalidInput(f"Log queries filter on {ROW_QUERY_FIELDS} only; got {unknown}. Read the run's rows "
                               "(db.logs(run=...)) and filter the DataFrame, e.g. frame[frame.loss < 0.1].")
        if query.get("study", self._scope.study) != self._scope.study:
            raise InvalidInput(f"This connection reads study {self._scope.study!r}; connect with study=... to read "
                               "another.")
        run = query.get("run", run)
        kind_filter = query.get("kind", kind)
        if isinstance(kind_filter, Mapping):
            kinds = list(kind_filter.get("$in", []))
        else:
            kinds = None if kind_filter is None else [kind_filter]
        return run, kinds

    def drop_study(self) -> int:
        """Delete this study's buckets, index documents and rows of the old layout; returns rows deleted."""
        rows = self.count()
        study = {"study": self._scope.study}
        for name in (BUCKETS, INDEX, LOGS):
            delete_matching(self._scope.collection(name), study)
        return rows
