"""Run search that sorts and limits: `runs(query, sort=[("accuracy", -1)], limit=10)`.

A sort on one summary metric with a limit, over the whole study or equalities on indexed fields, is read
from the run table (run_table.py): filter (status, tags, hyper-parameters) and rank its rows in numpy, then
fetch runs in the ranked order a few at a time and check each against its document (the query, and the
metric's value) until `limit` are found. Rows in flight are fetched whatever their rank, and a row whose
document disagrees is placed by the document's value,
so the answer equals MongoDB's `find(query).sort(field, direction, "_id", 1).limit(limit)`. Anything else is
sorted by the server (FerretDB or MongoDB) or, for answers the run index gives, here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from bson import ObjectId

from ...errors import InvalidInput
from ..documents.by_id import at_once, find_by_ids
from ..documents.equality_index import matches
from .row_segments import binary_ids
from .run_table import keyed

BATCH = 16  # runs fetched (in parallel) per step of the ranked walk
TOP_FIELDS = ("name", "status", "started", "ended", "heartbeat", "job", "device", "host", "pid", "_id")
BEST = "summary.best."
STATUSES = ("running", "finished", "failed", "stopped", "crashed")


def resolve_run_sort(sort: Any) -> list[tuple[str, int]]:
    """`[("accuracy", -1)]` sorts by the summary metric (summary.best.accuracy); dotted names and run fields
    ("started", "hyper_parameters.lr") are used as they are."""
    if sort is None:
        return []
    if isinstance(sort, tuple) and len(sort) == 2 and isinstance(sort[0], str):
        sort = [sort]
    if isinstance(sort, str) or not isinstance(sort, (list, tuple)):
        raise InvalidInput(f"Invalid value for argument `sort`: {sort!r:.80}. Expected [(field, 1 or -1), ...], e.g. "
                           "[('accuracy', -1)].")
    resolved = []
    for item in sort:
        if not (isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], str) and item[0]
                and item[1] in (1, -1) and not isinstance(item[1], bool)):
            raise InvalidInput(f"Invalid sort item {item!r:.80}. Expected (field, 1 or -1), e.g. ('accuracy', -1).")
        field = item[0] if "." in item[0] or item[0] in TOP_FIELDS else BEST + item[0]
        resolved.append((field, int(item[1])))
    return resolved


def sort_value(doc: Mapping[str, Any], field: str) -> Any:
    value: Any = doc
    for part in field.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def mongodb_order(docs: list[dict[str, Any]], sort: list[tuple[str, int]]) -> list[dict[str, Any]]:
    """Sorted as MongoDB sorts numbers, strings and dates (missing and null lowest), ties by `_id`."""
    docs = sorted(docs, key=lambda doc: doc["_id"])
    for field, direction in reversed(sort):  # stable sorts, least significant key first
        docs = sorted(docs, key=lambda doc, field=field: _key(sort_value(doc, field)), reverse=direction == -1)
    return docs


def _key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, 0)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (1, value)
    return (2, str(value)) if isinstance(value, str) else (3, str(value))


def ranked_runs(store: Any, wanted: dict[str, Any] | None, field: str, direction: int,
                limit: int) -> list[dict[str, Any]]:
    """The first `limit` runs of the study matching the equalities `wanted` (None: all) in (field, direction)
    order; `field` is a summary metric (summary.best.<name>). Runs without it sort lowest (MongoDB's order).
    Equalities on status, tags and hyper-parameters are answered by the table's keys, on name and job by the
    run index, read meanwhile."""
    wanted = wanted or {}
    filed = {name: value for name, value in wanted.items() if keyed(name)}
    if len(filed) == len(wanted):
        table = store.table.read(filed)
        keep = table.match
    else:
        table, candidates = at_once(lambda: store.table.read(filed), lambda: store.candidates(
            {name: value for name, value in wanted.items() if name not in filed}))
        keep = table.match & np.isin(table.ids, np.array([run.binary for run in candidates], "S12"))
    ids = table.ids  # S12: numpy drops an id's trailing zero bytes, and compares S12 alike (`binary_ids` restores)
    flying = np.isin(ids, np.array(list(table.inflight), "S12"))
    values = table.column(field[len(BEST):])
    ranked = np.flatnonzero(keep & ~np.isnan(values) & ~flying)
    ranked = ranked[np.lexsort((ids[ranked], values[ranked] * direction))]  # -1: largest first
    missing = np.sort(ids[keep & np.isnan(values) & ~flying])  # every run has a row: these lack the metric
    found = sum(_checked(store, wanted, sorted(table.inflight), None, field), [])  # with a row or not yet
    steps = [(ids[ranked], values[ranked]), (missing, np.full(len(missing), np.nan))]
    accepted: list[dict[str, Any]] = []
    corrected: list[dict[str, Any]] = []
    for step in (steps if direction == -1 else steps[::-1]):
        if len(accepted) >= limit:
            break
        good, changed = _walk(store, wanted, step[0], step[1], field, limit - len(accepted))
        accepted += good
        corrected += changed
    return mongodb_order(found + accepted + corrected, [(field, direction)])[:limit]


def _walk(store: Any, wanted: dict[str, Any], ids: np.ndarray, values: np.ndarray, field: str,
          limit: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Fetch runs in ranked order until `limit` match with the table's value; runs whose document disagrees
    with the table are returned apart (placed by their document's value)."""
    accepted: list[dict[str, Any]] = []
    corrected: list[dict[str, Any]] = []
    start = 0
    while start < len(ids) and len(accepted) < limit:
        size = min(BATCH, limit - len(accepted))  # most ranked runs check out: fetch no more than are missing
        good, changed = _checked(store, wanted, binary_ids(ids[start:start + size]), values[start:start + size], field)
        accepted += good
        corrected += changed
        start += size
    return accepted, corrected


def _checked(store: Any, wanted: dict[str, Any], ids: list[Any], values: np.ndarray | None,
             field: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The runs among `ids` matching the equalities `wanted`, split into those whose value equals the table's
    and the rest (all of them when `values` is None)."""
    object_ids = [ObjectId(x) for x in ids]
    docs = {doc["_id"]: doc for doc in find_by_ids(store.collection, object_ids)}
    good, changed = [], []
    for position, run_id in enumerate(object_ids):
        doc = docs.get(run_id)
        if doc is None or doc.get("study") != store.study:
            continue
        doc = store.settle_doc(doc)
        if not matches(doc, wanted):
            continue
        value = sort_value(doc, field)
        expected = None if values is None else values[position]
        same = expected is not None and (value == expected or (value is None and np.isnan(expected)))
        (good if same else changed).append(doc)
    return good, changed
