"""Claims: how a worker takes the best claimable job, exactly once, on any MongoDB-protocol server.

Why claims are documents: `find_one_and_update` is atomic on MongoDB but not on every server that
speaks its protocol (FerretDB 1.x reads, then writes: 8 processes made 1,124 claims of 300 jobs).
A unique `_id` is enforced everywhere, so a claim inserts `{_id: "<job>:<claim number>"}` into
`job_claims`; exactly one worker's insert succeeds for each claim number, and only that worker
moves the job to running. Claim numbers only grow, so a stale read can never win twice.

Why claims are cheap: candidates come from the ready set (ready.py), which holds only unfinished
jobs, and each worker keeps the sorted candidate list it read until the queue's version token
changes, so most claims touch documents by `_id` only. Every candidate is checked against its job
document before the claim marker is written.
"""

from __future__ import annotations

import random
import time
from collections import deque
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from ...clock import as_utc, utc_now
from ..documents.by_id import find_by_ids
from ..documents.scope import Scope
from .ready import UNFINISHED, ReadySet

LOST = "lost"  # a failure class (see tensorlab/failure_class.py): the worker died or lost its lease

JOBS = "jobs"
CLAIMS = "job_claims"
STALE_CLAIM_S = 30.0  # a claim marker this old whose job never moved: its worker died in between
STALE_ENTRY_S = 30.0  # a ready entry this old without its job: the pusher died between the two inserts
CANDIDATES = 64  # read at once and kept between claims; a sorted read costs the same for 1 or 64
MISSES_BEFORE_REREAD = 4  # candidates taken by others in a row: the list is stale, a fresh read is cheaper
CANDIDATES_MAX_AGE_S = 2.0  # re-read at least this often: expired leases change no version token
VERSION_CHECK_S = 0.25  # a job pushed or re-prioritised by another process reorders a busy worker within this


def finished(job: dict | None) -> bool:
    """Done, failed or cancelled: never claimed again without a requeue, so its ready entry can go."""
    return job is not None and job["status"] not in UNFINISHED


class Claimer:
    """One process's side of the claim protocol, with the sorted candidate list it keeps between claims."""

    def __init__(self, scope: Scope, ready: ReadySet) -> None:
        self._scope = scope
        self.ready = ready
        self._cached: deque[tuple[Any, ObjectId]] = deque()  # (priority, job id), best first
        self._cache_query: str | None = None
        self._cache_version: Any = None
        self._cache_loaded = 0.0
        self._version_checked = 0.0
        self._unblocked: set[ObjectId] = set()

    @property
    def collection(self) -> Any:
        return self._scope.collection(JOBS)

    def forget_candidates(self) -> None:
        """This process changed the queue: the kept list is out of date at once."""
        self._cached.clear()

    def pop(self, worker: str, lease_s: float, base: dict[str, Any], query_text: str, allow_code: bool) -> dict | None:
        """Claim the best job matching `base` (its text form keys the kept list); None only when no job is
        claimable: under contention it reads again until it wins one or every candidate was tried."""
        tried: set[ObjectId] = set()  # lost in this call: taken by others, or blocked by a dead claimer's marker
        while True:
            now = utc_now()
            if self._candidates_outdated(query_text):
                self._load_candidates(base, query_text, now)
            self._cached = deque(item for item in self._cached if item[1] not in tried)
            if not self._cached:
                return None
            misses = 0
            while self._cached and misses < MISSES_BEFORE_REREAD:
                priority, job_id = self._cached.popleft()
                claimed = self._try_claim(job_id, worker, lease_s, allow_code, now)
                if claimed is not None:
                    return claimed
                if job_id not in self._unblocked:  # a job moved past a dead claimer's marker is worth a retry
                    tried.add(job_id)
                self._unblocked.discard(job_id)
                misses += 1
                self._step_aside(priority)
            self._cached.clear()  # taken by others since we read them: the rest likely is too, so read again

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
            self._reap_exhausted(self.ready.scan(self._scope.scoped({}), now, 0)[1], now)
        self._cached = deque(candidates)
        self._cache_query = query_text
        self._cache_loaded = time.monotonic()

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
                    {"_id": job_id}, {"$set": {"status": "failed", "updated": now, "error": error,
                                               "failure_class": LOST}}
                )
                job["status"] = "failed"
            if finished(job):
                self.ready.remove(job_id)

    def settle_completed(self, job_id: ObjectId) -> bool:
        """A job whose done marker exists is done, even if its worker died before saying so in the job."""
        marker = self._scope.collection(CLAIMS).find_one({"_id": f"{job_id}:done"})
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
        marker = self._scope.collection(CLAIMS).find_one({"_id": f"{job_id}:{number}"})
        if marker is None:
            return
        if now - as_utc(marker["at"]) > timedelta(seconds=STALE_CLAIM_S):
            self._unblocked.add(job_id)
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
        if finished(job):
            self.ready.remove(job_id)
            return False
        if job["status"] == "running" and job.get("lease_expires") and as_utc(job["lease_expires"]) >= now:
            return False  # just taken by another worker (which updates the entry itself)
        if job.get("attempts_left", 0) <= 0 or not (allow_code or not job.get("requires_code")):
            return False
        return not (job.get("after") and self._waiting(job))

    def _waiting(self, job: dict) -> bool:
        """Whether a job of a plan still waits for the jobs it comes after; when one of them failed or was
        cancelled, the job fails now, naming it (it could never run)."""
        before = find_by_ids(self.collection, job["after"])
        ended = next((dep for dep in before if dep["status"] in ("failed", "cancelled")), None)
        if ended is None and len(before) < len(job["after"]):
            ended = {"_id": next(i for i in job["after"] if i not in {d["_id"] for d in before}), "status": "deleted"}
        if ended is not None:
            reason = f"job {ended['_id']} it comes after is {ended['status']}"
            if ended.get("error"):
                reason += f" ({str(ended['error'])[:200]})"
            changed = self.collection.update_one(
                {"_id": job["_id"], "status": "queued"},
                {"$set": {"status": "failed", "error": f"DependencyFailed: {reason}", "failure_class": "dependency",
                          "attempts_left": 0, "updated": utc_now()}})
            if changed.modified_count:
                self.ready.remove(job["_id"])
            return True
        return any(dep["status"] != "done" for dep in before)

    def _try_claim(self, job_id: ObjectId, worker: str, lease_s: float, allow_code: bool, now: datetime) -> dict | None:
        job = self.collection.find_one({"_id": job_id})
        if not self._claimable(job_id, job, allow_code, now):
            return None
        number = int(job.get("claims", 0)) + 1
        try:
            self._scope.collection(CLAIMS).insert_one(
                {"_id": f"{job_id}:{number}", "job": job_id, "worker": worker, "at": now}
            )
        except DuplicateKeyError:
            self._skip_stale_claim(job_id, number, now)
            return None
        if number > 1 and self.settle_completed(job_id):  # only a claimed job can have been completed
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
        change: dict[str, Any] = {"$set": fields, "$inc": {"attempts": 1, "attempts_left": -1}}
        if job["status"] == "running":  # its worker stopped sending heartbeats: that attempt is recorded as lost
            change["$set"]["failure_class"] = LOST
            change["$push"] = {"failures": {"error": f"worker {job.get('worker')} lost (lease expired)",
                                            "traceback": None, "worker": job.get("worker"), "at": now,
                                            "failure_class": LOST}}
        # The marker makes us the only claimer of number `number`; the write names only `_id` (see _owned_update).
        self.collection.update_one({"_id": job_id}, change)
        job.update(fields, attempts=job.get("attempts", 0) + 1, attempts_left=job["attempts_left"] - 1)
        self.ready.hold(job_id, lease_expires, job["attempts_left"])
        return job
