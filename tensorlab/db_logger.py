"""`DBLogger`: a plain Keras callback that records a training run in TensorDB.

It opens a run on train begin and closes it on train end (reusable across `fit()` calls), sends
batch and epoch metrics through the asynchronous log writer, and saves parameter versions every N
epochs or when a monitored metric improves. A database problem is reported once and never raised
into `fit`: training matters more than its record, and the writer keeps rows through outages.
"""

from __future__ import annotations

import logging
import math
import platform
import threading
import time
import warnings
from typing import Any

import keras

from .errors import InvalidInput
from .metric_direction import MODES, known_direction, metric_direction
from .run_heartbeat import RunHeartbeat
from .tensordb.server.retry import through_outages
from .validation import clean_tags

logger = logging.getLogger("tensorlab.db_logger")
CHECKPOINT_POLICIES = ("epoch", "best", None)


def _device_name() -> str:
    backend = keras.config.backend()
    try:
        if backend == "jax":
            import jax

            return str(jax.devices()[0])
        if backend == "torch":
            import torch

            return f"cuda:{torch.cuda.current_device()}" if torch.cuda.is_available() else "cpu"
        import tensorflow as tf

        gpus = tf.config.list_logical_devices("GPU")
        return gpus[0].name if gpus else "cpu"
    except Exception:  # noqa: BLE001 - the device is a detail of the record, never a reason to fail
        return "unknown"


def _run_name(run_name: Any) -> str | None:
    """A run name; TensorLayer's order, `DBLogger(db, model)`, names the run after the model."""
    if run_name is None or (isinstance(run_name, str) and run_name):
        return run_name
    name = getattr(run_name, "name", None)
    if isinstance(run_name, keras.Model) or (hasattr(run_name, "keras_model") and isinstance(name, str)):
        return name
    raise InvalidInput(f"DBLogger's second argument is the run name (a non-empty string) or the model whose name "
                       f"the run takes; got {type(run_name).__name__} {run_name!r:.60}.")


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
                 architecture: Any = None, step_offset: int = 0, run_details: dict[str, Any] | None = None) -> None:
        super().__init__()
        run_name = _run_name(run_name)
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
        optimizer = getattr(model, "optimizer", None)
        details = {
            "optimizer": optimizer.__class__.__name__ if optimizer is not None else None,
            "parameter_count": int(model.count_params()) if model.built else None,
            "backend": keras.config.backend(), "keras_version": keras.__version__,
            "python_version": platform.python_version(), "epochs_planned": (self.params or {}).get("epochs"),
        }
        if self.run_id is None:
            self.run_id = self._safely("create the run", lambda: self.db.run_store.start(
                self.run_name, hyper_parameters=self.hyper_parameters, data_query=self.data_query, tags=self.tags,
                device=_device_name(), model_name=model.name, architecture=self.architecture,
                **{**details, **self.run_details}))
        else:
            self._safely("reopen the run", lambda: self.db.run_store.update(self.run_id, status="running", ended=None))
        self._step = self.step_offset
        self._epochs_in_fit = 0
        self._last_begin = None
        if self.run_id is not None:
            self._heartbeat = RunHeartbeat(self.db, self.run_id, lambda: self.progress).start()

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
        self._safely("send a heartbeat", lambda: self.db.run_store.heartbeat(self.run_id, epoch=epoch,
                                                                           step=self._step))

    def _save_parameters(self, epoch: int, metrics: dict[str, float], final: bool = False) -> None:
        """A checkpoint waits out a restarting or stalled server (ParameterStore.save retries); one that still
        fails is named in the run's summary (`missing_checkpoints`) and warned about, never silently lost."""
        tags = {"epoch": epoch, **({"final": True} if final else {})}
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
        """Save the weights as they are now (after a stop mid-epoch), tagged final."""
        self._save_parameters(self._epoch, {}, final=True)

    def end_run(self, status: str, error: str | None = None) -> None:
        """Close the run with its best metrics; `fit`'s own end calls this, and `Model` on errors."""
        if self._heartbeat is not None:
            self._heartbeat.stop()
        summary = {"best": self.best, "epochs": self._epoch + 1 - self.empty_epochs, "steps": self._step,
                   **({"missing_checkpoints": self.missing_checkpoints} if self.missing_checkpoints else {})}
        self._safely("finish the run", lambda: through_outages(
            lambda: self.db.run_store.finish(self.run_id, status, summary=summary, error=error), "finish the run"))
        self._safely("flush logs", lambda: self.db.flush_logs(timeout_s=5.0))

    def on_train_end(self, logs: dict | None = None) -> None:
        self.end_run("stopped" if getattr(self.model, "stop_training", False) else "finished")
