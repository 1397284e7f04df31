"""Run documents: one per training run, the record that logs and parameter versions point to."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument

from ...clock import utc_now
from ...errors import InvalidInput, NotFound
from ...validation import check_query, clean_tags, without_non_finite
from ...validation_values import clean_document, short
from ..documents.batched_delete import delete_matching
from ..documents.build_markers import build_once
from ..documents.by_id import find_by_ids, run_together
from ..documents.equality_index import SCAN_ABOVE, EqualityIndex, equalities, matches
from ..documents.query_text import query_to_text
from ..documents.run_liveness import process_gone, this_process
from ..documents.scope import Scope
from .indexed_update import checked_fields, stale, touched
from .row_segments import binary_ids
from .run_search import BEST, mongodb_order, ranked_runs, resolve_run_sort
from .run_table import BUILT, ROW_FIELDS, VERSION, RunTable, keyed

RUNS = "runs"
RUN_INDEX = "run_index"
INDEXED_TOP_FIELDS = ("name", "job")  # in the run index; status, tags and hyper-parameters: in the run table
ENDED_BY_CALLER = ("finished", "failed", "stopped")
REMEMBERED_RUNS = 1000  # runs whose indexed fields a store keeps (the ones it started or changed last)


class RunStore:
    def __init__(self, scope: Scope) -> None:
        self._scope = scope
        self.index = EqualityIndex(scope, RUN_INDEX, INDEXED_TOP_FIELDS, ())
        self.table = RunTable(scope)
        self._table_built = False
        self._written: dict[ObjectId, dict[str, Any]] = {}
        self._written_lock = threading.Lock()

    @property
    def study(self) -> str:
        return self._scope.study

    @property
    def collection(self) -> Any:
        return self._scope.collection(RUNS)

    def start(self, name: str | None = None, *, hyper_parameters: Mapping[str, Any] | None = None,
              architecture: Any = None, data_query: Any = None, tags: Mapping[str, Any] | None = None,
              device: str | None = None, job: Any = None, forked_from: Mapping[str, Any] | None = None,
              **details: Any) -> ObjectId:
        """Create a run in status 'running' and return its id. A name a live run already uses gets a suffix
        (`name-2`, ...) and a warning: two writers never share one name, so `logs(run=name)` is one run."""
        if name is not None and not (isinstance(name, str) and name):
            raise InvalidInput(f"A run name must be a non-empty string; got {name!r}.")
        if VERSION in details:
            raise InvalidInput(f"`{VERSION}` is TensorLab's own run field (it versions the run's search row); "
                               "name your detail differently.")
        now = utc_now()
        run_id = ObjectId()
        doc = {
            "_id": run_id, "study": self._scope.study, "name": name or f"run-{str(run_id)[-6:]}",
            "hyper_parameters": clean_tags(hyper_parameters, "hyper_parameters"), "tags": clean_tags(tags),
            "architecture": architecture, "data_query": query_to_text(data_query), "status": "running",
            **this_process(), "device": device, "job": job, "forked_from": dict(forked_from) if forked_from else None,
            "started": now, "ended": None, "heartbeat": now, "summary": {}, "error": None, VERSION: 0,
            **clean_tags(details, "details"),
        }
        doc = clean_document(doc, "run")  # every field as BSON stores it, before the first write
        self.index.ensure_built(self.collection)
        self._ensure_table()
        # index entries and the table's row first: a crash in between leaves a stale entry or row (checked on
        # read), never an unindexed run. The name's entry, as the write left it, tells whether another run ever had
        # the name: only then are they read. A renamed run is filed under its new name too (the entry of the name
        # asked for then holds one id too many, which costs a reader a lookup, never a wrong answer)
        heads: dict[str, set[Any]] = {}
        run_together([lambda: heads.update(self.index.add(run_id, self.index.entries_of(doc))),
                      lambda: self.table.put(run_id, doc)])
        named = heads.get(self.index.key("name", doc["name"]))
        live = name is not None and named != {run_id} and self.find({"name": name, "status": "running"})
        if live:
            doc["name"] = self._free_name(name, live)
            self.index.add(run_id, {"name": doc["name"]})
        self.collection.insert_one(doc)
        self._remember(run_id, {field: doc.get(field) for field in ("study", *INDEXED_TOP_FIELDS)})
        return run_id

    def _remember(self, run_id: ObjectId, fields: dict[str, Any], only_known: bool = False) -> None:
        """The indexed fields this process last wrote for a run (`only_known`: update a run it remembers), so
        its finish need not read them back. Another process may have changed them since: the stale entry this
        leaves costs a reader a lookup, no more."""
        with self._written_lock:  # runs are updated from several threads at once
            if only_known and run_id not in self._written:
                return
            self._written[run_id] = {**self._written.get(run_id, {}), **fields}
            while len(self._written) > REMEMBERED_RUNS:
                del self._written[next(iter(self._written))]

    def _free_name(self, name: str, live: list[dict[str, Any]]) -> str:
        """The first `name-<n>` no run uses, and a warning naming the live run that holds `name`."""
        number = 2
        while self.find({"name": f"{name}-{number}"}):
            number += 1
        warnings.warn(f"TensorLab: run name {name!r} is in use by a live run (host {live[0].get('host')}, pid "
                      f"{live[0].get('pid')}); this run is named {name}-{number}.", RuntimeWarning, stacklevel=4)
        return f"{name}-{number}"

    def resolve(self, run: Any) -> dict[str, Any]:
        """A run document from its id (ObjectId or hex string) or its name (newest of that name)."""
        if isinstance(run, Mapping) and "_id" in run:
            run = run["_id"]
        if isinstance(run, ObjectId) or (isinstance(run, str) and ObjectId.is_valid(run)):
            doc = self.collection.find_one({"_id": ObjectId(run)})
        elif isinstance(run, str) and run:
            named = self.find({"name": run})
            doc = named[-1] if named else None
        else:
            raise InvalidInput(f"A run is named by its id or name; got {run!r}.")
        if doc is None:
            raise NotFound(f"No run {run!r} in study {self._scope.study!r}; list runs with db.runs().")
        return self._settle(doc)

    def _settle(self, doc: dict[str, Any]) -> dict[str, Any]:
        """A `running` run whose process is gone is marked `crashed` here, by whoever reads it first."""
        if doc.get("status") != "running" or not process_gone(doc):
            return doc
        step = (doc.get("progress") or {}).get("step")
        error = (f"the process ({doc.get('host')}, pid {doc.get('pid')}) ended without closing the run; "
                 f"last heartbeat {doc.get('heartbeat')}, last step {step}")
        self.update(doc["_id"], status="crashed", ended=doc.get("heartbeat") or utc_now(), error=error)
        return {**doc, "status": "crashed", "ended": doc.get("heartbeat"), "error": error}

    def update(self, run_id: ObjectId, **fields: Any) -> None:
        """Set fields of a run; NaN/inf anywhere become None, listed in `non_finite` (path and value)."""
        self._update(run_id, fields)

    def _update(self, run_id: ObjectId, fields: dict[str, Any], old: Mapping[str, Any] | None = None) -> bool:
        """`old`: the run's indexed fields as last known (saves a lookup). False: there is no such run."""
        fields, flags = without_non_finite(checked_fields(fields))
        if flags:
            fields["non_finite"] = flags
        fields = clean_document(fields, "run fields")
        paths = touched(fields, INDEXED_TOP_FIELDS)
        if paths and (old is None or not set(paths) <= set(old)):
            old = self.collection.find_one({"_id": run_id}, dict.fromkeys(paths, 1)) or {}
        before: list[Callable[[], None]] = []  # each must be done before the document is written
        after: list[Callable[[], None]] = []  # each once it is written
        if paths:  # the index follows name and job (a rename, mostly): new entries before the write
            moved = self.index.entries_of({path: fields[path] for path in paths})
            gone = stale(self.index.entries_of({p: old[p] for p in paths if p in (old or {})}), moved)
            before.append(lambda: self.index.add(run_id, moved))
            after.append(lambda: self._take_out(run_id, gone, recheck=paths))
        marks: list[str] = []
        row = any(field in fields for field in ROW_FIELDS)
        if row:  # the table's row is marked in flight until the row the write leaves is put (run_table.py)
            before.append(lambda: marks.append(self.table.mark(run_id)))
        run_together(before)  # index and table are separate documents: their writes need no order between them
        if row:
            doc = self.collection.find_one_and_update({"_id": run_id}, {"$set": fields, "$inc": {VERSION: 1}},
                                                      return_document=ReturnDocument.AFTER)  # no projection: FerretDB
            after.append(lambda: self.table.put(run_id, doc, marks[0]) if doc else self.table.unmark(run_id, marks[0]))
            matched = doc is not None
        else:
            matched = bool(self.collection.update_one({"_id": run_id}, {"$set": fields}).matched_count)
        run_together(after)
        if paths:
            self._remember(run_id, {p: fields[p] for p in paths if p in INDEXED_TOP_FIELDS}, only_known=True)
        if not matched:  # deleted meanwhile (its study dropped): what was filed for it is extra
            with self._written_lock:
                self._written.pop(run_id, None)
        return matched

    def _take_out(self, run_id: ObjectId, gone: dict[str, list[Any]], recheck: list[str]) -> None:
        """Stale entries out, once the document is written. Two processes changing one field at once (x to y
        and y to x) could each take out the other's new entry: so the document is read again and its values
        filed again."""
        if gone:
            self.index.remove(run_id, gone)
        if recheck:
            now = self.collection.find_one({"_id": run_id}, dict.fromkeys(recheck, 1)) or {}
            filed = self.index.entries_of(now)
            if filed:
                self.index.add(run_id, filed)

    def heartbeat(self, run_id: ObjectId, system: Mapping[str, Any] | None = None, **progress: Any) -> None:
        """Keep the run alive; `progress` (epoch, step) and `system` (CPU, memory) replace the last ones."""
        fields: dict[str, Any] = {"heartbeat": utc_now()}
        if progress:
            fields["progress"] = progress
        if system:
            fields["system"] = dict(system)
        self.update(run_id, **fields)

    def finish(self, run_id: ObjectId, status: str = "finished", summary: Mapping[str, Any] | None = None,
               error: str | None = None) -> None:
        if status not in ENDED_BY_CALLER:
            raise InvalidInput(f"Invalid run status {short(status)}. Expected one of {ENDED_BY_CALLER}.")
        if error is not None and not isinstance(error, str):
            raise InvalidInput(f"Invalid value for argument `error`: {short(error)}. Expected text or None.")
        if summary is not None and not isinstance(summary, Mapping):
            raise InvalidInput(f"Invalid value for argument `summary`: {short(summary)}. Expected a dict or None.")
        run_id = ObjectId(run_id) if isinstance(run_id, str) and ObjectId.is_valid(run_id) else run_id
        with self._written_lock:
            found = self._written.get(run_id) if isinstance(run_id, ObjectId) else None
        if found is None and isinstance(run_id, ObjectId):
            found = self.collection.find_one({"_id": run_id}, {"study": 1, **{f: 1 for f in INDEXED_TOP_FIELDS}})
        if found is None or found.get("study") != self._scope.study:
            raise self._not_found(run_id)
        fields: dict[str, Any] = {"status": status, "ended": utc_now(), "heartbeat": utc_now(), "error": error}
        if summary is not None:
            fields["summary"] = dict(summary)
        if not self._update(run_id, fields, old=found):
            raise self._not_found(run_id)

    def _not_found(self, run_id: Any) -> NotFound:
        return NotFound(f"No run {short(run_id)} in study {self._scope.study!r} to finish; pass the id "
                        "run_store.start() returned (list runs with db.runs()).")

    def find(self, query: Any = None, sort: Any = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Runs matching `query`, oldest first (or in `sort` order, e.g. [("accuracy", -1)], at most `limit`):
        through the run index when the query is equalities it covers, and the run table for a sort on a summary
        metric with a limit (run_search.py)."""
        scoped = self._scope.scoped(check_query(query))
        order = resolve_run_sort(sort)
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise InvalidInput(f"Invalid value for argument `limit`: {limit!r:.40}. Expected a whole number >= 1.")
        if not order and limit is None:
            return self._find_oldest_first(scoped)
        wanted = self._equalities(scoped) or ({} if set(scoped) == {"study"} else None)
        if limit is not None and len(order) == 1 and order[0][0].startswith(BEST) and wanted is not None:
            self._ensure_table()
            return ranked_runs(self, wanted, order[0][0], order[0][1], limit)
        found = self._find_oldest_first(scoped)
        found = mongodb_order(found, order) if order else found
        return found[:limit] if limit is not None else found

    def ids(self) -> set[ObjectId]:
        """Every run of the study, by id, from the run table (8 pairs of `_id` lookups). A start killed between its row
        and its document leaves one id more (readers of documents skip it)."""
        self._ensure_table()
        table = self.table.read()
        return {ObjectId(run) for run in binary_ids(table.ids)} | {ObjectId(run) for run in table.inflight}

    def settle_doc(self, doc: dict[str, Any]) -> dict[str, Any]:
        return self._settle(doc)

    def _ensure_table(self) -> None:
        """Studies written before the run table get their rows once, from the run documents."""
        if not self._table_built:
            build_once(self._scope, BUILT, lambda: self.table.rebuild(
                self.collection.find({"study": self._scope.study}, dict.fromkeys((*ROW_FIELDS, VERSION), 1))))
            self._table_built = True

    def _equalities(self, scoped: Mapping[str, Any]) -> dict[str, Any] | None:
        return equalities(scoped, lambda field: field in INDEXED_TOP_FIELDS or keyed(field))

    def candidates(self, wanted: Mapping[str, Any], cap: int | None = None) -> set[ObjectId] | None:
        """Ids of runs that may match the equalities `wanted`: from the run index's entries when they name `name`
        or `job`, else from the run table (the entries of rare keys, or every row); None when more than `cap`."""
        indexed = {field: value for field, value in wanted.items() if field in INDEXED_TOP_FIELDS}
        if indexed:
            self.index.ensure_built(self.collection)
            found = self.index.candidates(indexed, cap=cap)
            return None if found is None else {run for run in found if isinstance(run, ObjectId)}
        self._ensure_table()
        runs = self.table.candidates(wanted)
        if runs is None:  # no key rare enough for an entry: the whole table
            table = self.table.read(wanted)
            matched = binary_ids(table.ids[table.match]) if table.match is not None else []
            runs = {ObjectId(run) for run in matched} | {ObjectId(run) for run in table.inflight}
        return None if cap is not None and len(runs) > cap else runs

    def _lookup(self, scoped: Mapping[str, Any]) -> list[dict[str, Any]] | None:
        """The runs matching `scoped` through `candidates`, each checked against the query; None where the
        collection answers (not only equalities on name, job, status, tags and hyper-parameters, or more than
        SCAN_ABOVE candidates, when one scan is cheaper than a lookup each)."""
        wanted = self._equalities(scoped)
        found = None if wanted is None else self.candidates(wanted, cap=SCAN_ABOVE)
        if found is None:
            return None
        return [doc for doc in find_by_ids(self.collection, list(found))
                if doc.get("study") == self._scope.study and matches(doc, wanted or {})]

    def _find_oldest_first(self, scoped: dict[str, Any]) -> list[dict[str, Any]]:
        found = self._lookup(scoped)
        if found is not None:
            found = sorted(found, key=lambda d: (d["started"], d["_id"]))
        else:
            found = list(self.collection.find(scoped, sort=[("started", 1)]))
        settled = [self._settle(doc) for doc in found]
        wanted = scoped.get("status")
        return [doc for doc in settled if not isinstance(wanted, str) or doc["status"] == wanted]

    def drop_study(self) -> int:
        self.index.drop_study()
        self.table.drop_study()
        return delete_matching(self.collection, {"study": self._scope.study})
