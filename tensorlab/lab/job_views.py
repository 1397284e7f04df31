"""The job queue for the lab extension: what the jobs tab lists, the workers behind it, and its three actions.

The list is `jobs.recent(limit)`: every queued or running job and the `limit` newest others, read through the
ready set and the recent-jobs list, so a poll costs what it shows however long the queue's history. Workers
are not registered anywhere: a worker is what claims jobs, so the list names the workers of the jobs shown
(running ones first), with what each is doing and when it last beat.
"""

from __future__ import annotations

from typing import Any

from .json_values import plain

TRACEBACK_CHARS = 8000
UNFINISHED = ("queued", "running")


def _last_line(text: str | None) -> str | None:
    text = (text or "").strip()
    return text.splitlines()[-1][:300] if text else None


def job_row(job: dict[str, Any]) -> dict[str, Any]:
    failed = job.get("status") == "failed"
    return plain({
        "id": job["_id"], "status": job.get("status"), "priority": job.get("priority"), "queue": job.get("queue"),
        "created": job.get("created"), "updated": job.get("updated"), "worker": job.get("worker"),
        "attempts": job.get("attempts"), "max_attempts": job.get("max_attempts"),
        "attempts_left": job.get("attempts_left"), "progress": job.get("progress") or {},
        "epochs": job.get("epochs"), "batch_size": job.get("batch_size"), "run": job.get("run"),
        "hyper_parameters": job.get("hyper_parameters") or {}, "tags": job.get("tags") or {},
        "sweep": job.get("sweep"), "after": job.get("after") or [], "lease_expires": job.get("lease_expires"),
        "heartbeat": job.get("heartbeat"), "failure_class": job.get("failure_class"),
        "error": _last_line(job.get("error")),
        "traceback": (job.get("traceback") or job.get("error") or "")[-TRACEBACK_CHARS:] if failed else None,
        "requires_code": job.get("requires_code"),
    })


def workers_of(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per worker named by the jobs: its running job (if any), jobs seen, when it was last heard of."""
    workers: dict[str, dict[str, Any]] = {}
    for job in jobs:
        name = job.get("worker")
        if not name:
            continue
        entry = workers.setdefault(name, {"name": name, "running": None, "jobs": 0, "last_seen": None})
        entry["jobs"] += 1
        seen = job.get("heartbeat") or job.get("updated")
        if seen is not None and (entry["last_seen"] is None or seen > entry["last_seen"]):
            entry["last_seen"] = seen
        if job.get("status") == "running":
            entry["running"] = job["_id"]
    return sorted((plain(w) for w in workers.values()), key=lambda w: (w["running"] is None, w["name"]))


def _order(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Running first, then queued as a worker would claim them (priority, then age), then the rest newest first."""
    running = [job for job in jobs if job.get("status") == "running"]
    queued = sorted((job for job in jobs if job.get("status") == "queued"),
                    key=lambda job: (-(job.get("priority") or 0), str(job.get("created"))))
    ended = sorted((job for job in jobs if job.get("status") not in UNFINISHED),
                   key=lambda job: str(job.get("updated") or job.get("created")), reverse=True)
    return running + queued + ended


def jobs_list(db: Any, status: str | None, limit: int) -> dict[str, Any]:
    """Every queued and running job and the `limit` newest others (`jobs.recent`), counts by status, workers."""
    jobs = db.jobs.recent(limit)
    counts: dict[str, int] = {}
    for job in jobs:
        counts[job["status"]] = counts.get(job["status"], 0) + 1
    shown = [job for job in _order(jobs) if status is None or job.get("status") == status]
    return {"counts": counts, "jobs": [job_row(job) for job in shown], "workers": workers_of(jobs)}


def act(db: Any, job_id: str, action: str, priority: float | None = None) -> dict[str, Any]:
    """cancel, requeue or priority; JobError (wrong state) and NotFound go back to the caller."""
    if action == "cancel":
        job = db.jobs.cancel(job_id)
    elif action == "requeue":
        job = db.jobs.requeue(job_id)
    else:
        job = db.jobs.set_priority(job_id, priority)
    return {"job": job_row(job)}
