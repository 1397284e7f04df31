"""A training run's heartbeat, sent from a daemon thread: a long epoch must not look like a dead process.
Each beat also carries the machine's load (system_metrics.py).

Readers mark a `running` run `crashed` once its heartbeat is older than the storage layer's
STALE_AFTER_S (tensordb/documents/run_liveness.py); this thread keeps it fresh every HEARTBEAT_S while `fit` runs and
stops with the run. A failed beat is logged and retried at the next interval, never raised.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from .system_metrics import sample as sample_system
from .tensordb.documents.run_liveness import HEARTBEAT_S

logger = logging.getLogger("tensorlab.runs")


class RunHeartbeat:
    """Beats every `interval_s`; with `alive`, also checks every CHECK_S that the fit still runs and, once it
    does not (an exception or Ctrl-C ended it without `on_train_end`), stops and calls `on_gone` once."""

    CHECK_S = 0.5

    def __init__(self, db: Any, run_id: Any, progress: Callable[[], dict[str, Any]],
                 interval_s: float | None = None, alive: Callable[[], bool] | None = None,
                 on_gone: Callable[[], None] | None = None) -> None:
        self._db, self._run_id, self._progress = db, run_id, progress
        self._interval_s = HEARTBEAT_S if interval_s is None else interval_s
        self._alive, self._on_gone = alive, on_gone
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="tensorlab-run-heartbeat", daemon=True)

    def start(self) -> RunHeartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()

    @property
    def beating(self) -> bool:
        return self._thread.is_alive()

    def _beat(self) -> None:
        next_beat = time.monotonic()  # at once, then every interval: the run shows its machine's load from the start
        while not self._stopped.wait(self._wait_s(next_beat)):
            if self._alive is not None and not self._alive():
                self._stopped.set()
                if self._on_gone is not None:
                    self._on_gone()
                return
            if time.monotonic() >= next_beat:
                next_beat = time.monotonic() + self._interval_s
                self._send()

    def _wait_s(self, next_beat: float) -> float:
        left = max(0.0, next_beat - time.monotonic())
        return min(left, self.CHECK_S) if self._alive is not None else left

    def _send(self) -> None:
        try:
            self._db.run_store.heartbeat(self._run_id, system=sample_system(), **self._progress())
        except Exception as error:  # noqa: BLE001 - a heartbeat never interrupts training
            logger.warning("TensorLab could not send the heartbeat of run %s (%s); retrying.", self._run_id, error)
