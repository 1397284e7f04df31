"""A job queue in MongoDB: atomic claims, leases, retries with a bound, stored tracebacks.

queued -> running -> done | failed | cancelled. Candidates are read highest priority first, then
oldest; a running job whose lease has expired (its worker died) is a candidate again. Each claim
uses one of `max_attempts`; a job out of attempts whose lease expires is marked failed instead of
being retried forever.

Why claims are documents: `find_one_and_update` is atomic on MongoDB but not on every server that
speaks its protocol (FerretDB 1.x reads, then writes: 8 processes made 1,124 claims of 300 jobs).
A unique `_id` is enforced everywhere, so a claim inserts `{_id: "<job>:<claim number>"}` into
`job_claims`; exactly one worker's insert succeeds for each claim number, and only that worker
moves the job to running. Claim numbers only grow, so a stale read can never win twice.

Why claims are cheap: candidates come from the ready set (job_ready.py), which holds only
unfinished jobs, and each worker keeps the sorted candidate list it read until the queue's version
token changes, so most claims touch documents by `_id` only. Every candidate is checked against its
job document before the claim marker is written.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from .clock import as_utc, utc_now
from .errors import InvalidInput, JobError, NotFound
from .job_ready import UNFINISHED, ReadySet
from .runs import query_to_text
from .validation import check_query, clean_tags

JOBS = "jobs"
CLAIMS = "job_claims"
CLAIM_ROUNDS = 4  # re-reads when every candidate was just taken by someone else
STALE_CLAIM_S = 30.0  # a claim marker this old whose job never moved: its worker died in between
STALE_ENTRY_S = 30.0  # a ready entry this old without its job: the pusher died between the two inserts
CANDIDATES = 64  # read at once and kept between claims; a sorted read costs the same for 1 or 64
MISSES_BEFORE_REREAD = 4  # candidates taken by others in a row: the list is stale, a fresh read is cheaper
CANDIDATES_MAX_AGE_S = 2.0  # re-read at least this often: expired leases change no version token
VERSION_CHECK_S = 0.25  # a job pushed or re-prioritised by another process reorders a busy worker within this
STATUSES = ("queued", "running", "done", "failed", "cancelled")


def _finished(job: dict | None) -> bool:
    """Done, failed or cancelled: never claimed again without a requeue, so its ready entry can go."""
    return job is not None and job["status"] not in UNFINISHED


def _as_id(job: Any) -> ObjectId:
    if isinstance(job, Mapping):
        job = job.get("_id")
    if isinstance(job, ObjectId):
        return job
    if isinstance(job, str) and ObjectId.is_valid(job):
        return ObjectId(job)
    raise InvalidInput(f"A job is named by its id (ObjectId or 24-hex string); got {job!r}.")


class JobQueue:
    def __init__(self, tdb: Any) -> None:
        self._tdb = tdb
        self._indexed = False
        self.ready = ReadySet(tdb)
        self._cached: deque[tuple[Any, ObjectId]] = deque()  # (priority, job id), best first
        self._cache_query: str | None = None
        self._cache_version: Any = None
        self._cache_loaded = 0.0
        self._version_checked = 0.0

    @property
    def collection(self) -> Any:
        return self._tdb.collection(JOBS)

    def _ensure_indexes(self) -> None:
        if not self._indexed:
            self.collection.create_index([("study", 1), ("status", 1), ("priority", -1), ("created", 1)])
            self._indexed = True

    def push(
        self,
        architecture: Any = None,
        *,
        code: str | None = None,
        data: Any = None,
        validation_data: Any = None,
        hyper_parameters: Mapping[str, Any] | None = None,
        epochs: int = 1,
        batch_size: int = 32,
        priority: int = 0,
        tags: Mapping[str, Any] | None = None,
        max_attempts: int = 3,
        warm_start: Any = None,
        queue: str = "default",
        sweep: Any = None,
    ) -> ObjectId:
        """Queue a training job; it needs an architecture (a stored one's id or query) or model code."""
        if architecture is None and not (isinstance(code, str) and code.strip()):
            raise InvalidInput(
                "A job needs an architecture (a stored architecture's id or query) or model-building "
                "`code`; got neither."
            )
        for name, value, low in (
            ("epochs", epochs, 1),
            ("batch_size", batch_size, 1),
            ("max_attempts", max_attempts, 1),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise InvalidInput(f"Invalid value for argument `{name}`: {value!r}. Expected an int >= {low}.")
        if not isinstance(priority, (int, float)) or isinstance(priority, bool):
            raise InvalidInput(f"Invalid value for argument `priority`: {priority!r}. Expected a number.")
        self._ensure_indexes()
        now = utc_now()
        doc = {
            "study": self._tdb.study,
            "queue": queue,
            "status": "queued",
            "priority": priority,
            "created": now,
            "updated": now,
            "architecture": query_to_text(architecture) if isinstance(architecture, Mapping) else architecture,
            "code": code,
            "requires_code": code is not None,
            "data_query": query_to_text(check_query(data, "data")) if data is not None else None,
            "validation_query": query_to_text(check_query(validation_data, "validation_data"))
            if validation_data is not None
            else None,
            "hyper_parameters": clean_tags(hyper_parameters, "hyper_parameters"),
            "epochs": epochs,
            "batch_size": batch_size,
            "tags": clean_tags(tags),
            "warm_start": warm_start,
            "sweep": sweep,
            "attempts": 0,
            "attempts_left": max_attempts,
            "claims": 0,
            "max_attempts": max_attempts,
            "worker": None,
            "lease_expires": None,
            "progress": None,
            "result": None,
            "error": None,
            "traceback": None,
            "run": None,
        }
        doc["_id"] = ObjectId()
        self.ready.ensure_built(self.collection)  # on a new database: while there is nothing to build from
        self.ready.add(doc)  # first: a crash between the two inserts leaves an entry that is later dropped
        self.collection.insert_one(doc)
        self._queue_changed()
        return doc["_id"]

    def _reap_exhausted(self, job_ids: list[ObjectId], now: datetime) -> None:
        """Running jobs whose worker vanished on their last attempt end failed, not retried forever."""
        for job_id in job_ids:  # checked on a read by `_id`, written by `_id` alone (see _owned_update)
            job = self.collection.find_one({"_id": job_id}, {"status": 1, "lease_expires": 1, "attempts_left": 1})
            if (
                job is not None
                and job["status"] == "running"
                and job.get("lease_expires") is not None
                and as_utc(job["lease_expires"]) < now
                and job.get("attempts_left", 0) <= 0
            ):
                error = "lease expired on the last attempt (the worker stopped sending heartbeats)"
                self.collection.update_one(
                    {"_id": job_id}, {"$set": {"status": "failed", "updated": now, "error": error}}
                )
                job["status"] = "failed"
            if _finished(job):
                self.ready.remove(job_id)

    def pop(self, worker: str, lease_s: float = 60.0, query: Any = None, allow_code: bool = False) -> dict | None:
        """Claim the best claimable job for `worker` (exactly one worker wins each claim); None when none."""
        if not isinstance(worker, str) or not worker:
            raise InvalidInput(f"`worker` must be a non-empty name; got {worker!r}.")
        base = self._tdb.scoped(check_query(query))
        if not allow_code:
            base = {"$and": [base, {"requires_code": False}]}
        self.ready.ensure_built(self.collection)
        query_text = query_to_text(base)
        for _round in range(CLAIM_ROUNDS):
            now = utc_now()
            if self._candidates_outdated(query_text):
                self._load_candidates(base, query_text, now)
            if not self._cached:
                return None
            misses = 0
            while self._cached and misses < MISSES_BEFORE_REREAD:
                priority, job_id = self._cached.popleft()
                claimed = self._try_claim(job_id, worker, lease_s, allow_code, now)
                if claimed is not None:
                    return claimed
                misses += 1
                self._step_aside(priority)
            self._cached.clear()  # taken by others since we read them: the rest likely is too, so read again
        return None  # still contended after a few rounds: the caller polls again later

    def _step_aside(self, priority: Any) -> None:
        """A candidate was taken by someone else: other workers are walking down the same list, so go on
        from a random point among the jobs of the same priority, where they rarely are."""
        same = 0
        while same < len(self._cached) and self._cached[same][0] == priority:
            same += 1
        if same > 1:
            run = [self._cached.popleft() for _ in range(same)]
            start = random.randrange(same)
            self._cached.extendleft(reversed(run[start:] + run[:start]))

    def _candidates_outdated(self, query_text: str) -> bool:
        """Whether the kept candidate list must be read again: used up, too old, for another filter, or the
        queue's version token changed (read at most every VERSION_CHECK_S; this process's own changes clear
        the list at once)."""
        if not self._cached or query_text != self._cache_query:
            return True
        if time.monotonic() - self._cache_loaded > CANDIDATES_MAX_AGE_S:
            return True
        if time.monotonic() - self._version_checked > VERSION_CHECK_S:
            self._version_checked = time.monotonic()
            return self.ready.version() != self._cache_version
        return False

    def _load_candidates(self, base: dict[str, Any], query_text: str, now: datetime) -> None:
        self._cache_version = self.ready.version()  # before the read: a later change moves the token again
        self._version_checked = time.monotonic()
        if ReadySet.covers(base):
            candidates, exhausted = self.ready.scan(base, now, CANDIDATES)
            self._reap_exhausted(exhausted, now)
        else:  # a filter on fields the ready set does not copy: read the jobs themselves
            claimable = {"$or": [{"status": "queued"}, {"status": "running", "lease_expires": {"$lt": now}}]}
            cursor = self.collection.find(
                {"$and": [base, claimable, {"attempts_left": {"$gt": 0}}]},
                {"_id": 1, "priority": 1},
                sort=[("priority", -1), ("created", 1), ("_id", 1)],
                limit=CANDIDATES,
            )
            candidates = [(job.get("priority"), job["_id"]) for job in cursor]
        if not candidates:  # an idle worker settles dead last attempts outside its own filter too
            self._reap_exhausted(self.ready.scan(self._tdb.scoped({}), now, 0)[1], now)
        self._cached = deque(candidates)
        self._cache_query = query_text
        self._cache_loaded = time.monotonic()

    def _settle_completed(self, job_id: ObjectId) -> bool:
        """A job whose done marker exists is done, even if its worker died before saying so in the job."""
        marker = self._tdb.collection(CLAIMS).find_one({"_id": f"{job_id}:done"})
        if marker is None:
            return False
        self.collection.update_one(
            {"_id": job_id, "status": {"$ne": "done"}},
            {
                "$set": {
                    "status": "done",
                    "result": marker.get("result"),
                    "worker": marker["worker"],
                    "lease_expires": None,
                    "finished": marker["at"],
                    "updated": utc_now(),
                }
            },
        )
        self.ready.remove(job_id)
        return True

    def _skip_stale_claim(self, job_id: ObjectId, number: int, now: datetime) -> None:
        """A worker killed between inserting claim `number` and taking the job would strand it: every later
        claimer reads the same number and loses to the dead one's marker. Once that marker is stale, the
        job's claim count moves past it, so the next claim uses a fresh number."""
        marker = self._tdb.collection(CLAIMS).find_one({"_id": f"{job_id}:{number}"})
        if marker is None:
            return
        if now - as_utc(marker["at"]) > timedelta(seconds=STALE_CLAIM_S):
            self.collection.update_one(
                {"_id": job_id, "$or": [{"claims": {"$lt": number}}, {"claims": {"$exists": False}}]},
                {"$set": {"claims": number}},
            )

    def _claimable(self, job_id: ObjectId, job: dict | None, allow_code: bool, now: datetime) -> bool:
        """Check a candidate against its job document, correcting or dropping a stale ready entry."""
        if job is None:
            if ObjectId(job_id).generation_time < now - timedelta(seconds=STALE_ENTRY_S):
                self.ready.remove(job_id)  # its pusher died before inserting the job
            return False
        if _finished(job):
            self.ready.remove(job_id)
            return False
        if job["status"] == "running" and job.get("lease_expires") and as_utc(job["lease_expires"]) >= now:
            return False  # just taken by another worker (which updates the entry itself)
        return job.get("attempts_left", 0) > 0 and (allow_code or not job.get("requires_code"))

    def _try_claim(self, job_id: ObjectId, worker: str, lease_s: float, allow_code: bool, now: datetime) -> dict | None:
        job = self.collection.find_one({"_id": job_id})
        if not self._claimable(job_id, job, allow_code, now):
            return None
        number = int(job.get("claims", 0)) + 1
        try:
            self._tdb.collection(CLAIMS).insert_one(
                {"_id": f"{job_id}:{number}", "job": job_id, "worker": worker, "at": now}
            )
        except DuplicateKeyError:
            self._skip_stale_claim(job_id, number, now)
            return None
        if number > 1 and self._settle_completed(job_id):  # only a claimed job can have been completed
            return None  # it was finished by a worker that died right after: never train it twice
        lease_expires = now + timedelta(seconds=lease_s)
        fields = {
            "status": "running",
            "worker": worker,
            "claimed_at": now,
            "heartbeat": now,
            "updated": now,
            "lease_expires": lease_expires,
            "claims": number,
        }
        # The marker makes us the only claimer of number `number`; the write names only `_id` (see _owned_update).
        self.collection.update_one({"_id": job_id}, {"$set": fields, "$inc": {"attempts": 1, "attempts_left": -1}})
        job.update(fields, attempts=job.get("attempts", 0) + 1, attempts_left=job["attempts_left"] - 1)
        self.ready.hold(job_id, lease_expires, job["attempts_left"])
        return job

    def _held(self, job: Any, worker: str) -> dict:
        """The job document, if `worker` still holds it; JobError when it was cancelled or taken over."""
        current = self.get(job)
        if current.get("worker") != worker or current["status"] != "running":
            raise JobError(
                f"Job {current['_id']} is no longer held by worker {worker!r} (status {current['status']!r}, "
                f"worker {current.get('worker')!r}); its lease expired or it was cancelled."
            )
        return current

    def _owned_update(
        self, job: Any, worker: str, fields: dict[str, Any], extra: dict | None = None, *, checked: bool = False
    ) -> dict:
        """Update a job its worker holds. Ownership is checked on a read, then the write names only `_id`:
        a server may scan the whole collection for any other filter (FerretDB 1.x pushes down only a lone
        `_id`), and exactly-once completion rests on the unique markers, not on this write."""
        job_id = _as_id(job)
        if not checked:
            self._held(job_id, worker)
        return self.collection.find_one_and_update(
            {"_id": job_id},
            {"$set": {**fields, "updated": utc_now()}, **(extra or {})},
            return_document=ReturnDocument.AFTER,
        )

    def heartbeat(self, job: Any, worker: str, lease_s: float = 60.0, progress: Any = None) -> dict:
        """Extend the lease; raises JobError when the job was cancelled or taken over."""
        fields: dict[str, Any] = {"lease_expires": utc_now() + timedelta(seconds=lease_s), "heartbeat": utc_now()}
        if progress is not None:
            fields["progress"] = progress
        doc = self._owned_update(job, worker, fields)
        self.ready.hold(doc["_id"], doc["lease_expires"], doc["attempts_left"])
        return doc

    def complete(self, job: Any, worker: str, result: Any = None) -> dict:
        """Mark done, exactly once: a unique `<job>:done` marker is inserted first, so a worker whose
        lease was taken over cannot complete the job a second time on any server."""
        job_id = _as_id(job)
        current = self._held(job_id, worker)
        try:
            self._tdb.collection(CLAIMS).insert_one(
                {
                    "_id": f"{job_id}:done",
                    "job": job_id,
                    "worker": worker,
                    "claim": current.get("claims"),
                    "result": result,
                    "at": utc_now(),
                }
            )
        except DuplicateKeyError:
            self._settle_completed(job_id)
            raise JobError(f"Job {job_id} was already completed by another worker.") from None
        doc = self._owned_update(
            job,
            worker,
            {"status": "done", "result": result, "finished": utc_now(), "lease_expires": None},
            checked=True,
        )
        self.ready.remove(job_id)
        return doc

    def fail(self, job: Any, worker: str, error: str, traceback: str | None = None) -> dict:
        """Record a failure: back to queued while attempts remain, else failed. Returns the job."""
        current = self._held(job, worker)
        status = "queued" if current["attempts_left"] > 0 else "failed"
        doc = self._owned_update(
            job,
            worker,
            {
                "status": status,
                "error": error,
                "traceback": traceback,
                "lease_expires": None,
                "worker": None if status == "queued" else worker,
            },
            {"$push": {"failures": {"error": error, "traceback": traceback, "worker": worker, "at": utc_now()}}},
            checked=True,
        )
        self._sync_ready(doc)
        return doc

    def attach_run(self, job: Any, worker: str, run_id: Any) -> dict:
        return self._owned_update(job, worker, {"run": run_id})

    def cancel(self, job: Any) -> dict:
        doc = self._transition(job, ("queued", "running"), {"status": "cancelled", "lease_expires": None})
        self._sync_ready(doc)
        return doc

    def requeue(self, job: Any, refund_attempt: bool = False) -> dict:
        """Put a job back in the queue (from running, failed or cancelled); `refund_attempt` for a clean stop."""
        extra = {"$inc": {"attempts_left": 1, "attempts": -1}} if refund_attempt else {}
        doc = self._transition(
            job, ("running", "failed", "cancelled"), {"status": "queued", "worker": None, "lease_expires": None}, extra
        )
        if doc["attempts_left"] <= 0:
            self.collection.update_one({"_id": doc["_id"]}, {"$set": {"attempts_left": 1}})
            doc["attempts_left"] = 1
        self._sync_ready(doc)
        return doc

    def set_priority(self, job: Any, priority: float) -> dict:
        doc = self._transition(job, ("queued", "running"), {"priority": priority})
        self._sync_ready(doc)
        return doc

    def _sync_ready(self, job: dict) -> None:
        """Mirror a job's new state into the ready set; a job that became claimable bumps the version."""
        if _finished(job):
            self.ready.remove(job["_id"])
            return
        self.ready.add(job)
        self._queue_changed()

    def _queue_changed(self) -> None:
        self.ready.changed()
        self._cached.clear()

    def rebuild_ready_set(self) -> int:
        """Re-create the ready set from the unfinished jobs (a repair after writing job documents by hand)."""
        count = self.ready.rebuild(self.collection)
        self._queue_changed()
        return count

    def _transition(self, job: Any, allowed: tuple[str, ...], fields: dict, extra: dict | None = None) -> dict:
        job_id = _as_id(job)
        doc = self.collection.find_one_and_update(
            {"_id": job_id, "status": {"$in": list(allowed)}},
            {"$set": {**fields, "updated": utc_now()}, **(extra or {})},
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            current = self.get(job_id)
            raise JobError(f"Job {job_id} is {current['status']!r}; this needs one of {allowed}.")
        return doc

    def get(self, job: Any) -> dict:
        doc = self.collection.find_one({"_id": _as_id(job)})
        if doc is None:
            raise NotFound(f"No job {job!r}.")
        return doc

    def find(self, query: Any = None, status: str | None = None) -> list[dict]:
        query = self._tdb.scoped(check_query(query))
        if status is not None:
            if status not in STATUSES:
                raise InvalidInput(f"Invalid job status {status!r}. Expected one of {STATUSES}.")
            query["status"] = status
        return list(self.collection.find(query, sort=[("created", 1), ("_id", 1)]))
