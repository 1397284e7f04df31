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
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from .errors import InvalidInput, JobError, NotFound
from .runs import query_to_text
from .validation import check_query, clean_tags

JOBS = "jobs"
CLAIMS = "job_claims"
CLAIM_ROUNDS = 4  # re-reads when every candidate was just taken by someone else
STALE_CLAIM_S = 30.0  # a claim marker this old whose job never moved: its worker died in between
CANDIDATES = 16
STATUSES = ("queued", "running", "done", "failed", "cancelled")


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _spread(candidates: list[dict]) -> list[dict]:
    """Strict order for the first try; after a lost race, the rest of the top priority in a random rotation
    (racing workers then rarely collide again), then lower priorities in order."""
    top = candidates[0].get("priority")
    same = [c for c in candidates[1:] if c.get("priority") == top]
    offset = random.randrange(len(same)) if same else 0
    return [candidates[0], *same[offset:], *same[:offset], *candidates[1 + len(same) :]]


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
        self._last_reap = 0.0

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
        now = _now()
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
        return self.collection.insert_one(doc).inserted_id

    def _reap_exhausted(self, now: datetime) -> None:
        """Running jobs whose worker vanished on their last attempt end failed, not retried forever."""
        self.collection.update_many(
            {
                "study": self._tdb.study,
                "status": "running",
                "lease_expires": {"$lt": now},
                "attempts_left": {"$lte": 0},
            },
            {
                "$set": {
                    "status": "failed",
                    "updated": now,
                    "error": "lease expired on the last attempt (the worker stopped sending heartbeats)",
                }
            },
        )

    def pop(self, worker: str, lease_s: float = 60.0, query: Any = None, allow_code: bool = False) -> dict | None:
        """Claim the best claimable job for `worker` (exactly one worker wins each claim); None when none."""
        if not isinstance(worker, str) or not worker:
            raise InvalidInput(f"`worker` must be a non-empty name; got {worker!r}.")
        base = self._tdb.scoped(check_query(query))
        for _round in range(CLAIM_ROUNDS):
            now = _now()
            if time.monotonic() - self._last_reap > 2.0:
                self._reap_exhausted(now)
                self._last_reap = time.monotonic()
            conditions = [
                base,
                {"$or": [{"status": "queued"}, {"status": "running", "lease_expires": {"$lt": now}}]},
                {"attempts_left": {"$gt": 0}},
            ]
            if not allow_code:
                conditions.append({"requires_code": False})
            candidates = list(
                self.collection.find(
                    {"$and": conditions},
                    {"claims": 1, "priority": 1},
                    sort=[("priority", -1), ("created", 1), ("_id", 1)],
                    limit=CANDIDATES,
                )
            )
            if not candidates:
                self._reap_exhausted(now)  # an idle queue is a cheap moment to settle dead last attempts
                return None
            for candidate in _spread(candidates):
                claimed = self._try_claim(candidate, worker, lease_s, now)
                if claimed is not None:
                    return claimed
            # every candidate was taken by someone else between our read and our claim: read again
        return None  # still contended after a few rounds: the caller polls again later

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
                    "updated": _now(),
                }
            },
        )
        return True

    def _skip_stale_claim(self, job_id: ObjectId, number: int, now: datetime) -> None:
        """A worker killed between inserting claim `number` and taking the job would strand it: every later
        claimer reads the same number and loses to the dead one's marker. Once that marker is stale, the
        job's claim count moves past it, so the next claim uses a fresh number."""
        marker = self._tdb.collection(CLAIMS).find_one({"_id": f"{job_id}:{number}"})
        if marker is None:
            return
        claimed_at = marker["at"] if marker["at"].tzinfo else marker["at"].replace(tzinfo=timezone.utc)
        if now - claimed_at > timedelta(seconds=STALE_CLAIM_S):
            self.collection.update_one(
                {"_id": job_id, "$or": [{"claims": {"$lt": number}}, {"claims": {"$exists": False}}]},
                {"$set": {"claims": number}},
            )

    def _try_claim(self, candidate: dict, worker: str, lease_s: float, now: datetime) -> dict | None:
        number = int(candidate.get("claims", 0)) + 1
        try:
            self._tdb.collection(CLAIMS).insert_one(
                {"_id": f"{candidate['_id']}:{number}", "job": candidate["_id"], "worker": worker, "at": now}
            )
        except DuplicateKeyError:
            self._skip_stale_claim(candidate["_id"], number, now)
            return None
        if self._settle_completed(candidate["_id"]):
            return None  # it was finished by a worker that died right after: never train it twice
        return self.collection.find_one_and_update(
            {"_id": candidate["_id"]},
            {
                "$set": {
                    "status": "running",
                    "worker": worker,
                    "claimed_at": now,
                    "heartbeat": now,
                    "updated": now,
                    "lease_expires": now + timedelta(seconds=lease_s),
                    "claims": number,
                },
                "$inc": {"attempts": 1, "attempts_left": -1},
            },
            return_document=ReturnDocument.AFTER,
        )

    def _owned_update(self, job: Any, worker: str, fields: dict[str, Any], extra: dict | None = None) -> dict:
        job_id = _as_id(job)
        doc = self.collection.find_one_and_update(
            {"_id": job_id, "worker": worker, "status": "running"},
            {"$set": {**fields, "updated": _now()}, **(extra or {})},
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            current = self.get(job_id)
            raise JobError(
                f"Job {job_id} is no longer held by worker {worker!r} (status {current['status']!r}, "
                f"worker {current['worker']!r}); its lease expired or it was cancelled."
            )
        return doc

    def heartbeat(self, job: Any, worker: str, lease_s: float = 60.0, progress: Any = None) -> dict:
        """Extend the lease; raises JobError when the job was cancelled or taken over."""
        fields: dict[str, Any] = {"lease_expires": _now() + timedelta(seconds=lease_s), "heartbeat": _now()}
        if progress is not None:
            fields["progress"] = progress
        return self._owned_update(job, worker, fields)

    def complete(self, job: Any, worker: str, result: Any = None) -> dict:
        """Mark done, exactly once: a unique `<job>:done` marker is inserted first, so a worker whose
        lease was taken over cannot complete the job a second time on any server."""
        job_id = _as_id(job)
        current = self.get(job_id)
        if current.get("worker") != worker or current["status"] != "running":
            raise JobError(
                f"Job {job_id} is no longer held by worker {worker!r} (status {current['status']!r}, "
                f"worker {current.get('worker')!r}); its lease expired or it was cancelled."
            )
        try:
            self._tdb.collection(CLAIMS).insert_one(
                {
                    "_id": f"{job_id}:done",
                    "job": job_id,
                    "worker": worker,
                    "claim": current.get("claims"),
                    "result": result,
                    "at": _now(),
                }
            )
        except DuplicateKeyError:
            self._settle_completed(job_id)
            raise JobError(f"Job {job_id} was already completed by another worker.") from None
        return self._owned_update(
            job, worker, {"status": "done", "result": result, "finished": _now(), "lease_expires": None}
        )

    def fail(self, job: Any, worker: str, error: str, traceback: str | None = None) -> dict:
        """Record a failure: back to queued while attempts remain, else failed. Returns the job."""
        current = self.get(job)
        status = "queued" if current["attempts_left"] > 0 else "failed"
        return self._owned_update(
            job,
            worker,
            {
                "status": status,
                "error": error,
                "traceback": traceback,
                "lease_expires": None,
                "worker": None if status == "queued" else worker,
            },
            {"$push": {"failures": {"error": error, "traceback": traceback, "worker": worker, "at": _now()}}},
        )

    def attach_run(self, job: Any, worker: str, run_id: Any) -> dict:
        return self._owned_update(job, worker, {"run": run_id})

    def cancel(self, job: Any) -> dict:
        return self._transition(job, ("queued", "running"), {"status": "cancelled", "lease_expires": None})

    def requeue(self, job: Any, refund_attempt: bool = False) -> dict:
        """Put a job back in the queue (from running, failed or cancelled); `refund_attempt` for a clean stop."""
        extra = {"$inc": {"attempts_left": 1, "attempts": -1}} if refund_attempt else {}
        doc = self._transition(
            job, ("running", "failed", "cancelled"), {"status": "queued", "worker": None, "lease_expires": None}, extra
        )
        if doc["attempts_left"] <= 0:
            self.collection.update_one({"_id": doc["_id"]}, {"$set": {"attempts_left": 1}})
            doc["attempts_left"] = 1
        return doc

    def set_priority(self, job: Any, priority: float) -> dict:
        return self._transition(job, ("queued", "running"), {"priority": priority})

    def _transition(self, job: Any, allowed: tuple[str, ...], fields: dict, extra: dict | None = None) -> dict:
        job_id = _as_id(job)
        doc = self.collection.find_one_and_update(
            {"_id": job_id, "status": {"$in": list(allowed)}},
            {"$set": {**fields, "updated": _now()}, **(extra or {})},
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
