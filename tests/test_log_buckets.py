"""Log buckets: boundaries, idempotent retries, incremental cursors, two writers, migration of the old layout."""

from __future__ import annotations

import gc
import subprocess
import sys
import time
import types
from typing import Any

import numpy as np
import pytest
from bson import ObjectId
from pymongo.errors import AutoReconnect

import tensorlab
from tensorlab import InvalidInput
from tensorlab.tensordb.documents.scope import Scope
from tensorlab.tensordb.logs.log_buckets import BUCKET_ROWS, BUCKETS, INDEX, BucketSink
from tensorlab.tensordb.logs.log_migration import LEGACY_LOGS, STATE, STATE_ID, migrate_legacy_logs
from tensorlab.tensordb.logs.log_reader import LogReader
from tensorlab.tensordb.logs.log_rows import make_row, row_fields


def _rows(run, count, start=0, kind="train"):
    return [{"run": run, "kind": kind, "step": step, "epoch": 0, "time": 1000.0 + step, "metrics": {"loss": step}}
            for step in range(start, start + count)]


@pytest.mark.parametrize("count", [BUCKET_ROWS - 1, BUCKET_ROWS, BUCKET_ROWS + 1, 2 * BUCKET_ROWS + 7])
def test_bucket_boundaries_keep_every_row_once_in_order(tdb, count):
    run = ObjectId()
    sink = BucketSink(tdb._scope)
    for start in range(0, count, 37):  # flushed in uneven batches, as the writer thread would
        sink.stage(_rows(run, min(37, count - start), start))
        sink.persist()
    buckets = list(tdb.collection(BUCKETS).find({"run": run}, sort=[("seq", 1)]))
    assert [b["count"] for b in buckets] == [min(BUCKET_ROWS, count - i * BUCKET_ROWS) for i in range(len(buckets))]
    assert len(buckets) == -(-count // BUCKET_ROWS)
    steps = [row["step"] for row in LogReader(tdb._scope).run_rows(run)]
    assert steps == list(range(count))
    index = tdb.collection(INDEX).find_one({"_id": f"test:{run}"})
    stream = next(iter(index["streams"].values()))
    assert stream["rows"] == count and stream["buckets"] == len(buckets) and index["last"]["train"]["step"] == count - 1


class _LostReplies(Scope):
    """The real database, but the first `n` bucket writes lose their reply after the server applied them."""

    def __init__(self, scope: Scope, n: int) -> None:
        super().__init__(scope.database, scope.study, "lost-replies")
        self.remaining = n

    def collection(self, name):
        real = super().collection(name)
        if name != BUCKETS:
            return real
        outer = self

        class Proxy:
            def replace_one(self, *args, **kwargs):
                result = real.replace_one(*args, **kwargs)
                if outer.remaining > 0:
                    outer.remaining -= 1
                    raise AutoReconnect("connection closed before the reply")
                return result

        return Proxy()


def test_persist_repeated_after_a_lost_reply_duplicates_nothing(tdb):
    run = ObjectId()
    sink = BucketSink(_LostReplies(tdb._scope, 2))
    sink.stage(_rows(run, BUCKET_ROWS + 20))
    for _attempt in range(3):  # the writer thread retries until persist succeeds
        try:
            sink.persist()
            break
        except AutoReconnect:
            assert sink.unsaved == BUCKET_ROWS + 20  # still unconfirmed, so still pending
    assert sink.unsaved == 0
    sink.stage(_rows(run, 10, start=BUCKET_ROWS + 20))
    sink.persist()
    steps = [row["step"] for row in LogReader(tdb._scope).run_rows(run)]
    assert steps == list(range(BUCKET_ROWS + 30)) and tdb.logbook.count(run) == BUCKET_ROWS + 30


def test_rows_that_cannot_be_stored_are_rejected_and_the_writer_goes_on(tdb):
    tdb.train_log(step=np.int64(5), epoch=np.int32(0), loss=0.1)  # numpy integers are plain numbers
    with pytest.raises(InvalidInput, match="step"):
        tdb.train_log(step="x", loss=0.1)
    with pytest.raises(InvalidInput, match="batch"):
        tdb.logbook.log("train", {"loss": 0.2}, step=6, batch=object())
    tdb.logbook.writer.write((None, False, "train", 6, None, object(), 0.0, "loss", 0.2))  # rejected and reported
    tdb.train_log(step=7, loss=0.3)
    assert tdb.flush_logs(timeout_s=10)
    assert tdb.logs()["step"].tolist() == [5, 7]
    assert tdb.logbook.writer.rejected == 1 and tdb.logbook.writer.dropped == 0


def test_cursor_returns_only_new_rows_across_bucket_boundaries(tdb):
    run = tdb.run_store.start("followed")
    cursor = tdb.logbook.cursor(run)
    assert cursor.poll() == []
    seen = []
    for chunk in (3, BUCKET_ROWS, 1, BUCKET_ROWS + 5):
        start = len(seen)
        for step in range(start, start + chunk):
            tdb.train_log(step=step, loss=float(step), run=run)
        assert tdb.flush_logs()
        new = cursor.poll()
        assert [row["step"] for row in new] == list(range(start, start + chunk))
        seen += new
    assert cursor.poll() == []
    tdb.valid_log(epoch=0, val_loss=0.5, run=run)
    assert tdb.flush_logs()
    assert [(row["kind"], row["metrics"]["val_loss"]) for row in cursor.poll()] == [("valid", 0.5)]


WRITER = """
import sys, tensorlab
from bson import ObjectId
from pymongo.errors import AutoReconnect
db = tensorlab.connect(sys.argv[1], db=sys.argv[2], study="test")
run = ObjectId(sys.argv[3])
for step in range(int(sys.argv[4])):
    db.train_log(step=step, loss=float(step), run=run)
assert db.flush_logs(timeout_s=60)
"""


def test_two_processes_logging_into_one_run_lose_no_row(tdb, mongo_uri):
    run = tdb.run_store.start("shared")
    cursor = tdb.logbook.cursor(run)
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, mongo_uri, tdb.db_name, str(run), "1500"])
             for _ in range(2)]
    polled = []
    while any(p.poll() is None for p in procs):
        polled += cursor.poll()
    assert all(p.returncode == 0 for p in procs)
    polled += cursor.poll()
    assert len(polled) == 3000 and sorted(r["step"] for r in polled) == sorted(list(range(1500)) * 2)
    assert len(tdb.logs(run="shared")) == 3000 and tdb.logbook.count(run) == 3000


def test_rows_since_a_step_read_only_the_newest_buckets(tdb):
    run = tdb.run_store.start("long")
    for step in range(3 * BUCKET_ROWS):
        tdb.train_log(step=step, loss=float(step), run=run)
    rows = tdb.logbook.rows_since(run, 3 * BUCKET_ROWS - 10)
    assert [row["step"] for row in rows] == list(range(3 * BUCKET_ROWS - 10, 3 * BUCKET_ROWS))


def test_log_queries_outside_run_and_kind_get_a_clear_error(tdb):
    with pytest.raises(InvalidInput, match="filter the DataFrame"):
        tdb.logs({"metrics.loss": {"$lt": 1}})
    with pytest.raises(InvalidInput, match="study"):
        tdb.logs({"study": "someone-else"})


def test_an_old_layout_database_is_migrated_once_and_a_rerun_changes_nothing(mongo_uri, db_name):
    db = tensorlab.connect(mongo_uri, db=db_name, study="old")  # its LogBook (and the migration) starts lazily
    client = db.client
    legacy = client[db_name][LEGACY_LOGS]
    run = db.run_store.start("old-run")
    rows = [{"_id": ObjectId(), "study": "old", "run": run, "kind": "train", "step": s, "epoch": s // 100,
             "time": 1000.0 + s, "metrics": {"loss": 1.0 / (s + 1)}} for s in range(BUCKET_ROWS + 250)]
    rows += [{"_id": ObjectId(), "study": "old", "run": run, "kind": "valid", "step": 99, "epoch": 0,
              "time": 1100.0, "metrics": {"val_loss": 0.7}, "non_finite": {"grad": "nan"}}]
    legacy.insert_many(rows)
    try:
        frame = db.logs(run="old-run")  # the first LogBook of the database migrates
        train_steps = sorted(frame[frame.kind == "train"]["step"])
        assert len(frame) == len(rows) and train_steps == list(range(BUCKET_ROWS + 250))
        assert frame[frame.kind == "valid"]["non_finite"].tolist() == [["grad"]]
        before = sorted((b["_id"], b["count"]) for b in client[db_name][BUCKETS].find({}, {"count": 1}))
        client[db_name][STATE].delete_one({"_id": STATE_ID})  # as if killed before it could say done
        assert migrate_legacy_logs(Scope(client[db_name], "old", "test")) == len(rows)
        after = sorted((b["_id"], b["count"]) for b in client[db_name][BUCKETS].find({}, {"count": 1}))
        assert after == before and db.logbook.count(run) == len(rows)
    finally:
        client.drop_database(db_name)
        db.close()


def test_live_panel_follows_another_process_within_a_second(tdb, mongo_uri):
    widgets = pytest.importorskip("tensorlab.widgets")
    run = tdb.run_store.start("remote")
    panel = widgets.LivePanel("remote", tdb, poll_interval_s=0.25)
    try:
        writer = tensorlab.connect(mongo_uri, db=tdb.db_name, study="test")
        for step in range(50):
            writer.train_log(step=step, loss=1.0 / (step + 1), run=run)
        assert writer.flush_logs()
        written = time.monotonic()
        while panel._step < 50 and time.monotonic() - written < 10:
            time.sleep(0.05)
        assert panel._step == 50 and time.monotonic() - written < 1.5
        writer.close()
    finally:
        panel.close()


def test_a_malformed_row_handed_to_the_writer_is_rejected_and_logging_goes_on(tdb):
    tdb.logbook.writer.write({"kind": "train", "run": None, "step": 1})  # no time: cannot be stored
    tdb.train_log(step=2, loss=0.5)
    assert tdb.flush_logs(timeout_s=10)
    assert tdb.logs()["step"].tolist() == [2] and tdb.logbook.writer.rejected == 1


def _tracked_reachable(*roots: Any) -> int:
    """The GC-tracked objects reachable from `roots`: what a full collection walks for them. Counted from the
    roots, not as every object in the process, which other tests' threads change at any moment (CI once saw
    107 objects appear from elsewhere). Classes, modules and functions are not followed."""
    seen, stack = set(), list(roots)
    while stack:
        obj = stack.pop()
        if id(obj) in seen or not gc.is_tracked(obj) or isinstance(obj, (type, types.ModuleType, types.FunctionType)):
            continue
        seen.add(id(obj))
        stack.extend(gc.get_referents(obj))
    return len(seen)


def test_queued_and_staged_rows_give_the_garbage_collector_nothing_to_walk(tdb):
    """Full GC passes over queued row dicts were the training loop's longest stalls (15-30 ms)."""
    run = ObjectId()
    row = make_row(run, "train", 3, 0, None, 1000.0, {"loss": 0.5, "acc": float("nan")})
    gc.collect()
    assert not gc.is_tracked(row)
    fields = row_fields(row)
    assert fields["run"] == run and fields["step"] == 3 and fields["metrics"]["loss"] == 0.5
    sink = BucketSink(tdb._scope)
    sink.stage([make_row(run, "train", step, 0, None, 1000.0 + step, {"loss": 1.0 / (step + 1)})
                for step in range(5 * BUCKET_ROWS)])
    gc.collect()
    staged = (sink._streams, sink._dirty_buckets, sink._dirty_streams)
    walked = _tracked_reachable(*staged)
    assert walked < 100, walked  # a few lists per bucket, not a dict per row (rows as dicts: over 5 * BUCKET_ROWS)
    sink.persist()
    assert [r["step"] for r in LogReader(tdb._scope).run_rows(run)] == list(range(5 * BUCKET_ROWS))


@pytest.mark.parametrize("row", [
    (None, False, "train", 10 ** 30, None, None, 0.0, "loss", 0.1),  # step=1e30: the writer thread used to die
    (None, False, "train", 1, 10 ** 400, None, 0.0, "loss", 0.1),
    (None, False, "train", 1, None, None, 0.0, "a\x00b", 0.1),  # a NUL in a metric name
    (None, False, "train", 1, None, None, float("inf"), "loss", 0.1),
], ids=["huge-step", "huge-epoch", "nul-metric", "inf-time"])
def test_a_row_no_server_can_store_never_stops_the_writer(tdb, row):
    tdb.train_log(step=1, loss=0.5)
    tdb.logbook.writer.write(row)  # past the entry checks, straight into the queue
    tdb.train_log(step=2, loss=0.4)
    assert tdb.flush_logs(timeout_s=10)
    assert tdb.logs()["step"].tolist() == [1, 2]
    assert tdb.logbook.writer.rejected == 1 and tdb.logbook.writer._thread.is_alive()
    tdb.train_log(step=3, loss=0.3)
    assert tdb.flush_logs(timeout_s=10) and tdb.logs()["step"].tolist() == [1, 2, 3]


def test_a_persist_that_fails_for_good_is_reported_and_logging_goes_on(tdb, monkeypatch):
    from bson.errors import InvalidDocument

    sink, real = tdb.logbook.sink, tdb.logbook.sink.persist
    failures = iter([InvalidDocument("cannot encode")])

    def persist_once_broken():
        error = next(failures, None)
        if error is not None:
            raise error
        real()

    monkeypatch.setattr(sink, "persist", persist_once_broken)
    tdb.train_log(step=1, loss=0.5)
    tdb.flush_logs(timeout_s=10)
    assert tdb.logbook.writer.rejected == 1 and tdb.logbook.writer._thread.is_alive()
    tdb.train_log(step=2, loss=0.4)
    assert tdb.flush_logs(timeout_s=10)
    assert tdb.logs()["step"].tolist() == [2]
