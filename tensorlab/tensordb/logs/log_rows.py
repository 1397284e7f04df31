"""A log row on its way to the server: a plain tuple of strings and numbers.

Why not a dict: rows wait in the writer's queue for up to a flush interval, long enough to be promoted
into Python's oldest GC generation, and every full collection then walked them while holding the GIL;
those collections were the training loop's longest stalls on logging (15-30 ms). CPython stops
tracking a tuple that holds only atoms at its first collection, so queued tuples cost the collector
nothing. A run id (ObjectId, an object the collector tracks) travels as its 12 bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import chain
from typing import Any

from bson import ObjectId

LogRow = tuple  # (run, run_is_object_id, kind, step, epoch, batch, time, metric, value, metric, value, ...)
HEAD = 7


def make_row(run: Any, kind: str, step: int, epoch: int | None, batch: int | None, at: float,
             metrics: Mapping[str, float | None]) -> LogRow:
    """The queued form of one row, flat (a nested tuple would keep its parent tracked for one more pass);
    `metrics` may hold NaN/inf (buckets store them natively)."""
    is_object_id = isinstance(run, ObjectId)
    head = (run.binary if is_object_id else run, is_object_id, kind, step, epoch, batch, at)
    return head + tuple(chain.from_iterable(metrics.items()))


def row_fields(row: LogRow | Mapping[str, Any]) -> dict[str, Any]:
    """A queued row as a dict (run, kind, step, epoch, batch, time, metrics); a dict row is returned as a copy."""
    if isinstance(row, Mapping):
        return dict(row)
    if not isinstance(row, tuple) or len(row) < HEAD or (len(row) - HEAD) % 2:
        raise ValueError(f"not a log row: {row!r:.100}")
    run, is_object_id, kind, step, epoch, batch, at = row[:HEAD]
    metrics = row[HEAD:]
    return {"run": ObjectId(run) if is_object_id else run, "kind": kind, "step": step, "epoch": epoch,
            "batch": batch, "time": at, "metrics": dict(zip(metrics[::2], metrics[1::2], strict=True))}


def describe(row: LogRow | Mapping[str, Any]) -> str:
    """`kind=... step=...` of a row, for reports about rows that were dropped or rejected."""
    try:
        fields = row_fields(row)
    except (TypeError, ValueError):
        return repr(row)[:100]
    return f"kind={fields.get('kind')!r} step={fields.get('step')!r}"
