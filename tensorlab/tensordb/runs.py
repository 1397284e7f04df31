"""Run documents: one per training run, the record that logs and parameter versions point to."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Any

from bson import ObjectId

from ..clock import utc_now
from ..errors import InvalidInput, NotFound
from ..validation import check_query, clean_tags
from .query_text import query_to_text
from .scope import Scope

RUNS = "runs"
STATUSES = ("running", "finished", "failed", "stopped")


class RunStore:
    def __init__(self, scope: Scope) -> None:
        self._scope = scope

    @property
    def collection(self) -> Any:
        return self._scope.collection(RUNS)

    def start(self, name: str | None = None, *, hyper_parameters: Mapping[str, Any] | None = None,
              architecture: Any = None, data_query: Any = None, tags: Mapping[str, Any] | None = None,
              device: str | None = None, job: Any = None, **details: Any) -> ObjectId:
        """Create a run in status 'running' and return its id."""
        now = utc_now()
        run_id = ObjectId()
        doc = {
            "_id": run_id, "study": self._scope.study, "name": name or f"run-{str(run_id)[-6:]}",
            "hyper_parameters": clean_tags(hyper_parameters, "hyper_parameters"), "tags": clean_tags(tags),
            "architecture": architecture, "data_query": query_to_text(data_query), "status": "running",
            "host": socket.gethostname(), "pid": os.getpid(), "device": device, "job": job,
            "started": now, "ended": None, "heartbeat": now, "summary": {}, "error": None,
            **clean_tags(details, "details"),
        }
        self.collection.create_index([("study", 1), ("name", 1)])
        self.collection.insert_one(doc)
        return run_id

    def resolve(self, run: Any) -> dict[str, Any]:
        """A run document from its id (ObjectId or hex string) or its name (newest of that name)."""
        if isinstance(run, Mapping) and "_id" in run:
            run = run["_id"]
        if isinstance(run, ObjectId) or (isinstance(run, str) and ObjectId.is_valid(run)):
            doc = self.collection.find_one({"_id": ObjectId(run)})
        elif isinstance(run, str) and run:
            doc = self.collection.find_one({"study": self._scope.study, "name": run}, sort=[("started", -1)])
        else:
            raise InvalidInput(f"A run is named by its id or name; got {run!r}.")
        if doc is None:
            raise NotFound(f"No run {run!r} in study {self._scope.study!r}; list runs with db.runs().")
        return doc

    def update(self, run_id: ObjectId, **fields: Any) -> None:
        self.collection.update_one({"_id": run_id}, {"$set": fields})

    def heartbeat(self, run_id: ObjectId, **progress: Any) -> None:
        self.update(run_id, heartbeat=utc_now(), **({"progress": progress} if progress else {}))

    def finish(self, run_id: ObjectId, status: str = "finished", summary: Mapping[str, Any] | None = None,
               error: str | None = None) -> None:
        if status not in STATUSES[1:]:
            raise InvalidInput(f"Invalid run status {status!r}. Expected one of {STATUSES[1:]}.")
        fields: dict[str, Any] = {"status": status, "ended": utc_now(), "heartbeat": utc_now(), "error": error}
        if summary is not None:
            fields["summary"] = dict(summary)
        self.update(run_id, **fields)

    def find(self, query: Any = None) -> list[dict[str, Any]]:
        return list(self.collection.find(self._scope.scoped(check_query(query)), sort=[("started", 1)]))
