"""`TensorDB`: the one door to the database. Magics, widgets, callbacks and workers all go through it.

It owns the client and builds each store on a `Scope` (database + study); the stores never see it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Any

from bson import ObjectId

from ..errors import InvalidInput, StudyNotReady
from ..table_rows import flat_row
from ..validation import check_database_name
from .data.datastore import DataStore, ImportResult
from .data.snapshot import data_snapshot
from .data.stream import DataStream
from .documents.batched_delete import delete_matching
from .documents.build_markers import STATE
from .documents.scope import Scope
from .documents.transfer_marker import check_ready
from .integrity.fsck import FsckReport, fsck
from .jobs import JobQueue
from .jobs.halving_store import HALVING, HalvingStore
from .jobs.triggers import TRIGGERS, TriggerStore
from .logs.logbook import LogBook
from .models.architectures import ARCHITECTURES, PYTHON_SOURCE, ArchitectureStore
from .models.deployments import DeploymentStore
from .models.parameters import ParameterStore
from .payloads.blobstore import BlobStore
from .payloads.payload_files import discover
from .provenance.lineage import lineage_of
from .provenance.records import ProvenanceRecords
from .provenance.run_diff import diff_runs
from .runs.runs import RunStore
from .server.connection import DEFAULT_TIMEOUT_S, open_client, resolve_uri
from .server.error_translation import translate_public_methods
from .server.indexes import declare_indexes
from .server.uri import mask_uri, seed_style_uri

DEFAULT_DB = "tensorlab"
DEFAULT_STUDY = "default"


SEED_SPELLINGS = {
    "save_parameter": "save_parameters(weights, tags)",
    "save_params": "save_parameters(weights, tags)",
    "find_params": "find_parameters(query)",
    "del_params": "delete_parameters(query)",
    "save_model_architecutre": "save_model_architecture(model_or_source, tags)",
    "find_model_architecutre": "load_model_architecture(query) (source comes back as text; trust=True runs it)",
    "find_model_architecture": "load_model_architecture(query) (source comes back as text; trust=True runs it)",
    "load_model_architecutre": "load_model_architecture(query)",
}


@translate_public_methods  # a full disk or a lost server is a TensorLab error naming what to do
class TensorDB:
    """A study inside one MongoDB database: every document TensorDB writes carries `study`.

    Two ways in: `tensorlab.connect(uri, db=..., study=...)`, or the seeds' constructor
    `TensorDB(ip=..., port=..., db_name=..., user_name=..., password=..., studyID=...)`.
    `payload_files=False` keeps new payloads in GridFS even beside the managed server's file store.
    A study being copied or imported raises StudyNotReady (`ignore_transfer=True`: what copy, import and fsck
    use to reach it anyway).
    """

    def __init__(
        self,
        ip: str | None = None,
        port: int | None = None,
        db_name: str = DEFAULT_DB,
        user_name: str | None = None,
        password: str | None = None,
        studyID: str | None = None,  # noqa: N803 - the seeds' spelling
        *,
        uri: str | None = None,
        client: Any = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        payload_files: bool = True,
        ignore_transfer: bool = False,
        **client_options: Any,
    ) -> None:
        check_database_name(db_name)  # checked here: the server would refuse it only at the first write
        study = DEFAULT_STUDY if studyID is None else studyID
        if not isinstance(study, str) or not study:
            raise InvalidInput(f"Invalid value for argument `study`: {study!r}. Expected a non-empty string.")
        if uri is None and ip is not None:
            uri = seed_style_uri(ip, port or 27017, user_name, password)
            user_name = password = None  # now inside the URI
        owned = client is None
        if client is None:
            uri = resolve_uri(uri)
            client = open_client(uri, user_name, password, timeout_s, **client_options)
        self.uri = mask_uri(uri or "")
        self.client = client
        self.db = client[db_name]
        self.db_name = db_name
        self.study = study
        if not ignore_transfer:  # a study being copied or imported is not readable until that finishes
            try:
                check_ready(self.db[STATE], db_name, study)
            except StudyNotReady:
                if owned:
                    client.close()
                raise
        self._scope = Scope(self.db, study, repr(self))
        self.index_problems = [] if self.is_memory else declare_indexes(self.db)
        advert = None if self.is_memory else discover(client, db_name)
        self.blobs = BlobStore(self.db, advert, write_files=payload_files)
        self.data = DataStore(self._scope, self.blobs)
        self.architectures = ArchitectureStore(self._scope)
        self.parameters = ParameterStore(self._scope, self.blobs)
        self.run_store = RunStore(self._scope)
        self.jobs = JobQueue(self._scope)
        self.deployments = DeploymentStore(self._scope)
        self.triggers = TriggerStore(self._scope)
        self.halving = HalvingStore(self._scope)
        self.provenance = ProvenanceRecords(self._scope)
        self._logbook: LogBook | None = None
        self.current_run: Any = None

    def __getattr__(self, name: str) -> Any:
        """The seeds' spellings name their TensorLab call instead of a bare AttributeError."""
        if name in SEED_SPELLINGS:
            raise AttributeError(f"TensorDB has no {name!r} (a TensorLayer/seed spelling); use "
                                 f"db.{SEED_SPELLINGS[name]}.")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __repr__(self) -> str:
        return f"TensorDB(uri={self.uri!r}, db={self.db_name!r}, study={self.study!r})"

    @property
    def is_memory(self) -> bool:
        return self.uri.startswith("memory://")

    def collection(self, name: str) -> Any:
        """A raw pymongo collection of this database, for users' own queries (stores never use this)."""
        return self._scope.collection(name)

    def scoped(self, query: dict[str, Any] | None = None) -> dict[str, Any]:
        """`query` restricted to this study (a query may name another study explicitly)."""
        return self._scope.scoped(query)

    @property
    def closed(self) -> bool:
        return self._scope.closed

    def close(self) -> None:
        """Flush pending logs, then close the client; later calls raise ConnectionFailed."""
        if not self._scope.closed:
            if self._logbook is not None:
                self._logbook.writer.close(timeout_s=10.0)
            self._scope.closed = True
            self.client.close()

    def fsck(self, repair: bool = True) -> FsckReport:
        """Remove what killed writers left (this study's imports and versions, the database's payloads) and
        name damaged items; `repair=False` only counts. Reads every payload document once."""
        return fsck(self, repair)

    def drop_study(self) -> dict[str, int]:
        """Delete everything of this study (data, parameters and their blobs, runs, logs, jobs, architectures,
        triggers and sweeps)."""
        self.flush_logs()
        removed = {"samples": self.data.delete_data({}), "parameters": self.parameters.delete({})}
        self.data.ledger.drop_study()
        self.data.catalog.drop_study()
        self.data.counts.drop_study()
        removed["logs"] = self.logbook.drop_study()
        removed[ARCHITECTURES] = delete_matching(self._scope.collection(ARCHITECTURES), {"study": self.study})
        removed["runs"] = self.run_store.drop_study()
        removed["jobs"] = self.jobs.drop_study()
        removed["deployments"] = self.deployments.drop_study()
        removed["provenance"] = self.provenance.drop_study()
        for name in (TRIGGERS, HALVING):  # what would push jobs for the study later
            removed[name] = delete_matching(self._scope.collection(name), {"study": self.study})
        return removed

    # -- data and labels -------------------------------------------------------------------------
    def import_data(self, X: Any, y: Any = None, tags: dict[str, Any] | None = None) -> ImportResult:  # noqa: N803
        """Store samples (first axis of X) and labels with shared tags; all or nothing."""
        return self.data.import_data(X, y, tags)

    def data_snapshot(self, query: dict[str, Any] | None = None) -> dict[str, Any]:
        """The imports `query` selects now and their sample counts (what a run records as the data it saw)."""
        return data_snapshot(self.data, query)

    def find_data(self, query: dict[str, Any] | None = None, limit: int | None = None) -> tuple[Any, Any]:
        """(X, y) of the samples a MongoDB query selects, e.g. {'tags.split': 'train'}."""
        return self.data.find_data(query, limit)

    def data_generator(self, query: dict[str, Any] | None = None, batch_size: int = 32, *, shuffle: bool = False,
                       epochs: int | None = 1, **options: Any) -> DataStream:
        """A pull-based stream of (x, y) batches; epochs=None streams forever and sees new samples."""
        return DataStream(self.data, query, batch_size, shuffle=shuffle, epochs=epochs, **options)

    def data_count(self, query: dict[str, Any] | None = None) -> int:
        return self.data.count(query)

    def data_summary(self) -> Any:
        """Imports in this study with tags and sample counts, as a DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.data.summary())

    def update_data_tags(self, query: dict[str, Any], tags: dict[str, Any]) -> int:
        return self.data.update_tags(query, tags)

    def delete_data(self, query: dict[str, Any]) -> int:
        return self.data.delete_data(query)

    # -- architectures and parameters ------------------------------------------------------------
    def save_model_architecture(self, model_or_code: Any, tags: dict[str, Any] | None = None,
                                name: str | None = None) -> Any:
        return self.architectures.save(model_or_code, tags, name)

    def load_model_architecture(self, query: dict[str, Any] | None = None, trust: bool = False) -> Any:
        """A Keras model from a stored config; source code comes back as text unless trust=True."""
        return self.architectures.load(query, trust)

    def save_parameters(self, weights: Any, tags: dict[str, Any] | None = None, **fields: Any) -> Any:
        fields.setdefault("run", self.current_run)
        return self.parameters.save(weights, tags, **fields)

    def find_parameters(self, query: dict[str, Any] | None = None, sort: Any = None) -> list[Any]:
        return self.parameters.find(query, sort)

    def find_all_parameters(self, query: dict[str, Any] | None = None, sort: Any = None) -> list[list[Any]]:
        return self.parameters.find_all(query, sort)

    def find_best_parameters(self, query: dict[str, Any] | None = None, metric: str = "val_accuracy",
                             mode: str = "auto") -> dict[str, Any]:
        return self.parameters.best(query, metric, mode)

    def delete_parameters(self, query: dict[str, Any]) -> int:
        return self.parameters.delete(query)

    # -- logs and runs ---------------------------------------------------------------------------
    @property
    def logbook(self) -> LogBook:
        if self._logbook is None:
            self._logbook = LogBook(self._scope)
        return self._logbook

    def _log(self, kind: str, positional: tuple[Any, ...], named: dict[str, Any]) -> bool:
        """`(step, epoch, run)` by position or name, other names are metrics; a leading dict is metrics too
        (the seeds' `db.train_log({'accuracy': ac})`)."""
        metrics = dict(named)
        if positional and isinstance(positional[0], Mapping):
            metrics = {**positional[0], **metrics}
            positional = positional[1:]
        if len(positional) > 3:
            raise InvalidInput(f"{kind}_log takes at most step, epoch and run by position; pass metrics by name, "
                               "e.g. train_log(loss=0.3, step=10).")
        fields = dict(zip(("step", "epoch", "run"), positional, strict=False))
        for name in fields:
            if name in metrics:
                raise InvalidInput(f"{kind}_log got `{name}` twice (by position and by name).")
        fields.update({name: metrics.pop(name) for name in ("step", "epoch", "run") if name in metrics})
        return self.logbook.log(kind, metrics, run=fields.get("run") or self.current_run, step=fields.get("step"),
                                epoch=fields.get("epoch"))

    def train_log(self, *step_epoch_run: Any, **metrics: Any) -> bool:
        """Log training metrics: `train_log(loss=0.3, step=10)`, or the seeds' `train_log({'loss': 0.3})`."""
        return self._log("train", step_epoch_run, metrics)

    def valid_log(self, *step_epoch_run: Any, **metrics: Any) -> bool:
        return self._log("valid", step_epoch_run, metrics)

    def test_log(self, *step_epoch_run: Any, **metrics: Any) -> bool:
        return self._log("test", step_epoch_run, metrics)

    def flush_logs(self, timeout_s: float | None = 30.0) -> bool:
        return self._logbook.writer.flush(timeout_s) if self._logbook is not None else True

    def logs(self, query: dict[str, Any] | None = None, *, run: Any = None, kind: str | None = None,
             metrics: Any = None, since: int | None = None, until: int | None = None,
             max_points: int | None = None) -> Any:
        """Log rows as a DataFrame; `run` takes an id or a run name. `metrics`, `since`/`until` (steps) read only
        those columns and rows; `max_points` downsamples for a chart (min and max of each step bin)."""
        run_id = self.run_store.resolve(run)["_id"] if run is not None else None
        return self.logbook.read(query, run=run_id, kind=kind, metrics=metrics, since=since, until=until,
                                 max_points=max_points)

    def run_provenance(self, run: Any) -> dict[str, Any]:
        """What made `run` (id or name): its `provenance` with the code, the uncommitted diff and the environment
        read back in full (`code.text`, `git.diff`, `environment` as a dict); {} for a run stored without one."""
        return self.provenance.read(self.run_store.resolve(run))

    def diff_runs(self, a: Any, b: Any) -> dict[str, Any]:
        """What differs between runs `a` and `b` (ids or names); `tensorlab diff A B` prints it."""
        return diff_runs(self.run_store.resolve(a), self.run_store.resolve(b), text=self.provenance.text,
                         environment=self.provenance.environment)

    def lineage(self, thing: Any) -> dict[str, Any]:
        """The graph around a run (id or name) or a parameter version (id), as {"start", "nodes", "edges"}."""
        return lineage_of(self, thing)

    def runs(self, query: dict[str, Any] | None = None, sort: Any = None, limit: int | None = None) -> Any:
        """Runs as a DataFrame: name, status, hyper-parameters, best metrics, times; oldest first, or in `sort`
        order (e.g. `sort=[("accuracy", -1)], limit=10`: a summary metric, or a field like "started")."""
        import pandas as pd

        columns = ("name", "status", "started", "ended", "host", "device")
        rows = [flat_row({"run": d["_id"], **{c: d.get(c) for c in columns}}, d.get("hyper_parameters"),
                         (d.get("summary") or {}).get("best"), "best.")
                for d in self.run_store.find(query, sort, limit)]
        return pd.DataFrame(rows)

    # -- jobs ------------------------------------------------------------------------------------
    def push_job(self, architecture: Any = None, *positional: Any, **job: Any) -> Any:
        """Queue a training job. A stored architecture named by id or query must exist now, not fail later;
        one stored as Python source makes the job one only `--allow-code` workers claim."""
        if positional:
            raise InvalidInput("push_job takes the data and settings by name, e.g. db.push_job({'name': 'mlp'}, "
                               "data={'tags.type': 'train'}, batch_size=1000, epochs=100) (the seeds' positional "
                               "dicts are not accepted: their order is ambiguous).")
        if isinstance(architecture, str):
            if ObjectId.is_valid(architecture):
                architecture = ObjectId(architecture)
            elif not architecture.replace("-", "_").replace(":", "_").isidentifier():  # source, as the seeds pass it
                raise InvalidInput("push_job's first argument names a stored architecture (its id, or a query such "
                                   "as {'name': 'mlp'}); to queue Python source pass code=source (workers run it "
                                   "only when started with --allow-code).")
        if isinstance(architecture, (Mapping, ObjectId)):
            doc = self.architectures.find(architecture if isinstance(architecture, Mapping) else {"_id": architecture})
            job.setdefault("source_architecture", doc.get("kind") == PYTHON_SOURCE)
        return self.jobs.push(architecture, **job)

    def pop_job(self, worker: str | None = None, lease_s: float = 60.0, query: dict[str, Any] | None = None,
                allow_code: bool = False) -> dict[str, Any] | None:
        """Claim the next job (as `worker`, default host:pid) under a lease; None when nothing is claimable."""
        if worker is None:
            worker = f"{socket.gethostname()}:{os.getpid()}"  # as tensorlab.worker names its workers
        return self.jobs.pop(worker, lease_s, query, allow_code)

    # -- triggers ----------------------------------------------------------------------------------
    def on_new_data(self, query: dict[str, Any], job: dict[str, Any], name: str) -> Any:
        """Push `job` (push_job's arguments; "$trigger" stands for the import's id) once for each import,
        committed from now on, with samples matching `query`. Workers fire triggers as they poll."""
        return self.triggers.add("data", query, job, name)

    def on_new_parameters(self, query: dict[str, Any], job: dict[str, Any], name: str) -> Any:
        """Push `job` once for each parameter version matching `query` saved from now on ("$trigger" stands
        for the version's id, e.g. `warm_start="$trigger"`)."""
        return self.triggers.add("parameters", query, job, name)

    def fire_triggers(self) -> int:
        """Push the jobs new documents call for; safe to run in any number of processes at once (each job is
        pushed exactly once). Returns how many triggering documents matched."""
        matched = 0
        for trigger in self.triggers.find():
            arrived, watermark = self.triggers.arrivals(trigger)
            query = self.triggers.query_of(trigger)
            for document_id in arrived:
                if self._trigger_matches(trigger["kind"], query, document_id):
                    job = self.triggers.job_for(trigger, document_id)
                    self.push_job(job.pop("architecture", None), **job)
                    matched += 1
            if arrived:
                self.triggers.advance(trigger["_id"], watermark)
        return matched

    def _trigger_matches(self, kind: str, query: dict[str, Any], document_id: Any) -> bool:
        if kind == "data":
            return self.data.count({"$and": [query, {"import_id": document_id}]}) > 0
        return bool(self.parameters.find_docs({"$and": [query, {"_id": document_id}]}))

    def __enter__(self) -> TensorDB:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def connect(
    uri: str | None = None,
    *,
    db: str = DEFAULT_DB,
    study: str | None = None,
    user: str | None = None,
    password: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    payload_files: bool = True,
    ignore_transfer: bool = False,
    **client_options: Any,
) -> TensorDB:
    """Connect to TensorDB: explicit `uri`, else $TENSORLAB_MONGODB_URI, else the managed local server.

    `memory://` gives an ephemeral in-process store (mongomock) for quick tries; it is never chosen
    for you. Auth and TLS keyword options (e.g. `tls=True`, `authSource=...`) go straight to pymongo.
    Beside the managed server, large payloads are files next to its data (`payload_files=False`: GridFS).
    """
    return TensorDB(db_name=db, user_name=user, password=password, studyID=study, uri=uri,
                    timeout_s=timeout_s, payload_files=payload_files, ignore_transfer=ignore_transfer,
                    **client_options)
