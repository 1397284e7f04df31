"""train_log / valid_log / test_log: rows with run, step, epoch and time, sent by the async writer."""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping
from typing import Any

from ..validation import check_query, restore_metrics, split_metrics
from .logwriter import AsyncLogWriter
from .scope import Scope

LOGS = "logs"
KINDS = ("train", "valid", "test")


class LogBook:
    def __init__(self, scope: Scope, **writer_options: Any) -> None:
        self._scope = scope
        self._collection = scope.collection(LOGS)
        self._collection.create_index([("study", 1), ("run", 1), ("kind", 1), ("step", 1)])
        self.writer = AsyncLogWriter(self._collection, **writer_options)
        self._steps: dict[tuple[Any, str], int] = {}
        self._warned_non_finite: set[str] = set()

    def log(self, kind: str, metrics: Mapping[str, Any], *, run: Any = None, step: int | None = None,
            epoch: int | None = None, **fields: Any) -> bool:
        """Queue one row; returns False only when the writer had to drop it (reported loudly)."""
        values, non_finite = split_metrics(metrics)
        key = (run, kind)
        if step is None:
            step = self._steps.get(key, -1) + 1
        self._steps[key] = step
        doc = {"study": self._scope.study, "run": run, "kind": kind, "step": step, "epoch": epoch,
               "time": time.time(), "metrics": values, **fields}
        if non_finite:
            doc["non_finite"] = non_finite
            fresh = [f"{name}={text}" for name, text in non_finite.items() if name not in self._warned_non_finite]
            if fresh:
                self._warned_non_finite.update(non_finite)
                warnings.warn(f"TensorLab: non-finite value logged for {fresh} (stored and flagged in "
                              "`non_finite`).", RuntimeWarning, stacklevel=3)
        return self.writer.write(doc)

    def rows_after(self, run: Any, after: Any = None) -> list[dict[str, Any]]:
        """Stored rows of run `run` written after row id `after` (all when None), oldest first: a panel's poll."""
        query: dict[str, Any] = {"study": self._scope.study, "run": run}
        if after is not None:
            query["_id"] = {"$gt": after}
        return list(self._collection.find(query, sort=[("_id", 1)]))

    def read(self, query: Any = None, *, run: Any = None, kind: str | None = None) -> Any:
        """Log rows as a pandas DataFrame, one column per metric (flushes pending rows first)."""
        import pandas as pd

        self.writer.flush()
        query = self._scope.scoped(check_query(query))
        if run is not None:
            query["run"] = run
        if kind is not None:
            query["kind"] = kind
        rows = []
        for doc in self._collection.find(query, sort=[("time", 1), ("_id", 1)]):
            row = {k: doc.get(k) for k in ("run", "kind", "step", "epoch", "time")}
            if "batch" in doc:
                row["batch"] = doc["batch"]
            row.update(restore_metrics(doc.get("metrics", {}), doc.get("non_finite")))
            row["non_finite"] = sorted(doc.get("non_finite") or {})
            rows.append(row)
        frame = pd.DataFrame(rows, columns=None if rows else ["run", "kind", "step", "epoch", "time"])
        if rows:
            frame["time"] = pd.to_datetime(frame["time"], unit="s", utc=True)
        return frame
