"""The job queue: `JobQueue` (push, leases, outcomes), its claims and its ready set of unfinished jobs."""

from .queue import STATUSES, JobQueue

__all__ = ["STATUSES", "JobQueue"]
