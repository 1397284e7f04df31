"""`train_in_background`: `Model.fit` on a worker thread, so the notebook stays usable while it trains.

The handle reports status and progress, stops at the end of the current batch (and saves a final
checkpoint), and keeps the exception and traceback of a failed run instead of losing them.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import keras

from .fit_arguments import callback_list
from .model import Model


@dataclass
class Progress:
    epoch: int = 0
    epochs: int = 0
    step: int = 0
    global_step: int = 0
    steps_per_epoch: int | None = None
    started: float = field(default_factory=time.time)
    last_logs: dict[str, float] = field(default_factory=dict)

    @property
    def fraction(self) -> float | None:
        if not self.epochs or not self.steps_per_epoch:
            return None
        done = self.epoch * self.steps_per_epoch + self.step
        return min(1.0, done / (self.epochs * self.steps_per_epoch))

    @property
    def eta_s(self) -> float | None:
        fraction = self.fraction
        if not fraction:
            return None
        elapsed = time.time() - self.started
        return elapsed * (1 - fraction) / fraction


class _ProgressCallback(keras.callbacks.Callback):
    """Keeps the handle's progress and calls its listeners: `listener(kind, epoch, logs, model)`."""

    async_safe = True  # batch-end work is a few appends; Keras may run it off the training loop

    def __init__(self, progress: Progress, listeners: list[Callable[..., None]]) -> None:
        super().__init__()
        self.progress = progress
        self.listeners = listeners

    def _notify(self, kind: str, epoch: int | None, logs: dict | None) -> None:
        for listener in list(self.listeners):
            try:
                listener(kind, epoch, dict(logs or {}), self.model)
            except Exception:  # noqa: BLE001 - a broken listener must not stop training
                self.listeners.remove(listener)

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.progress.epochs = (self.params or {}).get("epochs") or 0
        self.progress.steps_per_epoch = (self.params or {}).get("steps")

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.progress.epoch, self.progress.step = epoch, 0

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        self.progress.step = batch + 1  # synchronous: counts batches started, exactly
        self.progress.global_step += 1

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.progress.last_logs = {k: float(v) for k, v in (logs or {}).items()}
        self._notify("train", self.progress.epoch, logs)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self._notify("valid", epoch, logs)


class TrainingHandle:
    """What `train_in_background` returns: status, progress, stop(), wait(), result, error, run_id."""

    def __init__(self, model: Model, fit_kwargs: dict[str, Any]) -> None:
        self.model = model
        self.run_name = fit_kwargs.get("run_name") or model.name
        self.progress = Progress()
        self.status = "starting"
        self.result: Any = None
        self.error: BaseException | None = None
        self.traceback: str | None = None
        self._stop = threading.Event()
        self._done = threading.Event()
        self.listeners: list[Callable[..., None]] = []
        self.followed = False  # shown and waited for already (a fit inside a %%tdb_train cell)
        callbacks = [*callback_list(fit_kwargs.pop("callbacks", None)),
                     _ProgressCallback(self.progress, self.listeners)]
        self._thread = threading.Thread(target=self._run, args=(fit_kwargs, callbacks), daemon=True,
                                        name=f"tensorlab-train-{model.name}")

    def _run(self, fit_kwargs: dict[str, Any], callbacks: list[Any]) -> None:
        self.status = "running"
        try:
            self.result = self.model.fit(stop_event=self._stop, callbacks=callbacks, **fit_kwargs)
            self.status = "stopped" if self._stop.is_set() else "finished"
        except BaseException as error:  # noqa: BLE001 - kept on the handle and shown, not lost
            self.error, self.traceback, self.status = error, traceback.format_exc(), "failed"
        finally:
            self._done.set()

    @property
    def run_id(self) -> Any:
        logger = self.model.last_run
        return getattr(logger, "run_id", None)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def stopping(self) -> bool:
        """Stop was asked and training has not ended yet (it ends after the current batch)."""
        return self._stop.is_set() and not self.done

    def stop(self) -> None:
        """End training after the batch now running; a final checkpoint is saved."""
        self._stop.set()
        self.model.keras_model.stop_training = True  # Keras checks this right after the current batch

    def wait(self, timeout: float | None = None) -> bool:
        """Block until training ends (True) or `timeout` passes (False)."""
        return self._done.wait(timeout)

    def __repr__(self) -> str:
        fraction = self.progress.fraction
        percent = f"{fraction:.0%}" if fraction is not None else "?"
        text = (f"TrainingHandle({self.model.name!r}, status={self.status!r}, epoch={self.progress.epoch + 1}/"
                f"{self.progress.epochs or '?'}, step={self.progress.step}, {percent})")
        if self.error is not None:
            text += f"\n{self.traceback}"
        return text


def train_in_background(model: Model | Any, **fit_kwargs: Any) -> TrainingHandle:
    """Start `Model.fit(**fit_kwargs)` on a thread and return its handle at once."""
    wrapped = model if isinstance(model, Model) else Model(model, db=fit_kwargs.get("db"))
    handle = TrainingHandle(wrapped, fit_kwargs)
    handle._thread.start()
    return handle
