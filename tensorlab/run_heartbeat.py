"""A training run's heartbeat, sent from a daemon thread: a long epoch must not look like a dead process.
Each beat also carries the machine's load (system_metrics.py).

Readers mark a `running` run `crashed` once its heartbeat is older than the storage layer's
STALE_AFTER_S (run_liveness.py); this thread keeps it fresh every HEARTBEAT_S while `fit` runs and
stops with the run. A failed beat is logged and retried at the next interval, never raised.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from .system_metrics import sample as sample_system
from .tensordb.documents.run_liveness import HEARTBEAT_S

logger = logging.getLogger("tensorlab.runs")


class RunHeartbeat:
    def __init__(self, db: Any, run_id: Any, progress: Callable[[], dict[str, Any]],
                 interval_s: float | None = None) -> None:
        self._db, self._run_id, self._progress = db, run_id, progress
        self._interval_s = HEARTBEAT_S if interval_s is None else interval_s
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="tensorlab-run-heartbeat", daemon=True)

    def start(self) -> RunHeartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()

    def _beat(self) -> None:
        first = True  # at once, then every interval: the run shows its machine's load from the start
        while not self._stopped.wait(0 if first else self._interval_s):
            first = False
            try:
                self._db.run_store.heartbeat(self._run_id, system=sample_system(), **self._progress())
            except Exception as error:  # noqa: BLE001 - a heartbeat never interrupts training
                logger.warning("TensorLab could not send the heartbeat of run %s (%s); retrying.", self._run_id, error)
