"""The job queue: `JobQueue` (push, leases, outcomes), its claims and its ready set of unfinished jobs, the
recent-jobs list, and what pushes jobs on its own: `triggers` and the successive-halving sweeps' `halving_store`.

May import: documents/.
"""

from .queue import STATUSES, JobQueue

__all__ = ["STATUSES", "JobQueue"]
