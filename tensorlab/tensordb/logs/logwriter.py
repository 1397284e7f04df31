"""The only path by which log rows reach MongoDB: an asynchronous, batched, retrying writer.

`write()` appends to an in-memory buffer and returns (a few microseconds); a background thread
hands batches to a sink (log_buckets.BucketSink), which stages them in memory and persists them.
If the server goes away the thread keeps what is staged and retries with back-off; persisting is
idempotent, so a write that half-happened before a drop is completed without duplicates. A row that
can never be stored (say, a value BSON cannot encode) is rejected and reported, and the writer goes
on. Only when the buffer bound is reached are new rows dropped, and that is reported loudly
(warning, log record, `dropped` counter) — never silently.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import warnings
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

from pymongo.errors import OperationFailure, PyMongoError

from .log_rows import LogRow, describe

logger = logging.getLogger("tensorlab.logs")
STAGE_CHUNK_ROWS = 64  # rows staged between two pauses of the writer thread (~0.3 ms of work)
YIELD_S = 0.0002  # the pause: the GIL goes back to the training thread instead of after Python's 5 ms switch
_WRITERS: weakref.WeakSet[AsyncLogWriter] = weakref.WeakSet()


class AsyncLogWriter:
    def __init__(self, sink: Any, *, max_pending: int = 1_000_000, batch_size: int = 2000,
                 flush_interval_s: float = 0.25, max_backoff_s: float = 5.0,
                 on_drop: Callable[[int], None] | None = None) -> None:
        self._sink = sink
        self.max_pending = max_pending
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.max_backoff_s = max_backoff_s
        self._pending: deque[LogRow | dict[str, Any]] = deque()
        self._staging = 0  # rows taken from the buffer, not yet in the sink: still pending for flush()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._closed = False
        self._flushing = 0  # callers waiting in flush()
        self._on_drop = on_drop
        self.written = 0
        self.dropped = 0
        self.rejected = 0
        self.retries = 0
        self.last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name="tensorlab-log-writer", daemon=True)
        self._thread.start()
        _WRITERS.add(self)

    @property
    def pending(self) -> int:
        """Rows not yet confirmed by the server: buffered, plus staged in the sink."""
        return len(self._pending) + self._staging + self._sink.unsaved

    def write(self, doc: LogRow | dict[str, Any]) -> bool:
        """Queue one row (see log_rows.py); False (and a loud report) when the buffer is full and it is dropped."""
        if self.pending >= self.max_pending or self._closed:
            self._drop(doc)
            return False
        self._pending.append(doc)
        if len(self._pending) >= self.batch_size and not self._wake.is_set():  # set() takes a lock: 4 µs a call
            self._wake.set()
        return True

    def _drop(self, doc: LogRow | dict[str, Any]) -> None:
        self.dropped += 1
        if self.dropped == 1 or self.dropped % 10_000 == 0:
            reason = "writer is closed" if self._closed else f"{self.max_pending} rows are waiting for the server"
            message = (f"TensorLab log writer DROPPED {self.dropped} log row(s) so far ({reason}); latest dropped: "
                       f"{describe(doc)}. Last server error: {self.last_error}")
            logger.error(message)
            warnings.warn(message, RuntimeWarning, stacklevel=3)
        if self._on_drop:
            self._on_drop(self.dropped)

    def _take_batch(self) -> list[LogRow | dict[str, Any]]:
        with self._lock:
            batch = []
            while self._pending and len(batch) < self.batch_size:
                batch.append(self._pending.popleft())
            self._staging = len(batch)
            return batch

    def _stage(self, batch: list[LogRow | dict[str, Any]]) -> None:
        """Hand rows to the sink; rows it can never store are counted and reported, the rest go on.

        In small chunks with a pause between them: a training thread that wants the GIL gets it within a
        chunk, where one long stage would hold it until Python's switch interval forces a handover.
        """
        rejected = []
        try:
            for start in range(0, len(batch), STAGE_CHUNK_ROWS):
                if start and not self._flushing:  # a caller blocked in flush() wants no GIL, only the rows
                    time.sleep(YIELD_S)
                rejected += self._sink.stage(batch[start:start + STAGE_CHUNK_ROWS])
        finally:
            with self._lock:
                self._staging = 0
        if rejected:
            self.rejected += len(rejected)
            row, reason = rejected[0]
            logger.error("TensorLab log writer REJECTED %d log row(s) the server cannot store (%s); first: %s. "
                         "Other rows are unaffected.", len(rejected), reason, describe(row))

    def _run(self) -> None:
        """The writer thread: it never dies of a row or an error, only when closed and drained."""
        backoff = 0.0
        while True:
            self._wake.wait(self.flush_interval_s if backoff == 0 else backoff)
            self._wake.clear()
            try:
                backoff = self._drain(backoff)
            except Exception as error:  # noqa: BLE001 - anything unforeseen is reported; logging goes on
                self._abandon(error)
            with self._lock:
                if not self._pending and not self._sink.unsaved:
                    self._idle.notify_all()
                    if self._closed:
                        return

    def _drain(self, backoff: float) -> float:
        """Stage and persist until nothing is left or the server fails; returns the next back-off."""
        while True:
            batch = self._take_batch()
            if batch:
                self._stage(batch)
            if not self._sink.unsaved:
                return backoff
            unsaved = self._sink.unsaved
            try:
                self._sink.persist()
            except PyMongoError as error:
                if not _retryable(error):
                    raise
                self._report_outage(error)
                return min(self.max_backoff_s, max(0.1, backoff * 2))
            with self._lock:
                self.written += unsaved
                if backoff:
                    logger.warning("TensorLab log writer: server reachable again; %d rows waiting.", len(self._pending))
                backoff = 0.0
                self.last_error = None

    def _abandon(self, error: Exception) -> None:
        """A persist failed for a reason no retry cures (the rows could not be encoded): report the staged rows
        as rejected and go on with the next ones."""
        lost = self._sink.abandon_unsaved()
        with self._lock:
            self._staging = 0
            self.rejected += lost
            self.last_error = f"{type(error).__name__}: {error}"[:300]
        logger.error("TensorLab log writer REJECTED %d staged log row(s) the server would not store (%s); "
                     "logging goes on.", lost, self.last_error)

    def _report_outage(self, error: Exception) -> None:
        with self._lock:
            self.retries += 1
            if self.last_error is None:
                logger.warning("TensorLab log writer: cannot reach the server (%s); keeping %d rows and retrying.",
                               type(error).__name__, self.pending)
            self.last_error = f"{type(error).__name__}: {error}"[:300]

    def flush(self, timeout_s: float | None = 30.0) -> bool:
        """Wait until every queued row is written; False when `timeout_s` passes first."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        self._wake.set()
        with self._lock:
            self._flushing += 1
            try:
                while self.pending:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    self._idle.wait(timeout=min(0.1, remaining) if remaining is not None else 0.1)
                    self._wake.set()
            finally:
                self._flushing -= 1
        return True

    def close(self, timeout_s: float | None = 30.0) -> bool:
        """Flush, then stop the thread; rows written after close are reported as dropped."""
        done = self.flush(timeout_s)
        self._closed = True
        self._wake.set()
        if not done and self.pending:
            logger.error("TensorLab log writer closed with %d rows unsent (server unreachable: %s).",
                         self.pending, self.last_error)
        return done


_REFUSED_DOCUMENT_CODES = frozenset({2, 14, 52, 55, 56, 57, 121, 10334, 17419})  # bad value/type/name, too large


def _retryable(error: PyMongoError) -> bool:
    """Everything is retried (outages, timeouts, elections) except a server refusing the document itself."""
    return not (isinstance(error, OperationFailure) and error.code in _REFUSED_DOCUMENT_CODES)


@atexit.register
def _flush_all_at_exit() -> None:
    for writer in list(_WRITERS):
        if not writer._closed:
            writer.flush(timeout_s=10.0)
