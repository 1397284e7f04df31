"""Writes in flight, so that what a killed writer leaves behind can be found without scanning payloads.

A payload is written as many GridFS chunks (or one file) before the document that names it; a process
killed in between leaves chunks or a file that nothing names (48 chunks, 18 MB, in one measured kill),
and a parameter version saved half-way stays `complete: false` for ever. Finding such leftovers
afterwards would mean reading every chunk. Instead, each write first records here what it is about to
create (`payload_writes`: the payload's `_id`, its chunk ids, or the parameter version) with the writer's
process identity, and removes the record when done. The next save collects the records of writers that
are gone (the same test as for runs, documents/run_liveness.py), each by `_id`: the collection only ever holds the
writes in flight, so collecting costs the same after a year of use as on the first day.

A write the dead process had already sent may reach the server after that collection (the server still had
it in its socket buffer, later the busier the machine). So a collected record stays a while, marked
`swept`, and is cleaned once more by a collection at least `SWEEP_AGAIN_AFTER_S` later, then dropped
(the import ledger does the same, data/imports.py). Swept records no longer count as writes in flight.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bson import ObjectId

from ...clock import as_utc, utc_now
from ..documents.run_liveness import process_gone, this_process

PENDING = "payload_writes"
SWEEP_AGAIN_AFTER_S = 60.0
LIVE = {"swept": {"$exists": False}}


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
        """Call `clean` for every record of `kind` whose writer is gone and mark it swept; clean swept ones once
        more a minute later and drop them. Returns how many dead writes were collected now."""
        collected = 0
        for record in list(self.collection.find({"kind": kind})):
            swept = record.get("swept")
            if swept is None and process_gone(record):
                clean(record)
                self.collection.update_one({"_id": record["_id"]}, {"$set": {"swept": utc_now()}})
                collected += 1
            elif swept is not None and (utc_now() - as_utc(swept)).total_seconds() > SWEEP_AGAIN_AFTER_S:
                clean(record)
                self.end(record["_id"])
        return collected

    def live(self, query: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """The records of writes still in flight (not swept) matching `query`."""
        return list(self.collection.find({"$and": [query or {}, LIVE]}))

    def count(self) -> int:
        """Writes in flight (swept records of dead writers are not)."""
        return self.collection.count_documents(LIVE)
