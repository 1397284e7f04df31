"""Model parameters, every version: raw arrays (dtype + shape) in content-addressed GridFS blobs.

Save order makes deletes safe: the version document (marked incomplete) is written before its blobs
are uploaded, so a concurrent delete's garbage collection sees the reference and keeps the blob.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import numpy as np
from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.errors import ConnectionFailure

from ...errors import InvalidInput, NotFound
from ...metric_direction import metric_direction
from ...validation import check_query, clean_tags, split_metrics
from ...validation_values import INT64_MAX, short
from ..documents.batched_delete import delete_matching
from ..documents.by_id import id_key
from ..documents.equality_index import EqualityIndex
from ..documents.scope import Scope
from ..payloads import codec
from ..payloads.blobstore import BlobStore
from ..server.retry import DEFAULT_DEADLINE_S, through_outages

PARAMETERS = "parameters"
PARAMETER_FIELDS = ("_id", "study", "tags", "metrics", "run", "architecture", "epoch", "step", "version", "created",
                    "complete", "arrays", "non_finite")
PARAMETER_INDEX = "parameter_index"
COUNTERS = "counters"
_TOP_LEVEL_FIELDS = {"_id", "created", "version", "epoch", "step", "run", "study", "architecture"}


def _checked(query: Any) -> dict[str, Any]:
    """A parameter query; a bare name such as {'acc': ...} is refused with 'tags.acc'/'metrics.acc' as the fix."""
    return check_query(query, fields=PARAMETER_FIELDS, nested=("tags", "metrics"))


def weights_of(weights: Any) -> tuple[list[str], list[np.ndarray]]:
    """Names and arrays from a Keras model or a list of arrays."""
    if hasattr(weights, "get_weights") and hasattr(weights, "weights"):
        return [getattr(v, "path", getattr(v, "name", f"w{i}")) for i, v in enumerate(weights.weights)], \
            [np.asarray(a) for a in weights.get_weights()]
    if isinstance(weights, np.ndarray) or not isinstance(weights, Sequence) or isinstance(weights, str):
        raise InvalidInput(f"`weights` must be a Keras model or a list of arrays; got {type(weights).__name__}.")
    arrays = [codec.as_plain_array(w, f"weights[{i}]") for i, w in enumerate(weights)]
    return [f"w{i}" for i in range(len(arrays))], arrays


def resolve_sort(sort: Any) -> list[tuple[str, int]]:
    """`[("val_accuracy", -1)]` sorts by the metric; dotted or top-level field names are used as they are."""
    if sort is None:
        return [("created", -1), ("_id", -1)]
    if isinstance(sort, tuple) and len(sort) == 2 and isinstance(sort[0], str):
        sort = [sort]
    resolved = []
    for item in sort:
        if not (isinstance(item, (tuple, list)) and len(item) == 2 and item[1] in (1, -1)):
            raise InvalidInput(f"Invalid sort item {item!r}. Expected (field, 1 or -1), e.g. ('val_accuracy', -1).")
        key = item[0] if "." in item[0] or item[0] in _TOP_LEVEL_FIELDS else f"metrics.{item[0]}"
        resolved.append((key, item[1]))
    return resolved + [("_id", -1)]


def _sort_key(doc: Mapping[str, Any], field: str) -> tuple[int, Any]:
    """MongoDB's order for one field, enough for numbers, strings, dates and ids: missing/null first."""
    value: Any = doc
    for part in field.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return (0, 0) if value is None else (1, value)


def sorted_like_mongodb(docs: list[dict[str, Any]], sort: list[tuple[str, int]]) -> list[dict[str, Any]]:
    for field, direction in reversed(sort):  # stable sorts, least significant key first
        docs = sorted(docs, key=lambda doc, field=field: _sort_key(doc, field), reverse=direction == -1)
    return docs


SAVE_WRITE = "parameters"
COLLECT_EVERY_S = 30.0


def _check_reference(value: Any, name: str) -> None:
    """`run` and `architecture` name other documents: an id, a name, or nothing."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, (str, int, ObjectId))
                              or (isinstance(value, int) and abs(value) > INT64_MAX)):
        raise InvalidInput(f"Invalid value for argument `{name}`: a {type(value).__name__} ({short(value)}). Pass the "
                           f"{name}'s id (ObjectId) or name (str), or None.")


def _tags_allowing_non_finite(tags: Any) -> dict[str, Any]:
    """The tags as clean_tags checks them (before anything is written), except that NaN/inf numbers pass: they
    become flagged metrics in `save`."""
    if not isinstance(tags, Mapping):
        return clean_tags(tags)  # None, or an error naming the type
    clean_tags({k: None if isinstance(v, (float, np.floating)) and not np.isfinite(v) else v for k, v in tags.items()})
    return dict(tags)


def _whole_or_none(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, (bool, float)) or not isinstance(value, (int, np.integer)) or not 0 <= value <= INT64_MAX:
        raise InvalidInput(f"Invalid value for argument `{name}`: {value!r}. Expected a whole number >= 0 or None.")
    return int(value)


class ParameterStore:
    def __init__(self, scope: Scope, blobs: BlobStore) -> None:
        self._scope = scope
        self._blobs = blobs
        self.index = EqualityIndex(scope, PARAMETER_INDEX, ("run", "architecture"), ("tags.",))
        self._collect_at = 0.0

    @property
    def collection(self) -> Any:
        return self._scope.collection(PARAMETERS)

    def _next_version(self, run: Any) -> int:
        counter = self._scope.collection(COUNTERS).find_one_and_update(
            {"_id": id_key("parameters", self._scope.study, run)}, {"$inc": {"seq": 1}},
            upsert=True, return_document=ReturnDocument.AFTER)
        return int(counter["seq"])

    def save(self, weights: Any, tags: Mapping[str, Any] | None = None, *, run: Any = None,
             epoch: int | None = None, step: int | None = None, metrics: Mapping[str, Any] | None = None,
             architecture: Any = None, deadline_s: float = DEFAULT_DEADLINE_S) -> Any:
        """Store one parameter version; numeric tags double as metrics for `sort`. Returns its id.

        A server that restarts or stalls mid-save is waited for (up to `deadline_s`, server/retry.py); each failed
        attempt is removed before the next, and an attempt that did complete (its reply was lost) is the answer."""
        _check_reference(run, "run")
        _check_reference(architecture, "architecture")
        epoch, step = _whole_or_none(epoch, "epoch"), _whole_or_none(step, "step")
        names, arrays = weights_of(weights)
        tags = _tags_allowing_non_finite(tags)
        numeric_tags = {k: v for k, v in tags.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        values, non_finite = split_metrics({**numeric_tags, **(metrics or {})})
        tags = clean_tags({k: (None if k in non_finite else v) for k, v in tags.items()})
        digests = [codec.content_hash(array) for array in arrays]
        base = {"study": self._scope.study, "tags": tags, "run": run, "epoch": epoch, "step": step,
                "metrics": values, "non_finite": non_finite, "architecture": architecture,
                "arrays": [{"name": n, "dtype": a.dtype.str, "shape": list(a.shape), "blob": d, "nbytes": int(a.nbytes)}
                           for n, a, d in zip(names, arrays, digests, strict=False)]}
        failed: list[tuple[Any, Any]] = []  # (version id, pending record) of attempts a dropped connection ended

        def attempt() -> Any:
            for version_id, _record in failed:
                if (self.collection.find_one({"_id": version_id}, {"complete": 1}) or {}).get("complete"):
                    return version_id  # it did complete; only the reply was lost
            doc = {"_id": ObjectId(), **base, "version": self._next_version(run),
                   "created": datetime.now(timezone.utc), "complete": False}
            return self._store(doc, arrays, digests, failed)

        def clean_failed() -> None:
            for version_id, record in list(failed):
                if not (self.collection.find_one({"_id": version_id}, {"complete": 1}) or {}).get("complete"):
                    self.discard_incomplete(version_id, digests, record)
                    self._blobs.pending.end(record)
                    failed.remove((version_id, record))

        return through_outages(attempt, f"save parameters (run {run!r}, epoch {epoch})", deadline_s, clean_failed)

    def _store(self, doc: dict[str, Any], arrays: list[np.ndarray], digests: list[str],
               failed: list[tuple[Any, Any]]) -> Any:
        """One attempt: the version (incomplete), its payloads, then `complete` (what makes it visible)."""
        self.index.ensure_built(self.collection)
        if time.monotonic() >= self._collect_at:  # what killed saves left: at once, then every so often
            self.collect_dead_saves()
            self._collect_at = time.monotonic() + COLLECT_EVERY_S
        record = self._blobs.pending.begin(SAVE_WRITE, version=doc["_id"], blobs=digests)  # found if we are killed
        try:
            self.index.add(doc["_id"], self.index.entries_of(doc))  # first: a stale entry is harmless
            self.collection.insert_one(doc)
            for array, digest in zip(arrays, digests, strict=False):
                self._blobs.put_array(array, digest, covered=True)
            self.collection.update_one({"_id": doc["_id"]}, {"$set": {"complete": True}})
        except ConnectionFailure:
            failed.append((doc["_id"], record))  # cleaned once the server answers again (save's retry)
            raise
        except BaseException:
            self.discard_incomplete(doc["_id"], digests, record)
            self._blobs.pending.end(record)
            raise
        try:
            self._blobs.pending.end(record)
        except ConnectionFailure:
            pass  # the version is complete; the record is dropped by the next collection
        return doc["_id"]

    def collect_dead_saves(self) -> int:
        """Remove what saves killed half-way left (an incomplete version, its payloads); returns how many."""
        removed = self._blobs.collect_dead_writes()
        return removed + self._blobs.pending.collect_dead(SAVE_WRITE, lambda record: self.discard_incomplete(
            record["version"], record.get("blobs") or [], record["_id"]))

    def discard_incomplete(self, version_id: Any, digests: list[str] | None = None, record: Any = None) -> None:
        """Remove a version that never completed and every payload of it nothing else names, whole or half
        written. Safe to repeat: a cleaner killed half-way leaves the record for the next pass."""
        doc = self.collection.find_one({"_id": version_id})
        if doc is not None and doc.get("complete"):
            return
        if doc is not None:
            digests = [entry["blob"] for entry in doc["arrays"]]
            self.collection.delete_one({"_id": version_id})
            self.index.remove(version_id, self.index.entries_of(doc))
        digests = list(set(digests or []))
        self._blobs.collect_garbage(digests, self._is_referenced)
        writing = {digest for other in self._blobs.pending.live({"kind": SAVE_WRITE, "blobs": {"$in": digests}})
                   if other["_id"] != record for digest in other.get("blobs") or []}
        for digest in digests:  # a payload killed mid-write has no document, so collect_garbage cannot see it
            if digest not in writing and not self._is_referenced(digest):
                self._blobs.remove_leftovers(digest)

    def _is_referenced(self, digest: str) -> bool:
        return self.collection.count_documents({"arrays.blob": digest}, limit=1) > 0

    def _query(self, query: Any) -> dict[str, Any]:
        return {"$and": [self._scope.scoped(_checked(query)), {"complete": True}]}

    def _matching(self, query: Any, sort: Any, with_metric: str | None = None,
                  first: bool = False) -> list[dict[str, Any]]:
        """Complete versions matching `query` (and holding metric `with_metric`), sorted; through the parameter
        index when it can."""
        order = resolve_sort(sort)
        found = self.index.lookup(self.collection, self._scope.scoped(_checked(query)))
        if found is None:
            has_metric = [{f"metrics.{with_metric}": {"$exists": True}}] if with_metric else []
            cursor = self.collection.find({"$and": [self._query(query), *has_metric]}, sort=order,
                                          limit=1 if first else 0)
            return list(cursor)
        found = [doc for doc in found if doc.get("complete")
                 and (with_metric is None or with_metric in (doc.get("metrics") or {}))]
        return sorted_like_mongodb(found, order)

    def find_doc(self, query: Any = None, sort: Any = None) -> dict[str, Any]:
        docs = self._matching(query, sort, first=True)
        if not docs:
            raise NotFound(f"No parameters match {query!r} in study {self._scope.study!r}.")
        return docs[0]

    def load(self, doc: Mapping[str, Any]) -> list[np.ndarray]:
        return [self._blobs.get_array(entry["blob"]) for entry in doc["arrays"]]

    def find(self, query: Any = None, sort: Any = None) -> list[np.ndarray]:
        """Arrays of the first version by `sort` (default: the newest)."""
        return self.load(self.find_doc(query, sort))

    def find_docs(self, query: Any = None, sort: Any = None) -> list[dict[str, Any]]:
        return self._matching(query, sort)

    def find_all(self, query: Any = None, sort: Any = None) -> list[list[np.ndarray]]:
        return [self.load(doc) for doc in self.find_docs(query, sort)]

    def best(self, query: Any = None, metric: str = "val_accuracy", mode: str = "auto") -> dict[str, Any]:
        """The version with the best `metric`; 'auto' asks the metric which way is better (val_loss: lowest)."""
        mode = metric_direction(metric, mode)
        docs = self._matching(query, [(metric, -1 if mode == "max" else 1)], with_metric=metric, first=True)
        if not docs:
            raise NotFound(f"No parameters match {query!r} with metric {metric!r} in study {self._scope.study!r}.")
        return docs[0]

    def record_evaluation(self, version_id: Any, metrics: Mapping[str, Any], tags: Mapping[str, Any]) -> None:
        """Add an evaluator's scores (as metrics, so `best()` can sort by them) and tags to one version."""
        values, non_finite = split_metrics(metrics)
        fields = {**{f"metrics.{k}": v for k, v in values.items()},
                  **{f"tags.{k}": v for k, v in clean_tags(tags).items()},
                  **{f"non_finite.{k}": v for k, v in non_finite.items()}}
        self.index.add(version_id, self.index.entries_of({"tags": clean_tags(tags)}))
        if self.collection.update_one({"_id": version_id}, {"$set": fields}).matched_count == 0:
            raise NotFound(f"No parameter version {version_id!r} in study {self._scope.study!r}.")

    def delete(self, query: Any) -> int:
        """Delete matching versions and every blob no remaining version refers to."""
        if query is None:
            raise InvalidInput("delete_parameters needs a query naming what to delete, e.g. {'run': 'r1'}; "
                               "pass {} to delete every parameter version of the study.")
        scoped = self._scope.scoped(_checked(query))
        docs = list(self.collection.find(scoped, {"arrays.blob": 1, "run": 1, "architecture": 1, "tags": 1}))
        if not docs:
            return 0
        delete_matching(self.collection, {"_id": {"$in": [doc["_id"] for doc in docs]}})
        for doc in docs:
            self.index.remove(doc["_id"], self.index.entries_of(doc))
        self._blobs.collect_garbage([entry["blob"] for doc in docs for entry in doc["arrays"]], self._is_referenced)
        return len(docs)
