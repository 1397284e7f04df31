"""`Model`: a Keras model that trains, evaluates and versions itself through TensorDB.

It adds what a bare `fit` lacks: a run that ends failed or stopped when fit raises or is
interrupted, resume from the last parameter version, a stop flag honoured at the end of a batch
(with a final checkpoint), data from TensorDB queries, and `from_db` to rebuild any version.
Keras' own fit arguments (initial_epoch, validation_split, class_weight, sample_weight, ...) pass
through; text labels are encoded (label_encoding.py); `mixed_precision=True` trains a mixed copy
(precision.py); DBLogger comes last among the callbacks, so it logs what the others add (the
learning rate ReduceLROnPlateau sets).
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from .architecture_save import load_version, save_architecture
from .data_imports import check_sample_shapes
from .data_parallel import check_distribution, distributed, per_process_input
from .db_logger import DBLogger
from .devices import on_device
from .errors import InvalidInput, NotFound
from .fit_arguments import callback_list, check_fit_arguments, check_keras_arguments
from .follower_logger import FollowerLogger
from .forking import ForkPoint, fork_point
from .keras_weights import apply_weights
from .label_encoding import LabelMap, check_same_classes, encode_training_labels, is_text
from .monitor_check import check_monitor
from .multi_host import agreed_seed, agreed_stop, is_leader
from .precision import check_mixable, precision
from .provenance_capture import data_snapshots, training_seed
from .tensordb import DataStream
from .training_input import TrainingInput, training_input

PARAMS_CHOICES = ("best", "latest")


class StopFlag(keras.callbacks.Callback):
    """Ends `fit` at the end of the batch that is starting once `event` is set.

    It acts in the (synchronous) batch-begin hook so that it does not stop Keras from running the
    logging callbacks' batch-end hooks asynchronously.
    """

    def __init__(self, event: threading.Event) -> None:
        super().__init__()
        self.event = event
        self.stopped = False

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        if agreed_stop(self.event.is_set(), batch):  # processes training together stop at the same batch
            self.event.set()  # on every process: its caller (a worker) sees that this fit was stopped
            self.model.stop_training = True
            self.stopped = True


def _check_same_length(x: Any, y: Any, x_name: str, y_name: str) -> None:
    """Keras reports unequal lengths deep inside fit (a cardinality error); say it plainly, before training."""
    if hasattr(x, "shape") and hasattr(y, "shape") and len(x.shape) and len(y.shape) and len(x) != len(y):
        raise InvalidInput(f"`{x_name}` has {len(x)} samples but `{y_name}` has {len(y)}; pass one label per sample.")


@dataclass
class FitOptions:
    """What one `Model.fit` call asked for besides its data (kept together so the steps below stay short)."""

    epochs: int
    run_name: str | None
    resume: Any
    checkpoint: str | None
    checkpoint_every: int
    monitor: str
    mode: str
    every_n_batches: int
    hyper_parameters: dict | None
    callbacks: list[Any]
    device: str | None
    mixed_precision: bool
    stop_event: threading.Event | None
    verbose: Any
    data_query: Any
    run_details: dict | None
    logger: DBLogger | None
    keras: dict[str, Any] = field(default_factory=dict)  # Keras' own fit arguments, passed through
    distribution: str | None = None  # "data_parallel": every local device (data_parallel.py)


@dataclass
class StartPoint:
    run_id: Any = None
    epoch: int = 0
    step: int = 0
    epochs_before: int = 0
    details: dict = field(default_factory=dict)


class Model:
    """Wraps a `keras.Model`: build it from a model, a builder function, or an architecture in TensorDB."""

    def __init__(self, model: Any, name: str | None = None, db: Any = None) -> None:
        if isinstance(model, str):
            raise InvalidInput(f"Model({model!r}): the first argument is a Keras model (or a function building one) "
                               f"and the name comes second, e.g. Model(keras_model, name={model!r}).")
        if callable(model) and not isinstance(model, keras.Model):
            model = model()
        if not isinstance(model, keras.Model):
            raise InvalidInput(f"`model` must be a keras.Model or a function returning one; "
                               f"got {type(model).__name__}.")
        self.keras_model = model
        self.name = name or model.name
        self.db = db
        self.architecture_id: Any = None
        self.last_run: Any = None
        self.fork_from: ForkPoint | None = None
        self.classes: list[str] | None = None  # text class labels, when it was trained on them

    def __repr__(self) -> str:
        return f"Model(name={self.name!r}, parameters={self.keras_model.count_params():,})"

    # -- construction from the database ------------------------------------------------------------
    @classmethod
    def from_db(cls, db: Any, query: dict | None = None, params: str | dict | None = "best",
                metric: str = "val_accuracy", mode: str = "auto", trust: bool = False,
                input_shape: Sequence[int] | None = None) -> Model:
        """Rebuild an architecture and load a parameter version: 'best' (by `metric`), 'latest', or a query.
        A model that builds on its first batch (subclassed) is built from the shape its run recorded, or from
        `input_shape` (one sample's shape)."""
        arch = db.architectures.find(query)
        keras_model = db.architectures.load({"_id": arch["_id"]}, trust=trust)
        if isinstance(keras_model, str):
            raise InvalidInput("This architecture is Python source; pass trust=True to run it and build the model.")
        wrapped = cls(keras_model, name=arch.get("name"), db=db)
        wrapped.architecture_id = arch["_id"]
        if params is None:
            return wrapped
        scope = {"architecture": arch["_id"]}
        if params == "best":
            doc = db.parameters.best(scope, metric, mode)
        elif params == "latest":
            doc = db.parameters.find_doc(scope)
        elif isinstance(params, dict):
            doc = db.parameters.find_doc({"$and": [scope, params]})
        else:
            raise InvalidInput(f"Invalid value for argument `params`: {params!r}. Expected 'best', 'latest', "
                               "a query dict or None.")
        wrapped._load(db, doc, input_shape)
        return wrapped

    def _load(self, db: Any, version: dict, input_shape: Sequence[int] | None = None) -> None:
        """Set a stored version's weights (building the model first if needed) and take its run's classes."""
        load_version(db, self.keras_model, version, input_shape)
        if version.get("run") is not None:
            try:
                self.classes = db.run_store.resolve(version["run"]).get("classes") or self.classes
            except NotFound:
                pass

    @classmethod
    def fork(cls, db: Any, run: Any, epoch: int | None = None, model: Any = None, name: str | None = None) -> Model:
        """A model holding `run`'s parameters at `epoch` (default: its latest version), whose next `fit` is a new
        run continuing from that epoch and step (see forking.py). `model`: a compiled Keras model of the same
        architecture (e.g. with another optimizer); default: rebuilt from the stored architecture (compile it)."""
        point, version = fork_point(db, run, epoch)
        if model is None:
            model = db.architectures.load({"_id": version["architecture"]})
        wrapped = cls(model, name=name or f"{point.run_name}-fork", db=db)
        wrapped._load(db, version)
        wrapped.architecture_id = version.get("architecture")
        wrapped.fork_from = point
        return wrapped

    def save_architecture(self, db: Any = None, tags: dict | None = None) -> Any:
        db = self._db(db)
        self.architecture_id = db.save_model_architecture(self.keras_model, tags, name=self.name)
        return self.architecture_id

    # -- parameters ------------------------------------------------------------------------------
    def get_parameters(self) -> list[np.ndarray]:
        return self.keras_model.get_weights()

    def set_parameters(self, arrays: Sequence[np.ndarray]) -> None:
        apply_weights(self.keras_model, list(arrays))

    # -- training ------------------------------------------------------------------------------
    def _db(self, db: Any) -> Any:
        db = db or self.db
        if db is None:
            raise InvalidInput("No TensorDB given: pass db=... (from tensorlab.connect()) or Model(..., db=db).")
        return db

    def _resume_point(self, db: Any, resume: Any, run_name: str | None) -> StartPoint:
        """Where to continue `resume`'s run, after loading its last parameters. A version saved when a stop cut
        an epoch short is tagged partial: that epoch is trained again, not counted as done."""
        target = run_name if resume is True else resume
        if target is None:
            raise InvalidInput("resume=True needs run_name=... (or pass resume=<run id or name>).")
        try:
            run = db.run_store.resolve(target)
        except NotFound:
            if resume is True:
                return StartPoint()  # nothing to resume yet: a fresh run of that name
            raise  # a run named explicitly must exist: never train a new run under another name
        self.classes = run.get("classes") or self.classes
        try:
            doc = db.parameters.find_doc({"run": run["_id"]}, sort=[("epoch", -1), ("created", -1)])
        except NotFound:
            return StartPoint(run["_id"])
        load_version(db, self.keras_model, doc)
        epoch = int(doc["epoch"]) + (0 if (doc.get("tags") or {}).get("partial") else 1)
        progress = run.get("progress") or {}
        return StartPoint(run["_id"], epoch, int(progress.get("step", doc.get("step") or 0)), epoch)

    def _start_point(self, db: Any, options: FitOptions) -> StartPoint:
        initial_epoch = int(options.keras.pop("initial_epoch", 0) or 0)  # Keras' own: where a plain fit starts
        if options.resume:
            return self._resume_point(db, options.resume, options.run_name or self.name)
        if self.fork_from is not None:  # a new run from the branch point: its epochs and steps go on from there
            point = self.fork_from
            return StartPoint(None, point.epoch + 1, point.step, 0, point.details())
        return StartPoint(None, initial_epoch)

    def fit(self, x: Any = None, y: Any = None, *, db: Any = None, data: dict | None = None,
            validation_data: Any = None, epochs: int = 1, batch_size: int | None = None,
            run_name: str | None = None, resume: Any = False, checkpoint: str | None = "epoch",
            checkpoint_every: int = 1, monitor: str = "val_loss", mode: str = "auto", every_n_batches: int = 1,
            hyper_parameters: dict | None = None, callbacks: Any = (), device: str | None = None,
            mixed_precision: bool = False, stop_event: threading.Event | None = None, verbose: Any = 0,
            data_query: dict | None = None, run_details: dict | None = None, logger: DBLogger | None = None,
            seed: int | None = None, distribution: str | None = None, **fit_kwargs: Any) -> Any:
        """Train with DBLogger; returns Keras' History. Raises what fit raises, after marking the run failed.

        `data` (a TensorDB query) or a stream as `x` is streamed at `batch_size` samples a batch (default 32),
        never loaded whole. `logger` uses the caller's DBLogger (the seeds' `dblogger(db, m)`) instead of a new one;
        so does a DBLogger among `callbacks`. Every other keyword is Keras' own fit argument, passed through.
        `seed` seeds Python, numpy and the backend before training (none given: one drawn from numpy's global
        generator, so a notebook that seeded numpy draws the same one); the run records it, with the imports
        and counts its data queries resolved to. `distribution="data_parallel"` trains on every local device
        (keras.distribution, JAX backend).
        """
        if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
            raise InvalidInput(f"Invalid value for argument `epochs`: {epochs!r}. Expected an int >= 1.")
        seed = agreed_seed(training_seed(seed))
        check_distribution(distribution, self.keras_model)
        callbacks = callback_list(callbacks)
        if logger is None and sum(isinstance(c, DBLogger) for c in callbacks) == 1:
            logger = next(c for c in callbacks if isinstance(c, DBLogger))
            callbacks.remove(logger)
        db = self._db(db or (logger.db if logger is not None else None))
        check_fit_arguments(db, run_name=run_name, resume=resume, device=device, hyper_parameters=hyper_parameters,
                            data=data, validation_data=validation_data, epochs=epochs, batch_size=batch_size)
        check_keras_arguments(fit_kwargs, epochs=epochs, resume=resume,
                              streamed=data is not None or isinstance(x, DataStream))
        if logger is None:
            check_monitor(self.keras_model, monitor, mode, checkpoint)
        check_mixable(self.keras_model, mixed_precision)
        options = FitOptions(epochs, run_name, resume, checkpoint, checkpoint_every, monitor, mode, every_n_batches,
                             hyper_parameters, callbacks, device, mixed_precision, stop_event, verbose,
                             data if data is not None else data_query, dict(run_details or {}), logger, fit_kwargs,
                             distribution)
        for query, what in ((data, "data"), (x.query if isinstance(x, DataStream) else None, "x"),
                            (validation_data if isinstance(validation_data, dict) else None, "validation_data")):
            if query is not None:
                check_sample_shapes(db, query, what)
        options.run_details["provenance"] = {"seed": seed, "data": data_snapshots(
            db, data=data, x=x.query if isinstance(x, DataStream) else None,
            validation=validation_data if isinstance(validation_data, dict) else None)}
        keras.utils.set_random_seed(seed)
        if isinstance(validation_data, dict):
            validation_data = db.find_data(validation_data)
        inputs = training_input(db, x, y, data, batch_size, shuffle=fit_kwargs.pop("shuffle", True),
                                steps_per_epoch=fit_kwargs.pop("steps_per_epoch", None), seed=seed)
        try:
            validation_data, classes = encode_training_labels(db, inputs, validation_data, fit_kwargs)
            inputs = per_process_input(inputs, seed)  # of encoded labels; inside `try`: a refusal closes the stream
            if classes is not None:
                options.run_details["classes"] = classes
            return self._fit_inputs(db, inputs, validation_data, options, classes)
        finally:
            inputs.close()

    def _fit_inputs(self, db: Any, inputs: TrainingInput, validation_data: Any, options: FitOptions,
                    classes: list[str] | None) -> Any:
        _check_same_length(inputs.x, inputs.y, "x", "y")
        if isinstance(validation_data, (tuple, list)) and len(validation_data) >= 2:
            _check_same_length(validation_data[0], validation_data[1], "validation x", "validation y")
        start = self._start_point(db, options)
        check_same_classes(self.classes if options.resume else None, classes, options.run_name or self.name)
        self.classes = classes or self.classes
        logger = self._logger(db, inputs, options, start)
        stopper = StopFlag(options.stop_event or threading.Event())
        logger.stop_event, logger.watch_fit = stopper.event, False  # this method ends the run, whatever ends fit
        self.last_run = logger
        try:
            with on_device(options.device), distributed(self.keras_model, options.distribution) as laid_out, \
                    precision(laid_out, options.mixed_precision) as trained:
                history = trained.fit(
                    inputs.x, inputs.y, validation_data=validation_data, epochs=options.epochs,
                    batch_size=inputs.batch_size, steps_per_epoch=inputs.steps_per_epoch, initial_epoch=start.epoch,
                    shuffle=inputs.shuffle, callbacks=[stopper, *options.callbacks, logger], verbose=options.verbose,
                    **options.keras)
        except BaseException as error:
            status = "stopped" if isinstance(error, KeyboardInterrupt) else "failed"
            logger.end_run(status, error=f"{type(error).__name__}: {error}\n{traceback.format_exc()}")
            raise
        finally:
            self.architecture_id = self.architecture_id or logger.architecture
        if stopper.stopped or stopper.event.is_set():
            logger.final_checkpoint()
            logger.end_run("stopped")
        return history

    def _logger(self, db: Any, inputs: TrainingInput, options: FitOptions, start: StartPoint) -> DBLogger:
        """The run's DBLogger (the caller's, or a new one). A built model's architecture is stored now; one that
        builds on its first batch (subclassed) is stored by DBLogger once built, with its build config."""
        if not is_leader():
            return FollowerLogger()  # another process of a multi-process fit: only the leader writes
        stored_now = self.architecture_id is None and self.keras_model.built
        if stored_now:
            self.architecture_id = save_architecture(db, self.keras_model, name=self.name)
        batch_size = inputs.batch_size or (inputs.stream.batch_size if inputs.stream is not None else None)
        details = {**options.run_details, **start.details}
        logger = options.logger
        if logger is None:
            return DBLogger(db, options.run_name or self.name, every_n_batches=options.every_n_batches,
                            checkpoint=options.checkpoint, checkpoint_every=options.checkpoint_every,
                            monitor=options.monitor, mode=options.mode,
                            hyper_parameters={"epochs": options.epochs, "batch_size": batch_size,
                                              **(options.hyper_parameters or {})},
                            data_query=options.data_query, resume_run=start.run_id, batch_size=batch_size,
                            architecture=self.architecture_id, step_offset=start.step, run_details=details,
                            store_architecture=self.architecture_id is None and not stored_now,
                            epochs_before=start.epochs_before)
        logger.architecture = logger.architecture or self.architecture_id
        logger.store_architecture = logger.store_architecture and not stored_now
        logger.batch_size = logger.batch_size or batch_size
        logger.run_details = {**details, **logger.run_details}
        return logger

    def fit_generator(self, generator: Any, logger: DBLogger | None = None, batch_size: int | None = None,
                      epochs: int = 1, steps_per_epoch: int | None = None, **fit_kwargs: Any) -> Any:
        """The seeds' form: `m.fit_generator(g, dblogger(tensordb, m), batch_size, epochs)`.

        A TensorDB stream is re-batched to `batch_size` and repeats every epoch; any other generator yields its
        own batches and needs `steps_per_epoch`.
        """
        if not isinstance(generator, DataStream) and steps_per_epoch is None:
            raise InvalidInput("steps_per_epoch is needed for a generator whose length TensorDB cannot count "
                               "(db.data_generator(...) streams are counted).")
        if logger is None and self.db is None:
            raise InvalidInput("fit_generator needs a DBLogger to know where to log: "
                               "m.fit_generator(g, tensorlab.dblogger(db, m), batch_size, epochs).")
        return self.fit(generator, logger=logger, batch_size=batch_size, epochs=epochs,
                        steps_per_epoch=steps_per_epoch, **fit_kwargs)

    def evaluate(self, x: Any = None, y: Any = None, *, db: Any = None, data: dict | None = None,
                 **kwargs: Any) -> Any:
        if data is not None:
            x, y = self._db(db).find_data(data)
        if self.classes and is_text(y):
            y = LabelMap(self.classes).encode(y)
        return self.keras_model.evaluate(x, y, verbose=kwargs.pop("verbose", 0), return_dict=True, **kwargs)

    def predict(self, x: Any, **kwargs: Any) -> np.ndarray:
        return self.keras_model.predict(x, verbose=kwargs.pop("verbose", 0), **kwargs)

    def predict_labels(self, x: Any, **kwargs: Any) -> np.ndarray:
        """The predicted class of each sample as the text label it was trained on (the run's `classes`)."""
        if not self.classes:
            raise InvalidInput(f"Model {self.name!r} was not trained on text labels (it has no classes); use "
                               "predict(x) and take argmax yourself.")
        scores = np.asarray(self.predict(x, **kwargs))
        if scores.ndim >= 2 and scores.shape[-1] == 1:
            indices = (scores[..., 0] > 0.5).astype("int64")
        else:
            indices = scores.argmax(axis=-1)
        return LabelMap(self.classes).decode(indices)


def dblogger(db: Any, model: Model | Any, **options: Any) -> DBLogger:
    """The seeds' spelling: `dblogger(tensordb, m)` builds the callback for `m`."""
    name = model.name if isinstance(model, (Model, keras.Model)) else None
    return DBLogger(db, name, **options)


