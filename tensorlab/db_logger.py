"""`DBLogger`: a plain Keras callback that records a training run in TensorDB.

It opens a run on train begin and closes it on train end (reusable across `fit()` calls), sends
batch and epoch metrics through the asynchronous log writer, and saves parameter versions every N
epochs or when a monitored metric improves. A database problem is reported once and never raised
into `fit`: training matters more than its record, and the writer keeps rows through outages.

Keras calls `on_train_end` only when fit succeeds; a fit ended by an exception or Ctrl-C is noticed by
the heartbeat thread (fit_watch.py), which then ends the run as failed. A run whose callback (e.g.
EarlyStopping) stopped it ends `finished`, with the reason in its summary; an epoch cut short by a stop
is recorded as partial, never counted as complete.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
import warnings
from typing import Any

import keras

from .architecture_save import save_architecture
from .errors import InvalidInput
from .fit_watch import FitWatch
from .metric_direction import MODES, known_direction, metric_direction
from .monitor_check import check_monitor
from .provenance_capture import record_provenance
from .run_heartbeat import RunHeartbeat
from .run_record import device_name, run_details, run_name_of, stop_reason
from .tensordb.server.retry import through_outages
from .validation import clean_tags

logger = logging.getLogger("tensorlab.db_logger")
CHECKPOINT_POLICIES = ("epoch", "best", None)


class DBLogger(keras.callbacks.Callback):
    """Log a Keras `fit` into TensorDB: run document, per-batch rows, per-epoch rows and checkpoints.

    `async_safe`: Keras may run the batch-end hook on a helper thread, so the training loop never
    waits for metric conversion or logging; step numbers therefore come from (epoch, batch), not
    from a counter, and step time is measured between the (synchronous) batch-begin calls.
    """

    async_safe = True

    def __init__(self, db: Any, run_name: str | None = None, *, every_n_batches: int = 1,
                 checkpoint: str | None = "epoch", checkpoint_every: int = 1, monitor: str = "val_loss",
                 mode: str = "auto", hyper_parameters: dict[str, Any] | None = None, data_query: Any = None,
                 tags: dict[str, Any] | None = None, resume_run: Any = None, batch_size: int | None = None,
                 architecture: Any = None, step_offset: int = 0, run_details: dict[str, Any] | None = None,
                 store_architecture: bool = True, epochs_before: int = 0) -> None:
        super().__init__()
        run_name = run_name_of(run_name)
        if not isinstance(every_n_batches, int) or every_n_batches < 1:
            raise InvalidInput(f"Invalid value for argument `every_n_batches`: {every_n_batches!r}. "
                             "Expected an int >= 1.")
        if checkpoint not in CHECKPOINT_POLICIES:
            raise InvalidInput(f"Invalid value for argument `checkpoint`: {checkpoint!r}. "
                             "Expected 'epoch', 'best' or None.")
        if mode not in MODES:
            raise InvalidInput(f"Invalid value for argument `mode`: {mode!r}. Expected one of {MODES}.")
        self.db = db
        self.run_name = run_name
        self.every_n_batches = every_n_batches
        self.checkpoint = checkpoint
        self.checkpoint_every = max(1, checkpoint_every)
        self.monitor = monitor
        self.mode = mode  # 'auto' is resolved at the first epoch end, asking the compiled metric (as Keras does)
        self.hyper_parameters = clean_tags(hyper_parameters, "hyper_parameters")
        self.data_query = data_query
        self.tags = clean_tags(tags)
        self.run_id: Any = resume_run
        self.batch_size = batch_size  # Keras 3 does not tell callbacks; needed for samples/s
        self.architecture = architecture
        self.step_offset = step_offset
        self.run_details = dict(run_details or {})
        self.store_architecture = store_architecture  # False: the caller stored it, or tried and warned
        self.epochs_before = epochs_before  # epochs a resumed run completed before this logger
        self.stop_event: threading.Event | None = None  # set by Model.fit: a stop it asked for, which it ends
        self.watch_fit = True  # Model.fit ends the run itself whatever ends fit; a bare fit is watched
        self.stop_reason: str | None = None
        self.partial_epoch: dict[str, int] | None = None
        self.completed_epochs = 0
        self.best: dict[str, float] = {}
        self.errors = 0
        self._step = 0
        self._epoch = 0
        self._epochs_in_fit = 0
        self._batches_in_epoch = 0
        self.empty_epochs = 0
        self.missing_checkpoints: list[int] = []
        self._last_begin: float | None = None
        self._last_step_time: float | None = None
        self._counter_lock = threading.Lock()
        self._heartbeat: RunHeartbeat | None = None
        self._watch: FitWatch | None = None
        self._ended = threading.Event()
        self._build_recorded = False

    @property
    def progress(self) -> dict[str, int]:
        """Where training is now (epoch and global step), e.g. for a worker's heartbeat."""
        return {"epoch": self._epoch, "step": self._step}

    # -- helpers ------------------------------------------------------------------------------
    def _safely(self, what: str, action) -> Any:
        """Run `action()` (a thunk, so even attribute lookups on a closed connection are caught)."""
        try:
            return action()
        except Exception as error:  # noqa: BLE001 - never raise into fit
            self.errors += 1
            if self.errors == 1 or self.errors % 100 == 0:
                logger.error("TensorLab DBLogger could not %s (%s: %s); training continues.",
                             what, type(error).__name__, error)
            return None

    def _direction(self, name: str) -> str | None:
        """'max'/'min' for a metric of this fit: the monitor's `mode`, else what the metric says."""
        if name == self.monitor and self.mode != "auto":
            return self.mode
        return known_direction(name, self.model)

    def _is_better(self, name: str, value: float) -> bool:
        previous = self.best.get(name)
        if previous is None or math.isnan(previous):
            return True
        return value > previous if self._direction(name) == "max" else value < previous

    def _batch_size(self) -> int | None:
        return self.batch_size or (self.params or {}).get("batch_size")

    # -- Keras hooks -------------------------------------------------------------------------------
    def on_train_begin(self, logs: dict | None = None) -> None:
        model = self.model
        check_monitor(model, self.monitor, self.mode, self.checkpoint)  # before anything is stored
        self._ended.clear()
        self._build_recorded = False
        self.stop_reason, self.partial_epoch = None, None
        if self.architecture is None and self.store_architecture and model.built:
            self._store_architecture()
        if self.run_id is None:
            details = {**run_details(model, self.params), **self.run_details}
            given, device = details.pop("provenance", None), device_name()
            provenance = self._safely("record what made the run", lambda: record_provenance(self.db, device, given))
            self.run_id = self._safely("create the run", lambda: self.db.run_store.start(
                self.run_name, hyper_parameters=self.hyper_parameters, data_query=self.data_query, tags=self.tags,
                device=device, model_name=model.name, architecture=self.architecture,
                provenance=provenance or given, **details))
        else:
            self._safely("reopen the run", lambda: self.db.run_store.update(self.run_id, status="running", ended=None))
        self._step = self.step_offset
        self._epochs_in_fit = 0
        self._last_begin = None
        self._watch = FitWatch()  # also names the callback that stops fit, if one does
        watching = self.watch_fit and self._watch.watching
        if self.run_id is not None:
            self._heartbeat = RunHeartbeat(self.db, self.run_id, lambda: self.progress,
                                           alive=self._watch.running if watching else None,
                                           on_gone=self._fit_gone).start()

    def _store_architecture(self) -> None:
        """Once per logger: a model that Keras cannot serialise trains on, with a warning naming the fix."""
        self.store_architecture = False
        self.architecture = self._safely("store the architecture", lambda: save_architecture(
            self.db, self.model, name=self.model.name))

    def _record_build(self) -> None:
        """Once the model is built (a subclassed model builds on its first batch): the architecture, if not
        stored yet, and the build config, which Model.from_db uses to build a rebuilt model before its weights."""
        if self._build_recorded or not self.model.built:
            return
        self._build_recorded = True
        if self.architecture is None and self.store_architecture:
            self._store_architecture()
        fields: dict[str, Any] = {}
        try:
            fields["build_config"] = json.loads(json.dumps(self.model.get_build_config()))
        except (TypeError, ValueError, NotImplementedError):
            pass
        if self.architecture is not None:
            fields["architecture"] = self.architecture
        if fields and self.run_id is not None:
            self._safely("record the model's build", lambda: self.db.run_store.update(self.run_id, **fields))

    def _steps_per_epoch(self) -> int | None:
        return (self.params or {}).get("steps")

    def _global_step(self, batch: int) -> int:
        steps = self._steps_per_epoch()
        if steps:
            return self.step_offset + self._epochs_in_fit * steps + batch + 1
        with self._counter_lock:
            self._step += 1
            return self._step

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        now = time.perf_counter()
        if self._last_begin is not None:
            self._last_step_time = now - self._last_begin
        self._last_begin = now

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        with self._counter_lock:
            self._batches_in_epoch += 1  # counted at the end: with TensorFlow, a batch begins before data runs out
        step = self._global_step(batch)
        if self._steps_per_epoch():
            self._step = max(self._step, step)
        if step % self.every_n_batches:
            return
        metrics = {k: float(v) for k, v in (logs or {}).items() if isinstance(v, (int, float)) or hasattr(v, "item")}
        step_time = self._last_step_time
        size = self._batch_size()
        extra: dict[str, float] = {}
        if step_time:
            extra["step_time"] = step_time
            if size:
                extra["samples_per_s"] = size / step_time
        self._safely("log a batch", lambda: self.db.logbook.log(
            "train", {**metrics, **extra}, run=self.run_id, step=step, epoch=self._epoch, batch=batch))

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch = epoch
        self._batches_in_epoch = 0
        self._last_begin = None  # validation time between epochs is not a training step
        steps = self._steps_per_epoch()
        if steps:
            self._step = self.step_offset + self._epochs_in_fit * steps

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self._batches_in_epoch == 0:  # the data ran out: Keras reports zeroed metrics for an epoch never trained
            self.empty_epochs += 1
            warnings.warn(f"TensorLab: epoch {epoch} received no batches (the data ran out), so it is neither logged "
                          "nor checkpointed. Give the generator steps_per_epoch * epochs batches, or pass a "
                          "db.data_generator(...) stream, which repeats.", RuntimeWarning, stacklevel=2)
            return
        self._epochs_in_fit += 1
        metrics = {k: float(v) for k, v in (logs or {}).items()}
        self._safely("log an epoch", lambda: self.db.logbook.log(
            "valid", metrics, run=self.run_id, step=self._step, epoch=epoch))
        self._record_build()
        steps = self._steps_per_epoch()
        if getattr(self.model, "stop_training", False) and steps and self._batches_in_epoch < steps:
            # stopped mid-epoch: Keras still ends the epoch, but it is not complete (no checkpoint, not counted)
            self.partial_epoch = {"epoch": epoch, "batches": self._batches_in_epoch, "of": steps}
        else:
            self.completed_epochs += 1
            self._best_and_checkpoint(epoch, metrics)
        self._safely("send a heartbeat", lambda: self.db.run_store.heartbeat(self.run_id, epoch=epoch,
                                                                           step=self._step))

    def _best_and_checkpoint(self, epoch: int, metrics: dict[str, float]) -> None:
        if self.checkpoint == "best" and self.mode == "auto":
            self.mode = metric_direction(self.monitor, model=self.model)  # raises, as Keras does, when unknown
        value = metrics.get(self.monitor)
        improved = value is not None and not math.isnan(value) and self._is_better(self.monitor, value)
        for name, number in metrics.items():
            if self._direction(name) is not None and self._is_better(name, number):
                self.best[name] = number
        save = (self.checkpoint == "epoch" and (epoch + 1) % self.checkpoint_every == 0) or \
            (self.checkpoint == "best" and improved)
        if save:
            self._save_parameters(epoch, metrics)

    def _save_parameters(self, epoch: int, metrics: dict[str, float], final: bool = False) -> None:
        """A checkpoint waits out a restarting or stalled server (ParameterStore.save retries); one that still
        fails is named in the run's summary (`missing_checkpoints`) and warned about, never silently lost.
        The final checkpoint of an epoch cut short says so (`partial`, batches trained of batches planned), so
        resuming trains that epoch again instead of counting it done."""
        tags: dict[str, Any] = {"epoch": epoch, **({"final": True} if final else {})}
        if final and self.partial_epoch is not None and self.partial_epoch["epoch"] == epoch:
            tags.update(partial=True, batches=self.partial_epoch["batches"], batches_planned=self.partial_epoch["of"])
        saved = self._safely("save parameters", lambda: self.db.parameters.save(
            self.model, tags, run=self.run_id, epoch=epoch, step=self._step, metrics=metrics,
            architecture=self.architecture))
        if saved is None:
            self.missing_checkpoints.append(epoch)
            warnings.warn(f"TensorLab: the checkpoint of epoch {epoch} could not be stored (the server stayed "
                          "unreachable); the run records it under summary.missing_checkpoints.", RuntimeWarning,
                          stacklevel=2)

    def checkpoint_now(self, epoch: int | None = None) -> None:
        """Save the current weights on request (the panel's button), tagged manual."""
        self._safely("save parameters", lambda: self.db.parameters.save(
            self.model, {"epoch": self._epoch if epoch is None else epoch, "manual": True}, run=self.run_id,
            epoch=self._epoch, step=self._step, architecture=self.architecture))

    def final_checkpoint(self) -> None:
        """Save the weights as they are now (after a stop mid-epoch), tagged final (and partial when it was)."""
        self._record_build()
        self._save_parameters(self._epoch, {}, final=True)

    def summary(self) -> dict[str, Any]:
        """What the run's document keeps when it ends: `epochs` counts complete epochs (a partial one is named
        apart), `last_epoch` is the number of the last epoch that ran."""
        summary: dict[str, Any] = {"best": self.best, "epochs": self.epochs_before + self.completed_epochs,
                                   "last_epoch": self._epoch, "steps": self._step}
        if self.stop_reason:
            summary.update(stopped_early=True, stop_reason=self.stop_reason, stopped_epoch=self._epoch)
        if self.partial_epoch is not None:
            summary["partial_epoch"] = dict(self.partial_epoch)
        if self.missing_checkpoints:
            summary["missing_checkpoints"] = self.missing_checkpoints
        return summary

    def end_run(self, status: str, error: str | None = None) -> None:
        """Close the run with its summary; `fit`'s own end calls this, and `Model` on errors and stops."""
        self._ended.set()
        if self._heartbeat is not None:
            self._heartbeat.stop()
        if self._watch is not None:
            self._watch.forget()
        if self.run_id is None:  # fit failed before on_train_begin (or the run could not be created): no run
            return
        summary = self.summary()
        self._safely("finish the run", lambda: through_outages(
            lambda: self.db.run_store.finish(self.run_id, status, summary=summary, error=error), "finish the run"))
        self._safely("flush logs", lambda: self.db.flush_logs(timeout_s=5.0))

    def _fit_gone(self) -> None:
        """The heartbeat thread saw fit end without `on_train_end`: an exception or Ctrl-C ended it."""
        if not self._ended.is_set():
            self.end_run("failed", error="model.fit ended without reaching on_train_end: an exception or a "
                                         "KeyboardInterrupt stopped it (Keras tells callbacks neither; the traceback "
                                         "is where fit was called).")

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.stop_event is not None and self.stop_event.is_set():
            return  # a stop Model.fit asked for: it saves a final checkpoint and ends the run `stopped`
        if getattr(self.model, "stop_training", False):
            self.stop_reason = stop_reason(self._watch.callbacks() if self._watch is not None else [], self._epoch)
        self.end_run("finished")
