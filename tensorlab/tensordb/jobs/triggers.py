"""Triggers: push a job when matching data or parameters arrive, exactly once per triggering document.

A trigger (`triggers` collection) names a kind (`data`: committed imports; `parameters`: complete
versions), a query the new document must match, and a job template. `fire()` (workers call it as they
poll) reads the study's documents after the trigger's watermark, in `_id` order, and stops at the first
one still being written (an import not yet committed, a version not yet complete), so a document that
finishes late is never skipped. Exactly once, under any number of concurrent firers and crashes: each
job's `_id` is derived from (trigger, document), so a second push of the same job is refused by the
server's unique `_id`, and the watermark only moves forward (`$max`) after the jobs exist.
Polling costs the new documents since the watermark (on MongoDB an index lookup on `_id`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bson import ObjectId

from ...clock import utc_now
from ...errors import InvalidInput
from ...validation import check_query, clean_tags
from ..documents.by_id import derived_id
from ..documents.query_text import query_from_text, query_to_text
from ..documents.scope import Scope

TRIGGERS = "triggers"
KINDS = {"data": ("sample_imports", "committed"), "parameters": ("parameters", "complete")}
PLACEHOLDER = "$trigger"  # in a job template: replaced by the triggering document's id
TEMPLATE_FIELDS = frozenset({"architecture", "code", "data", "validation_data", "hyper_parameters", "epochs",
                             "batch_size", "priority", "tags", "max_attempts", "warm_start", "queue", "sweep",
                             "oom_halve_batch", "after", "seed"})


def job_id_for(trigger_id: ObjectId, document_id: ObjectId) -> ObjectId:
    """The same id for the same (trigger, document) in every process: the document's time, then a hash."""
    return derived_id(f"{trigger_id}:{document_id}", prefix=document_id.binary[:4])


def _substitute(value: Any, document_id: ObjectId) -> Any:
    if value == PLACEHOLDER:
        return document_id
    if isinstance(value, Mapping):
        return {key: _substitute(item, document_id) for key, item in value.items()}
    if isinstance(value, list):
        return [_substitute(item, document_id) for item in value]
    return value


class TriggerStore:
    def __init__(self, scope: Scope) -> None:
        self._scope = scope

    @property
    def collection(self) -> Any:
        return self._scope.collection(TRIGGERS)

    def add(self, kind: str, query: Any, job: Mapping[str, Any], name: str) -> ObjectId:
        """Register a trigger; documents already there do not fire it (its watermark is now)."""
        if kind not in KINDS:
            raise InvalidInput(f"Invalid trigger kind {kind!r}. Expected one of {sorted(KINDS)}.")
        if not isinstance(name, str) or not name:
            raise InvalidInput(f"A trigger needs a name (a non-empty string); got {name!r}.")
        if not isinstance(job, Mapping):
            raise InvalidInput("`job` is the template of the job to push: push_job's arguments as a dict.")
        unknown = sorted(set(job) - TEMPLATE_FIELDS)
        if unknown:
            raise InvalidInput(f"Job template fields {unknown} are not push_job arguments; use "
                               f"{sorted(TEMPLATE_FIELDS)}.")
        doc = {"_id": ObjectId(), "study": self._scope.study, "name": name, "kind": kind,
               "query": query_to_text(check_query(query)), "job": query_to_text(dict(job)), "watermark": ObjectId(),
               "created": utc_now()}
        self.collection.insert_one(doc)
        return doc["_id"]

    def find(self) -> list[dict[str, Any]]:
        return list(self.collection.find({"study": self._scope.study}))

    def arrivals(self, trigger: Mapping[str, Any]) -> tuple[list[ObjectId], ObjectId]:
        """Finished documents after the watermark, in order, up to the first one still being written."""
        collection, done_field = KINDS[trigger["kind"]]
        ready, watermark = [], trigger["watermark"]
        for doc in self._scope.collection(collection).find(
                {"study": self._scope.study, "_id": {"$gt": trigger["watermark"]}}, {"_id": 1, done_field: 1},
                sort=[("_id", 1)]):
            if not doc.get(done_field):
                break
            ready.append(doc["_id"])
            watermark = doc["_id"]
        return ready, watermark

    def job_for(self, trigger: Mapping[str, Any], document_id: ObjectId) -> dict[str, Any]:
        """The template with `$trigger` replaced, tagged with the trigger and the document."""
        job = _substitute(query_from_text(trigger["job"]), document_id)  # stored as text: its queries hold dots
        job["tags"] = {**clean_tags(job.get("tags")), "trigger": trigger["name"], "triggered_by": str(document_id)}
        job["job_id"] = job_id_for(trigger["_id"], document_id)
        return job

    def advance(self, trigger_id: ObjectId, watermark: ObjectId) -> None:
        self.collection.update_one({"_id": trigger_id}, {"$max": {"watermark": watermark}})

    @staticmethod
    def query_of(trigger: Mapping[str, Any]) -> dict[str, Any]:
        return query_from_text(trigger["query"])
