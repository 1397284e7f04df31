"""Runs for the lab extension: a page of the runs list, one run in full, and a comparison of several.

Everything goes through the stores' own reads: `run_store.find` (equalities on status, name, tags and
hyper-parameters through the run index; it also settles runs whose process died as `crashed`),
`run_store.resolve` (one run by `_id`), `parameters.find_docs` (a run's versions through the parameter
index) and the run's log index document. The side bar polls only the running runs (one index document and
those runs), and re-reads a page of the list only when that set changes.
"""

from __future__ import annotations

import heapq
from typing import Any

from tensorlab.errors import InvalidInput
from tensorlab.metric_direction import known_direction
from tensorlab.tensordb.documents.by_id import find_by_ids

from .json_values import plain
from .params import BadParameter

SORT_FIELDS = ("started", "ended", "name", "status")
ERROR_CHARS = 4000


def run_row(doc: dict[str, Any]) -> dict[str, Any]:
    """What a list shows of a run: no error text beyond its last line, no architecture."""
    summary = doc.get("summary") or {}
    error = doc.get("error") or ""
    return plain({
        "id": doc["_id"], "name": doc.get("name"), "status": doc.get("status"), "started": doc.get("started"),
        "ended": doc.get("ended"), "heartbeat": doc.get("heartbeat"), "host": doc.get("host"),
        "device": doc.get("device"), "job": doc.get("job"), "progress": doc.get("progress") or {},
        "epochs_planned": doc.get("epochs_planned"), "hyper_parameters": doc.get("hyper_parameters") or {},
        "tags": doc.get("tags") or {}, "best": summary.get("best") or {},
        "error": error.strip().splitlines()[-1][:300] if error.strip() else None,
    })


def _sort_key(field: str) -> Any:
    """Missing values last whichever the order: (is missing, value as comparable)."""
    def key(doc: dict[str, Any]) -> tuple[int, int, Any]:
        if field.startswith("best."):
            value = ((doc.get("summary") or {}).get("best") or {}).get(field[5:])
        elif field.startswith("hp."):
            value = (doc.get("hyper_parameters") or {}).get(field[3:])
        else:
            value = doc.get(field)
        if value is None:
            return (1, 0, 0)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return (0, 0, value)
        return (0, 1, str(value))
    return key


def _newest(db: Any, offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
    """A page of the study's runs, newest first, and how many there are: the ids come from the run
    table (8 pairs of documents read by `_id`), and only the runs near the page are fetched, each settled as
    the store would (a `running` run whose process died becomes `crashed`). A server that pushes down only `_id`
    (FerretDB) would otherwise decode every run of the study for each page.
    A run's id holds the second it was made (just before `started`), but ids made in one second by different
    processes are ordered by their random bytes, not by time: every run from the second before the page's
    last one on is read, and the page cut from them in `started` order."""
    store = db.run_store
    ids = store.ids()
    first = heapq.nlargest(offset + limit, ids, key=lambda run_id: run_id.binary)  # bytes compare in C
    if not first:
        return [], len(ids)
    since = first[-1].binary[:4]  # the page's oldest second (big-endian), then one second before it
    since = (int.from_bytes(since, "big") - 1).to_bytes(4, "big") if since != b"\0\0\0\0" else since
    near = [run_id for run_id in ids if run_id.binary[:4] >= since]
    docs = [store.settle_doc(doc) for doc in find_by_ids(store.collection, near) if doc.get("study") == db.study]
    docs.sort(key=lambda doc: (doc["started"], str(doc["_id"])), reverse=True)
    return docs[offset:offset + limit], len(ids)


def _find(db: Any, query: dict[str, Any] | None, sort: str, descending: bool,
          want: int) -> tuple[list[dict[str, Any]], int | None]:
    """Runs in the order asked, at least `want` of them when there are; and how many match, when that was known
    without extra work (a page read by a limited query does not know)."""
    if sort.startswith("best."):  # the store ranks summary metrics from its run table
        return list(db.run_store.find(query, sort=[(sort[5:], -1 if descending else 1)], limit=want)), None
    docs = db.run_store.find(query)
    key = _sort_key(sort)
    present = sorted((d for d in docs if key(d)[0] == 0), key=key, reverse=descending)
    return present + [d for d in docs if key(d)[0] == 1], len(docs)


def runs_page(db: Any, query: dict[str, Any] | None, *, sort: str = "started", descending: bool = True,
              offset: int = 0, limit: int = 50) -> dict[str, Any]:
    """A page of runs (newest first by default), whether more follow, and how many match when known."""
    try:
        if query is None and sort == "started" and descending:
            page, total = _newest(db, offset, limit)
            more = offset + limit < total
        else:
            docs, total = _find(db, query, sort, descending, offset + limit + 1)
            page, more = docs[offset: offset + limit], len(docs) > offset + limit
    except InvalidInput as error:
        raise BadParameter("filter", query, f"a query the runs store accepts ({error})") from None
    return {"total": total, "more": more, "offset": offset, "limit": limit, "runs": [run_row(doc) for doc in page]}


def run_query(status: str | None, name: str | None, extra: dict[str, Any] | None) -> dict[str, Any] | None:
    query: dict[str, Any] = dict(extra or {})
    if status:
        query["status"] = status
    if name:
        query["name"] = name
    return query or None


def _versions(db: Any, run_id: Any) -> list[dict[str, Any]]:
    docs = db.parameters.find_docs({"run": run_id}, sort=[("version", 1)])
    return [plain({"id": d["_id"], "version": d.get("version"), "epoch": d.get("epoch"), "step": d.get("step"),
                   "created": d.get("created"), "tags": d.get("tags") or {}, "metrics": d.get("metrics") or {},
                   "bytes": sum(a.get("nbytes", 0) for a in d.get("arrays") or [])}) for d in docs]


def run_detail(db: Any, run_id: str) -> dict[str, Any]:
    """One run in full: its document (error text whole), parameter versions, log streams."""
    doc = db.run_store.resolve(run_id)
    index = db.logbook.reader.index(doc["_id"]) or {}
    streams = [{"kind": s["kind"], "writer": s["writer"], "rows": s["rows"], "buckets": s["buckets"]}
               for s in (index.get("streams") or {}).values()]
    return {
        "run": run_row(doc),
        "error": (doc.get("error") or "")[-ERROR_CHARS:] or None,
        "summary": plain(doc.get("summary") or {}),
        "system": plain(doc.get("system") or {}),
        "details": plain({k: doc.get(k) for k in ("pid", "architecture", "data_query", "forked_from", "classes",
                                                  "python_version", "keras_version", "backend")
                          if doc.get(k) is not None}),
        "parameters": _versions(db, doc["_id"]),
        "streams": sorted(streams, key=lambda s: (s["kind"], s["writer"])),
    }


def _metric_value(doc: dict[str, Any], metric: str) -> Any:
    best = ((doc.get("summary") or {}).get("best") or {}).get(metric)
    return best if isinstance(best, (int, float)) and not isinstance(best, bool) else None


def comparison(db: Any, run_ids: list[str], metric: str, mode: str | None) -> dict[str, Any]:
    """Several runs side by side: hyper-parameters, the chosen metric's best value, the best run marked."""
    direction = mode or known_direction(metric)
    if direction is None:
        raise BadParameter("mode", mode, f"'max' or 'min': which way {metric!r} improves is not known")
    docs = [db.run_store.resolve(run_id) for run_id in run_ids]
    values = [(_metric_value(doc, metric), index) for index, doc in enumerate(docs)]
    present = [(value, index) for value, index in values if value is not None]
    best = None
    if present:
        best = (max if direction == "max" else min)(present)[1]
    hyper = sorted({name for doc in docs for name in (doc.get("hyper_parameters") or {})})
    metrics = sorted({name for doc in docs for name in ((doc.get("summary") or {}).get("best") or {})})
    return {"metric": metric, "mode": direction, "hyper_parameters": hyper, "metrics": metrics,
            "best": str(docs[best]["_id"]) if best is not None else None,
            "runs": [{**run_row(doc), "value": plain(_metric_value(doc, metric))} for doc in docs]}
