"""A job document's fields as callers give them: ids, numbers, leases and stored values, checked before any write."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bson import ObjectId

from ...errors import InvalidInput
from ...validation import check_query
from ...validation_values import check_number, clean_value, short
from ..documents.query_text import query_to_text

STATUSES = ("queued", "running", "done", "failed", "cancelled")
MAX_LEASE_S = 365 * 24 * 3600.0


def as_id(job: Any) -> ObjectId:
    if isinstance(job, Mapping):
        job = job.get("_id")
    if isinstance(job, ObjectId):
        return job
    if isinstance(job, str) and ObjectId.is_valid(job):
        return ObjectId(job)
    raise InvalidInput(f"A job is named by its id (ObjectId or 24-hex string); got {short(job)}.")


def stored_value(value: Any, name: str) -> Any:
    """A value stored in a job document as BSON stores it (NaN/inf refused: `complete` flags them first)."""
    return clean_value(value, name, extra=(bytes,), what="JSON-like values, datetimes, ids and bytes")


def oldest_first(jobs: list[dict]) -> list[dict]:
    return sorted(jobs, key=lambda job: (job["created"], job["_id"]))


def check_job_numbers(epochs: Any, batch_size: Any, max_attempts: Any, priority: Any) -> None:
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("max_attempts", max_attempts)):
        check_number(value, name, integer=True, minimum=1)
    check_number(priority, "priority")


def check_lease(lease_s: Any) -> float:
    """Seconds > 0, and no more than a year (a lease is renewed by heartbeats; a huge one overflows dates)."""
    return check_number(lease_s, "lease_s", above=0, maximum=MAX_LEASE_S)


def what_to_train(architecture: Any, code: str | None, data: Any, validation_data: Any,
                  source_architecture: bool) -> dict[str, Any]:
    """The model and data fields of a job; queries are kept as JSON text (`$` keys are not valid field names)."""
    return {
        "architecture": query_to_text(architecture) if isinstance(architecture, Mapping) else architecture,
        "code": code,
        "requires_code": code is not None or source_architecture,
        "data_query": query_to_text(check_query(data, "data")) if data is not None else None,
        "validation_query": None if validation_data is None
        else query_to_text(check_query(validation_data, "validation_data")),
    }
