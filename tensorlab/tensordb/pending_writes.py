"""Writes in flight, so that what a killed writer leaves behind can be found without scanning payloads.

A payload is written as many GridFS chunks (or one file) before the document that names it; a process
killed in between leaves chunks or a file that nothing names (48 chunks, 18 MB, in one measured kill),
and a parameter version saved half-way stays `complete: false` for ever. Finding such leftovers
afterwards would mean reading every chunk. Instead, each write first records here what it is about to
create (`payload_writes`: the payload's `_id`, its chunk ids, or the parameter version) with the writer's
process identity, and removes the record when done. The next save collects the records of writers that
are gone (the same test as for runs, run_liveness.py), each by `_id`: the collection only ever holds the
writes in flight, so collecting costs the same after a year of use as on the first day.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bson import ObjectId

from ..clock import utc_now
from .run_liveness import process_gone, this_process

PENDING = "payload_writes"


class PendingWrites:
    def __init__(self, database: Any) -> None:
        self.collection = database[PENDING]

    def begin(self, kind: str, **what: Any) -> ObjectId:
        """Record a write about to start; returns the record's id for `beat` and `end`."""
        now = utc_now()
        record_id = ObjectId()
        self.collection.insert_one({"_id": record_id, "kind": kind, "started": now, "heartbeat": now,
                                    **this_process(), **what})
        return record_id

    def beat(self, record_id: ObjectId) -> None:
        """Still writing: writers on other hosts are judged by this."""
        self.collection.update_one({"_id": record_id}, {"$set": {"heartbeat": utc_now()}})

    def end(self, record_id: ObjectId) -> None:
        self.collection.delete_one({"_id": record_id})

    def collect_dead(self, kind: str, clean: Callable[[dict[str, Any]], None]) -> int:
        """Call `clean` for every record of `kind` whose writer is gone, then drop it; returns how many."""
        collected = 0
        for record in list(self.collection.find({"kind": kind})):
            if process_gone(record):
                clean(record)
                self.end(record["_id"])
                collected += 1
        return collected

    def count(self) -> int:
        return self.collection.count_documents({})
