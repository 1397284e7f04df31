"""A job queue in MongoDB: leases, retries with a bound, stored tracebacks; claims live in claims.py.

queued -> running -> done | failed | cancelled. Candidates are read highest priority first, then
oldest; a running job whose lease has expired (its worker died) is a candidate again. Each claim
uses one of `max_attempts`; a job out of attempts whose lease expires is marked failed instead of
being retried forever.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from ...clock import utc_now
from ...errors import InvalidInput, JobError, NotFound
from ...validation import check_query, clean_tags, without_non_finite
from ...validation_values import check_name, check_number, check_seed, clean_document, short
from ..documents.batched_delete import delete_matching
from ..documents.by_id import find_by_ids
from ..documents.equality_index import EqualityIndex
from ..documents.query_text import query_to_text
from ..documents.scope import Scope
from .claims import CLAIMS, JOBS, Claimer, finished
from .job_fields import STATUSES, as_id, check_job_numbers, check_lease, oldest_first, stored_value, what_to_train
from .ready import UNFINISHED, ReadySet
from .recent import RecentJobs

JOB_INDEX = "job_index"
FRESH_JOB_STATE = {"attempts": 0, "claims": 0, "worker": None, "lease_expires": None, "progress": None,
                   "result": None, "error": None, "traceback": None, "run": None}


class JobQueue:
    def __init__(self, scope: Scope) -> None:
        self._scope = scope
        self.ready = ReadySet(scope)
        self._claimer = Claimer(scope, self.ready)
        self.index = EqualityIndex(scope, JOB_INDEX, ("sweep", "queue"), ("tags.",))
        self.recent_jobs = RecentJobs(scope)

    @property
    def collection(self) -> Any:
        return self._scope.collection(JOBS)

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
        source_architecture: bool = False,
        oom_halve_batch: bool = False,
        after: Sequence[Any] = (),
        job_id: ObjectId | None = None,
        seed: int | None = None,  # built and trained under it (None: the worker draws one, the run records it)
        rerun_of: ObjectId | None = None,  # the run this job trains again (tensorlab.reruns.push_rerun)
        check_only: bool = False,
    ) -> Any:
        """Queue a training job; it needs an architecture (a stored one's id or query) or model code.
        `check_only`: validate every argument and return the job document without storing it."""
        if architecture is None and not (isinstance(code, str) and code.strip()):
            raise InvalidInput(
                "A job needs an architecture (a stored architecture's id or query) or model-building "
                "`code`; got neither."
            )
        check_job_numbers(epochs, batch_size, max_attempts, priority)
        check_name(queue, "queue")
        if code is not None and not isinstance(code, str):
            raise InvalidInput(f"Invalid value for argument `code`: {short(code)}. Expected Python source or None.")
        after = self._dependencies(after)
        now = utc_now()
        doc = {
            "_id": job_id or ObjectId(),  # a given id makes the push idempotent (triggers fire exactly once)
            "study": self._scope.study,
            "queue": queue,
            "status": "queued",
            "priority": priority,
            "created": now,
            "updated": now,
            **what_to_train(architecture, code, data, validation_data, source_architecture),
            "hyper_parameters": clean_tags(hyper_parameters, "hyper_parameters"),
            "epochs": epochs,
            "batch_size": batch_size,
            "tags": clean_tags(tags),
            "warm_start": warm_start, "sweep": sweep,
            "seed": check_seed(seed), "rerun_of": rerun_of,
            "oom_halve_batch": bool(oom_halve_batch),  # after out-of-memory, retry at half the batch size
            "after": after,  # claimable once every one of these jobs is done; failed at once if one fails
            "attempts_left": max_attempts,
            "max_attempts": max_attempts,
            **FRESH_JOB_STATE,
        }
        doc = clean_document(doc, "job")  # every field as BSON stores it, checked before the first write
        return doc if check_only else self._insert(doc, idempotent=job_id is not None)

    def _insert(self, doc: dict[str, Any], idempotent: bool) -> ObjectId:
        """Lists first, the job last: a crash in between leaves entries that are later dropped. With a given
        `_id`, a job pushed before (by an earlier attempt or a concurrent caller) is not pushed again."""
        self.ready.ensure_built(self.collection)  # on a new database: while there is nothing to build from
        self.ready.add(doc)
        self.index.ensure_built(self.collection)
        self.index.add(doc["_id"], self.index.entries_of(doc))
        self.recent_jobs.ensure_built(self.collection)
        self.recent_jobs.add(doc["_id"])
        try:
            self.collection.insert_one(doc)
        except DuplicateKeyError:
            if not idempotent:
                raise
            return doc["_id"]
        self._queue_changed()
        return doc["_id"]

    def _dependencies(self, after: Sequence[Any]) -> list[ObjectId]:
        """The jobs a new job waits for, which must exist in this study now (a typo never waits forever)."""
        if isinstance(after, (str, ObjectId, Mapping)):
            after = [after]
        ids = [as_id(job) for job in after]
        found = {doc["_id"] for doc in find_by_ids(self.collection, ids) if doc.get("study") == self._scope.study}
        missing = [str(job_id) for job_id in ids if job_id not in found]
        if missing:
            raise InvalidInput(f"`after` names job(s) {missing} that do not exist in study {self._scope.study!r}.")
        return ids

    def pop(self, worker: str, lease_s: float = 60.0, query: Any = None, allow_code: bool = False) -> dict | None:
        """Claim the best claimable job for `worker` (exactly one worker wins each claim); None when none."""
        if not isinstance(worker, str) or not worker:
            raise InvalidInput(f"`worker` must be a non-empty name; got {short(worker)}.")
        lease_s = check_lease(lease_s)  # before the claim marker is written: a bad lease never strands a job
        base = self._scope.scoped(check_query(query))
        if not allow_code:
            base = {"$and": [base, {"requires_code": False}]}
        self.ready.ensure_built(self.collection)
        return self._claimer.pop(worker, lease_s, base, query_to_text(base), allow_code)

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
        job_id = as_id(job)
        if not checked:
            self._held(job_id, worker)
        return self.collection.find_one_and_update(
            {"_id": job_id},
            {"$set": {**fields, "updated": utc_now()}, **(extra or {})},
            return_document=ReturnDocument.AFTER,
        )

    def heartbeat(self, job: Any, worker: str, lease_s: float = 60.0, progress: Any = None) -> dict:
        """Extend the lease; raises JobError when the job was cancelled or taken over.

        Once `progress` shows an epoch ended during this attempt (a checkpoint was written: the next attempt
        resumes after it), the attempt is refunded: a job whose workers keep dying still advances, and only
        attempts that gained nothing count against `max_attempts`. A failure with an error takes the refund
        back (see `fail`), so a job that raises is still retried at most `max_attempts` times."""
        lease_s = check_lease(lease_s)
        progress = stored_value(without_non_finite(progress, "progress")[0], "progress")  # a NaN loss: null
        current = self._held(job, worker)
        fields: dict[str, Any] = {"lease_expires": utc_now() + timedelta(seconds=lease_s), "heartbeat": utc_now()}
        extra: dict[str, Any] = {}
        epoch = progress.get("epoch") if isinstance(progress, dict) else None
        if progress is not None:
            fields["progress"] = progress
        if isinstance(epoch, int) and current.get("attempt_claim") != current.get("claims"):
            fields.update(attempt_claim=current.get("claims"), attempt_first_epoch=epoch)  # this attempt's start
        elif (isinstance(epoch, int) and epoch > (current.get("attempt_first_epoch") or 0)
              and current.get("refunded_claim") != current.get("claims")):
            fields["refunded_claim"] = current.get("claims")
            extra = {"$inc": {"attempts_left": 1, "refunds": 1}}
        doc = self._owned_update(job, worker, fields, extra, checked=True)
        self.ready.hold(doc["_id"], doc["lease_expires"], doc["attempts_left"])
        return doc

    def complete(self, job: Any, worker: str, result: Any = None) -> dict:
        """Mark done, exactly once: a unique `<job>:done` marker is inserted first, so a worker whose
        lease was taken over cannot complete the job a second time on any server."""
        job_id = as_id(job)
        result, flags = without_non_finite(result, "result")  # NaN/inf become null, listed in `non_finite`
        result = stored_value(result, "result")
        current = self._held(job_id, worker)
        try:
            self._scope.collection(CLAIMS).insert_one(
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
            self._claimer.settle_completed(job_id)
            raise JobError(f"Job {job_id} was already completed by another worker.") from None
        doc = self._owned_update(
            job,
            worker,
            {"status": "done", "result": result, "finished": utc_now(), "lease_expires": None,
             **({"non_finite": flags} if flags else {})},
            checked=True,
        )
        self.ready.remove(job_id)
        return doc

    def fail(self, job: Any, worker: str, error: str, traceback: str | None = None, *,
             failure_class: str | None = None, retry: bool = True, batch_size: int | None = None) -> dict:
        """Record a failure: back to queued while attempts remain (and `retry`), else failed. `failure_class`
        says why (oom, code, data, lost, other); `batch_size` is what a retry uses (halved after an OOM)."""
        for name, text in (("error", error), ("traceback", traceback), ("failure_class", failure_class)):
            if not (text is None and name != "error") and not isinstance(text, str):
                raise InvalidInput(f"Invalid value for argument `{name}`: {short(text)}. Expected text.")
        check_number(batch_size, "batch_size", integer=True, minimum=1, allow_none=True)
        current = self._held(job, worker)
        refunded = current.get("refunded_claim") is not None and current.get("refunded_claim") == current.get("claims")
        attempts_left = current["attempts_left"] - (1 if refunded else 0)  # an error counts, progress or not
        attempts_left = attempts_left if retry else 0  # a code or data error fails the same way every time
        status = "queued" if attempts_left > 0 else "failed"
        retried = {"batch_size": batch_size} if batch_size is not None and status == "queued" else {}
        doc = self._owned_update(
            job,
            worker,
            {
                "status": status,
                "error": error,
                "traceback": traceback,
                "lease_expires": None,
                "worker": None if status == "queued" else worker,
                "attempts_left": attempts_left,
                "refunded_claim": None,
                "failure_class": failure_class,
                **retried,
            },
            {"$push": {"failures": {"error": error, "traceback": traceback, "worker": worker, "at": utc_now(),
                                    "failure_class": failure_class}}},
            checked=True,
        )
        self._sync_ready(doc)
        return doc

    def mark_pruned(self, job: Any) -> None:
        """A finished job whose configuration a successive-halving sweep stopped at this rung."""
        self.collection.update_one({"_id": as_id(job)}, {"$set": {"pruned": True}})

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
        priority = check_number(priority, "priority")  # NaN would close the connection on some servers
        doc = self._transition(job, ("queued", "running"), {"priority": priority})
        self._sync_ready(doc)
        return doc

    def _sync_ready(self, job: dict) -> None:
        """Mirror a job's new state into the ready set; a job that became claimable bumps the version."""
        if finished(job):
            self.ready.remove(job["_id"])
            return
        self.ready.add(job)
        self._queue_changed()

    def _queue_changed(self) -> None:
        self.ready.changed()
        self._claimer.forget_candidates()

    def drop_study(self) -> int:
        """Delete every job of this study, its ready entries and index documents; returns jobs deleted."""
        self.ready.drop_study(self._scope.study)
        self.index.drop_study()
        self.recent_jobs.drop_study()
        return delete_matching(self.collection, {"study": self._scope.study})

    def rebuild_ready_set(self) -> int:
        """Re-create the ready set from the unfinished jobs (a repair after writing job documents by hand)."""
        count = self.ready.rebuild(self.collection)
        self._queue_changed()
        return count

    def _transition(self, job: Any, allowed: tuple[str, ...], fields: dict, extra: dict | None = None) -> dict:
        job_id = as_id(job)
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
        doc = self.collection.find_one({"_id": as_id(job)})
        if doc is None:
            raise NotFound(f"No job {job!r}.")
        return doc

    def find(self, query: Any = None, status: str | None = None) -> list[dict]:
        """Jobs matching `query` (and `status`), oldest first. Equalities on `sweep`, `queue` and `tags.*` go
        through the job index, queued/running jobs through the ready set; anything else reads `jobs`."""
        scoped = self._scope.scoped(check_query(query))
        if status is not None and status not in STATUSES:
            raise InvalidInput(f"Invalid job status {short(status)}. Expected one of {STATUSES}.")
        found = self.index.lookup(self.collection, scoped)
        if found is None and status in UNFINISHED and ReadySet.covers(scoped):
            found = self._unfinished(scoped)
        if found is None:
            return list(self.collection.find({**scoped, **({"status": status} if status else {})},
                                             sort=[("created", 1), ("_id", 1)]))
        return oldest_first([job for job in found if status is None or job["status"] == status])

    def _unfinished(self, scoped: dict[str, Any]) -> list[dict]:
        self.ready.ensure_built(self.collection)
        entries = self.ready.collection.find(scoped, {"_id": 1})
        return find_by_ids(self.collection, (entry["_id"] for entry in entries))

    def recent(self, limit: int = 50, query: Any = None, status: str | None = None) -> list[dict]:
        """What a queue panel shows: every queued or running job and the `limit` newest others, oldest first
        (with a query: the jobs it selects). Costs the jobs it returns, not the queue's history."""
        limit = check_number(limit, "limit", integer=True, minimum=0)
        if status is not None and status not in STATUSES:
            raise InvalidInput(f"Invalid job status {short(status)}. Expected one of {STATUSES}.")
        if query:
            return self.find(query, status)
        self.recent_jobs.ensure_built(self.collection)
        ids = {entry["_id"] for entry in self.ready.collection.find({"study": self._scope.study}, {"_id": 1})}
        ids.update(self.recent_jobs.newest(limit))
        jobs = find_by_ids(self.collection, ids)
        return oldest_first([job for job in jobs if status is None or job["status"] == status])
