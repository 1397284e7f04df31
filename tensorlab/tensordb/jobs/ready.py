"""The ready set: one small document per unfinished job, so a claim never reads the queue's history.

Why it exists: the `jobs` collection keeps every job ever run, and a server may answer a sorted,
filtered read by decoding every document in the collection (FerretDB 1.x pushes only `_id`
equality down to its storage). Claims read candidates from this collection instead, which holds
only queued and running jobs with the few fields a worker filters and sorts on.

The `jobs` document stays the truth: an entry is a hint, checked against its job before every
claim, and an entry found stale is corrected or removed then. A `version` token changes whenever a
job becomes claimable or its priority changes, so a worker may keep a sorted candidate list
between claims and re-read it only when the queue changed (see `JobQueue.pop`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from ..documents.batched_delete import delete_matching
from ..documents.scope import Scope

READY = "job_ready"
STATE = "job_queue_state"
VERSION_ID = "version"
BUILT_ID = "ready-set-built"
# Job fields copied into an entry: what worker filters (queue, tags, sweep, ...) and the claim order use.
COPIED_FIELDS = (
    "study",
    "queue",
    "tags",
    "sweep",
    "priority",
    "created",
    "requires_code",
    "architecture",
    "hyper_parameters",
    "epochs",
    "batch_size",
    "max_attempts",
    "attempts_left",
    "lease_expires",
)
QUERYABLE_FIELDS = frozenset({"_id", *COPIED_FIELDS})
UNFINISHED = ("queued", "running")


def entry_for(job: Mapping[str, Any]) -> dict[str, Any]:
    """The ready-set entry of a job document (a queued job has no lease)."""
    entry = {"_id": job["_id"], **{name: job.get(name) for name in COPIED_FIELDS}}
    if job.get("status") == "queued":
        entry["lease_expires"] = None
    return entry


def query_fields(query: Any) -> set[str]:
    """Top-level field names a MongoDB filter refers to (through $and/$or/$nor/$not)."""
    fields: set[str] = set()
    if isinstance(query, Mapping):
        for key, value in query.items():
            if key.startswith("$"):
                fields |= query_fields(value)
            else:
                fields.add(key.split(".", 1)[0])
    elif isinstance(query, (list, tuple)):
        for item in query:
            fields |= query_fields(item)
    return fields


class ReadySet:
    def __init__(self, scope: Scope) -> None:
        self._scope = scope
        self._built = False

    @property
    def collection(self) -> Any:
        return self._scope.collection(READY)

    @property
    def _state(self) -> Any:
        return self._scope.collection(STATE)

    @staticmethod
    def covers(query: Mapping[str, Any]) -> bool:
        """Whether a worker's job filter can be answered from entries (else the caller reads `jobs`)."""
        return query_fields(query) <= QUERYABLE_FIELDS

    def version(self) -> Any:
        doc = self._state.find_one({"_id": VERSION_ID})
        return None if doc is None else doc.get("token")

    def changed(self) -> None:
        """A job became claimable or its order changed: cached candidate lists are out of date."""
        change = {"$set": {"token": ObjectId()}}
        try:
            self._state.update_one({"_id": VERSION_ID}, change, upsert=True)
        except DuplicateKeyError:  # two first-ever upserts raced (not atomic on every server): it exists now
            self._state.update_one({"_id": VERSION_ID}, change)

    def add(self, job: Mapping[str, Any]) -> None:
        try:
            self.collection.replace_one({"_id": job["_id"]}, entry_for(job), upsert=True)
        except DuplicateKeyError:  # an upsert racing another process's: replace what it inserted
            self.collection.replace_one({"_id": job["_id"]}, entry_for(job))

    def hold(self, job_id: ObjectId, lease_expires: datetime, attempts_left: int) -> None:
        """The job is running under a lease: not a candidate until the lease expires."""
        self.collection.update_one(
            {"_id": job_id}, {"$set": {"lease_expires": lease_expires, "attempts_left": attempts_left}}
        )

    def remove(self, job_id: ObjectId) -> None:
        self.collection.delete_one({"_id": job_id})

    def scan(self, query: dict[str, Any], now: datetime, limit: int) -> tuple[list[tuple[Any, ObjectId]], list]:
        """One read for two answers: (priority, id) of claimable-looking jobs, best first (highest priority,
        then oldest), and the ids of jobs whose lease expired on their last attempt (to end failed)."""
        unleased = {"$and": [query, {"$or": [{"lease_expires": None}, {"lease_expires": {"$lt": now}}]}]}
        cursor = self.collection.find(
            unleased,
            {"_id": 1, "priority": 1, "attempts_left": 1, "lease_expires": 1},
            sort=[("priority", -1), ("created", 1), ("_id", 1)],
            limit=limit,
        )
        candidates, exhausted = [], []
        for entry in cursor:
            if (entry.get("attempts_left") or 0) > 0:
                candidates.append((entry.get("priority"), entry["_id"]))
            elif entry.get("lease_expires") is not None:
                exhausted.append(entry["_id"])
        return candidates, exhausted

    def ensure_built(self, jobs: Any) -> None:
        """Databases written before the ready set existed get theirs once, from their unfinished jobs."""
        if self._built:
            return
        if self._state.find_one({"_id": BUILT_ID}) is None:
            self.rebuild(jobs)
            try:
                self._state.insert_one({"_id": BUILT_ID})
            except DuplicateKeyError:
                pass  # another process built it at the same time; entries are idempotent
            self.changed()
        self._built = True

    def rebuild(self, jobs: Any) -> int:
        """Re-create entries from the unfinished documents of the `jobs` collection (stale entries are harmless)."""
        count = 0
        for job in jobs.find({"status": {"$in": list(UNFINISHED)}}):
            self.add(job)
            count += 1
        return count

    def drop_study(self, study: str) -> int:
        return delete_matching(self.collection, {"study": study})
