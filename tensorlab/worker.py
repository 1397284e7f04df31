"""Workers: claim jobs from the MongoDB queue, train them, survive crashes, scale over machines.

MongoDB is the whole distributed engine: claims are atomic (see tensordb/jobs/claims.py), leases expire when a
worker dies, and every job trains into a run named after it with a checkpoint each epoch. A job
whose worker was SIGKILLed is claimed again after its lease expires and *resumes* from the last
checkpoint. SIGTERM/SIGINT stop at the end of the batch, checkpoint, requeue the job and exit 0.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import socket
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidInput, JobError, UnsafeOperation
from .failure_class import OOM, RETRIED, classify
from .halving import promote
from .provenance_capture import training_seed
from .tensordb.documents.query_text import query_from_text
from .validation_values import check_number

logger = logging.getLogger("tensorlab.worker")
WORKFLOW_POLL_S = 2.0
COMPILE_DEFAULTS = {"optimizer": "adam", "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]}


def check_worker_arguments(max_jobs: Any, lease_s: Any, poll_interval_s: Any, max_idle_s: Any,
                           names: tuple[str, ...] = ("max_jobs", "lease_s", "poll_interval_s", "max_idle_s")) -> None:
    """What a worker's loop needs, checked before it connects or claims: a negative poll would spin, a bad
    lease would strand the jobs it claims. `names`: how the caller spells them (the CLI's flags)."""
    check_number(max_jobs, names[0], integer=True, minimum=1, allow_none=True)
    check_number(lease_s, names[1], above=0, maximum=365 * 24 * 3600)
    check_number(poll_interval_s, names[2], above=0)
    check_number(max_idle_s, names[3], minimum=0, allow_none=True)


@dataclass
class WorkerStats:
    done: int = 0
    failed: int = 0
    requeued: int = 0
    lost: int = 0
    jobs: list[str] = field(default_factory=list)
    quarantined: str | None = None  # why this worker stopped claiming, if it did
    stopped: str | None = None  # why it left before the queue was empty (its Slurm time limit, ...)


def default_worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def job_architecture_id(db: Any, job: dict) -> Any:
    """The stored architecture a job refers to (by id or by a query), or None for code jobs."""
    reference = job.get("architecture")
    if reference is None:
        return None
    if isinstance(reference, str) and reference.startswith("{"):
        return db.architectures.find(query_from_text(reference))["_id"]
    return reference


def build_job_model(db: Any, job: dict, allow_code: bool) -> Any:
    """The job's Keras model, compiled with its hyper-parameters (optimizer, learning_rate, loss, metrics)."""
    import keras

    from .tensordb.models.architectures import build_from_source

    hp = dict(job.get("hyper_parameters") or {})
    job["seed"] = training_seed(job.get("seed"))
    keras.utils.set_random_seed(job["seed"])  # built under the run's seed, so `db.rerun` can build it again
    source = job.get("code")
    if not source:
        model = db.architectures.load({"_id": job_architecture_id(db, job)})
        source = model if isinstance(model, str) else None  # an architecture stored as source (the seeds' flow)
    if source is not None:
        if not allow_code:
            raise UnsafeOperation("This job's model is Python source from the database; only a worker started with "
                                  "--allow-code (Worker(allow_code=True)) runs it.")
        model = _build_with_hp(source, hp) if "build_model" in source else build_from_source(source, trust=True)
    if not getattr(model, "compiled", False) or hp.get("recompile", _compiled_by_job(db, job)):
        optimizer = keras.optimizers.get({"class_name": hp.get("optimizer", COMPILE_DEFAULTS["optimizer"]),
                                          "config": {"learning_rate": float(hp.get("learning_rate",
                                                                                   hp.get("lr", 0.001)))}})
        model.compile(optimizer, hp.get("loss", COMPILE_DEFAULTS["loss"]),
                      metrics=hp.get("metrics", COMPILE_DEFAULTS["metrics"]),
                      run_eagerly=bool(hp.get("run_eagerly", False)))  # tiny jobs: skip graph tracing
    if job.get("warm_start") is not None and not job.get("resumed"):
        from .keras_weights import apply_weights

        version = warm_start_version(db, job["warm_start"])
        apply_weights(model, db.parameters.load(version))
        job["warm_started_from"] = version["_id"]
    return model


def _compiled_by_job(db: Any, job: dict) -> bool:
    """Whether the job's hyper-parameters compile its model (the default). A rerun of a run trained in a notebook
    or script keeps the compile settings stored with its architecture, as `tensorlab.rerun` does: those are what
    the original trained with."""
    if not job.get("rerun_of"):
        return True
    return db.run_store.resolve(job["rerun_of"]).get("job") is not None


def warm_start_version(db: Any, warm_start: Any) -> dict:
    """The parameter version a job starts from: a version id, or `{"job": id, "metric": m}` for the best
    version (by `m`; default the last one) of the run an earlier job of its plan trained."""
    if not isinstance(warm_start, dict):
        return db.parameters.find_doc({"_id": warm_start})
    before = db.jobs.get(warm_start["job"])
    run = (before.get("result") or {}).get("run")
    if before["status"] != "done" or run is None:
        raise InvalidInput(f"warm_start names job {before['_id']}, which has not finished ({before['status']}); "
                           "list it in `after`.")
    if warm_start.get("metric"):
        return db.parameters.best({"run": run}, warm_start["metric"], warm_start.get("mode", "auto"))
    return db.parameters.find_doc({"run": run}, sort=[("epoch", -1), ("created", -1)])


def _build_with_hp(source: str, hp: dict) -> Any:
    namespace: dict[str, Any] = {"__name__": "tensorlab_job"}
    exec(compile(source, "<tensorlab job>", "exec"), namespace)  # noqa: S102 - only with --allow-code
    builder = namespace["build_model"]
    import inspect

    accepted = inspect.signature(builder).parameters
    return builder(**{k: v for k, v in hp.items() if k in accepted})


class Worker:
    """`Worker(db).run()` processes jobs until `max_jobs` are done, it is stopped, or it idles too long."""

    def __init__(self, db: Any, name: str | None = None, *, query: dict | None = None, max_jobs: int | None = None,
                 device: str | None = None, allow_code: bool = False, lease_s: float = 60.0,
                 poll_interval_s: float = 1.0, max_idle_s: float | None = None, distribute: str | None = None,
                 max_failures_in_a_row: int = 3, claim_guard: Any = None, details: dict | None = None,
                 on_beat: Any = None) -> None:
        """`claim_guard()`: a reason not to claim another job (e.g. the Slurm time limit is near), or None.
        `details`: recorded in each run this worker trains (e.g. its Slurm job and array task). `on_beat()`:
        called on every poll and job heartbeat (a liveness file for Kubernetes' probe)."""
        check_worker_arguments(max_jobs, lease_s, poll_interval_s, max_idle_s)
        if distribute not in (None, "mirrored", "data_parallel"):
            raise InvalidInput(f"Invalid value for argument `distribute`: {distribute!r}. Expected None, 'mirrored' "
                               "(TensorFlow) or 'data_parallel' (keras.distribution, JAX).")
        self.db, self.name = db, name or default_worker_name()
        self.query, self.max_jobs, self.device = query, max_jobs, device
        self.allow_code, self.lease_s = allow_code, lease_s
        self.poll_interval_s, self.max_idle_s, self.distribute = poll_interval_s, max_idle_s, distribute
        self.max_failures_in_a_row = max_failures_in_a_row
        self.claim_guard, self.details, self.on_beat = claim_guard, dict(details or {}), on_beat or (lambda: None)
        self._non_code_failures: list[str] = []
        self._workflows_polled_at = -WORKFLOW_POLL_S
        self.stats = WorkerStats()
        self._stop = threading.Event()
        self._training_stop: threading.Event | None = None

    def request_stop(self, *_signal: Any) -> None:
        """Finish the current batch, checkpoint, requeue the job, then leave the loop."""
        self._stop.set()
        if self._training_stop is not None:
            self._training_stop.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)

    def warm_up(self) -> None:
        """Import the training stack before the first claim: a worker killed while starting (Keras takes
        seconds to import) must not have cost a job one of its attempts."""
        import keras  # noqa: F401

        from .model import Model  # noqa: F401
        if self.distribute == "mirrored":
            import tensorflow  # noqa: F401

    def run(self) -> WorkerStats:
        self.warm_up()
        idle_since = time.monotonic()
        while not self._stopping():
            self.on_beat()
            if self.max_jobs is not None and self.stats.done + self.stats.failed >= self.max_jobs:
                break
            self.stats.quarantined = self._quarantine_reason()
            if self.stats.quarantined:
                logger.error("%s", self.stats.quarantined)
                break
            self.stats.stopped = self.claim_guard() if self.claim_guard is not None else None
            if self.stats.stopped:
                logger.warning("%s", self.stats.stopped)
                break
            self._poll_workflows()
            job = self._claim()
            if job is None:
                if self.max_idle_s is not None and time.monotonic() - idle_since > self.max_idle_s:
                    break
                self._stop.wait(self.poll_interval_s)
                continue
            self.run_job(job)
            self._workflows_polled_at = -WORKFLOW_POLL_S  # a finished job may complete a rung: promote at once
            idle_since = time.monotonic()
        return self.stats

    def _stopping(self) -> bool:
        """Whether to leave the loop now (a group of processes decides together: worker_group.py)."""
        return self._stop.is_set()

    def _claim(self) -> dict | None:
        return self.db.jobs.pop(self.name, self.lease_s, self.query, self.allow_code)

    def _heartbeat(self, job: dict, done: threading.Event, model_holder: dict) -> None:
        while not done.wait(self.lease_s / 3):
            self.on_beat()
            db_logger = getattr(model_holder.get("model"), "last_run", None)
            progress = db_logger.progress if db_logger is not None else {"epoch": None, "step": None}
            try:
                self.db.jobs.heartbeat(job, self.name, self.lease_s, progress=progress)
            except JobError:
                model_holder["lost"] = True  # cancelled or taken over: stop at the end of the batch
                if self._training_stop is not None:
                    self._training_stop.set()
                return
            except Exception as error:  # noqa: BLE001 - keep training through a passing outage
                logger.warning("heartbeat for job %s failed: %s", job["_id"], error)

    def _begin_job(self, job: dict) -> None:
        """Count the job and give its fit a stop event, already set when this worker was asked to stop."""
        self.stats.jobs.append(str(job["_id"]))
        self._training_stop = threading.Event()
        if self._stop.is_set():
            self._training_stop.set()

    def _job_model(self, job: dict) -> Any:
        """The job's `Model`, built as every process of a worker builds it."""
        from .model import Model

        model = Model(self._build(job), name=f"job-{job['_id']}", db=self.db)
        model.architecture_id = job_architecture_id(self.db, job)  # None for code: Model.fit stores it
        return model

    def run_job(self, job: dict) -> str:
        """Train one claimed job; returns what became of it: done, failed, requeued or lost."""
        job_id = str(job["_id"])
        self._begin_job(job)
        done, holder = threading.Event(), {}
        beat = threading.Thread(target=self._heartbeat, args=(job, done, holder), daemon=True)
        beat.start()
        try:
            model = holder["model"] = self._job_model(job)
            history = self._fit(model, job)
            run_id = model.last_run.run_id
            if holder.get("lost"):
                self.stats.lost += 1
                return "lost"
            if self._training_stop.is_set():
                self.db.jobs.requeue(job, refund_attempt=True)
                self.stats.requeued += 1
                return "requeued"
            result = {"run": run_id, "epochs_trained": len(history.epoch), "warm_start": job.get("warm_started_from"),
                      "initial_epoch": history.epoch[0] if history.epoch else job["epochs"],
                      "final": {k: v[-1] for k, v in history.history.items() if v and math.isfinite(v[-1])}}
            self.db.jobs.complete(job, self.name, result)
            self.stats.done += 1
            self._non_code_failures = []
            return "done"
        except JobError as error:
            logger.warning("job %s: %s", job_id, error)
            self.stats.lost += 1
            return "lost"
        except (Exception, SystemExit) as error:  # noqa: BLE001 - every failure is stored with its traceback
            return self._record_failure(job, error)
        finally:
            done.set()
            self._training_stop = None

    def _record_failure(self, job: dict, error: BaseException) -> str:
        """Store the failure with its class and traceback; code and data errors are not retried, an OOM may
        retry at half the batch size (`oom_halve_batch`). Returns 'failed', or 'lost' if the job is not ours."""
        kind = classify(error)
        halved = max(1, int(job["batch_size"]) // 2) if kind == OOM and job.get("oom_halve_batch") else None
        try:
            self.db.jobs.fail(job, self.name, f"{type(error).__name__}: {error}", traceback.format_exc(),
                              failure_class=kind, retry=kind in RETRIED, batch_size=halved)
        except JobError:
            self.stats.lost += 1
            return "lost"
        self.stats.failed += 1
        self._non_code_failures = self._non_code_failures + [kind] if kind in RETRIED else []
        return "failed"

    def _poll_workflows(self) -> None:
        """Push the jobs that new data or parameters call for, and promote finished rungs of successive-halving
        sweeps (at most every WORKFLOW_POLL_S; exactly once however many workers do it). A failure is logged:
        the queue goes on."""
        if time.monotonic() - self._workflows_polled_at < WORKFLOW_POLL_S:
            return
        self._workflows_polled_at = time.monotonic()
        try:
            self.db.fire_triggers()
            promote(self.db)
        except Exception as error:  # noqa: BLE001 - a trigger problem must not stop the worker
            logger.warning("worker %s could not fire triggers or promote sweeps: %s", self.name, error)

    def _quarantine_reason(self) -> str | None:
        """Set once the last `max_failures_in_a_row` jobs failed for reasons that are not their code or data
        (out of memory, a broken device or library): this machine, not the jobs, is the likely cause."""
        if len(self._non_code_failures) < self.max_failures_in_a_row:
            return None
        kinds = ", ".join(sorted(set(self._non_code_failures)))
        return (f"worker {self.name} stops claiming: its last {len(self._non_code_failures)} jobs failed for "
                f"non-code reasons ({kinds}); check this machine (memory, device) and start it again.")

    def _build(self, job: dict) -> Any:
        if self.distribute == "mirrored":
            import tensorflow as tf

            with tf.distribute.MirroredStrategy().scope():
                return build_job_model(self.db, job, self.allow_code)
        return build_job_model(self.db, job, self.allow_code)

    def _fit(self, model: Any, job: dict) -> Any:
        """The same `Model.fit` a notebook calls: the job's query streamed at the job's batch size."""
        data = query_from_text(job["data_query"]) if job.get("data_query") else None
        if data is None:
            raise InvalidInput("The job has no data query; push it with data={...}.")
        validation = query_from_text(job["validation_query"]) if job.get("validation_query") else None
        return model.fit(
            data=data, db=self.db, epochs=int(job["epochs"]), batch_size=int(job["batch_size"]),
            validation_data=validation, run_name=f"job-{job['_id']}", resume=True, checkpoint="epoch",
            device=self.device, hyper_parameters=job.get("hyper_parameters"), stop_event=self._training_stop,
            run_details={**self.details, "job": job["_id"], **({"rerun_of": job["rerun_of"]} if job.get("rerun_of")
                                                                else {})}, seed=job.get("seed"),
            distribution="data_parallel" if self.distribute == "data_parallel" else None)
