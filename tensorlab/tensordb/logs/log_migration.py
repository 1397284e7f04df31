"""From the first layout (one `logs` document per row) to buckets, once per database.

Why it is safe to interrupt: rows are read in `_id` order and packed into buckets deterministically
(writer `legacy`, the same sequence numbers every time), and every write is a whole-document replace
by `_id`. A migration killed half-way and started again writes the same documents again: nothing is
lost, nothing doubles. The old rows are kept; `done` in the state document ends the checks.
"""

from __future__ import annotations

import sys
from typing import Any

from ..documents.build_markers import STATE
from ..documents.by_id import upsert_by_id
from ..documents.scope import Scope
from .log_buckets import (
    BUCKET_ROWS,
    BUCKETS,
    INDEX,
    bucket_document,
    bucket_id,
    run_key,
    storable_row,
    write_stream_index,
)

LEGACY_LOGS = "logs"
STATE_ID = "log-buckets-migration"
LEGACY_WRITER = "legacy"


def migrate_legacy_logs(scope: Scope, *, progress: bool | None = None) -> int:
    """Move rows of the first layout into buckets (all studies of the database); returns rows migrated."""
    state = scope.collection(STATE)
    if (state.find_one({"_id": STATE_ID}) or {}).get("done"):
        return 0
    legacy = scope.collection(LEGACY_LOGS)
    migrated = 0
    if legacy.find_one({}, {"_id": 1}) is not None:
        migrated = _migrate(scope, legacy, progress)
    upsert_by_id(state, STATE_ID, {"$set": {"done": True, "rows": migrated}})
    return migrated


def _migrate(scope: Scope, legacy: Any, progress: bool | None) -> int:
    from tqdm.auto import tqdm

    total = legacy.estimated_document_count()
    open_buckets: dict[tuple[str, str, str], tuple[dict[str, Any], list[dict[str, Any]]]] = {}
    counts: dict[tuple[str, str, str], int] = {}
    bar = tqdm(total=total, desc="TensorLab: moving log rows into buckets", unit="row", file=sys.stderr,
               disable=(not progress) if progress is not None else total < 10_000)
    migrated = skipped = 0
    for doc in legacy.find({}, sort=[("_id", 1)]):
        key = (doc.get("study"), run_key(doc.get("run")), doc.get("kind"))
        if key not in open_buckets:
            open_buckets[key] = ({"study": key[0], "run": doc.get("run"), "kind": key[2]}, [])
        head, rows = open_buckets[key]
        try:
            rows.append(storable_row(doc))
        except (KeyError, TypeError, ValueError, OverflowError):
            skipped += 1  # a row the old layout accepted but no bucket can hold: kept in `logs`, counted
            continue
        counts[key] = counts.get(key, 0) + 1
        if len(rows) == BUCKET_ROWS:
            _write(scope, head, rows, counts[key])
            open_buckets[key] = (head, [])
        migrated += 1
        bar.update()
    for key, (head, rows) in open_buckets.items():
        if rows:
            _write(scope, head, rows, counts[key])
    bar.close()
    if skipped:
        print(f"TensorLab: {skipped} old log row(s) could not be moved into buckets; they stay in `logs`.",
              file=sys.stderr)
    return migrated


def _write(scope: Scope, head: dict[str, Any], rows: list[dict[str, Any]], total: int) -> None:
    """One bucket (sequence number from the running count), then its stream's entry in the run's index."""
    seq = (total - 1) // BUCKET_ROWS
    identifier = bucket_id(head["study"], head["run"], head["kind"], LEGACY_WRITER, seq)
    scope.collection(BUCKETS).replace_one({"_id": identifier}, bucket_document(
        identifier, head["study"], head["run"], head["kind"], LEGACY_WRITER, seq, rows), upsert=True)
    write_stream_index(scope.collection(INDEX), head["study"], head["run"], head["kind"], LEGACY_WRITER, seq + 1,
                       total, rows[-1])
