"""While a `%%tdb_train` cell runs, every `model.fit(...)` the cell calls itself is a logged TensorLab run.

People paste Keras examples (keras-io's mnist_convnet.py ends in `model.fit(x_train, y_train, ...)`) into a
cell; that fit ran unlogged, and the magic then asked for `--x` naming a variable the cell had not defined
yet. For the duration of the cell, `keras.Model.fit` is wrapped: a call from the cell's thread whose
callbacks hold no DBLogger trains through `Model.fit` (a run, checkpoints, the live panel), with the
call's own arguments, and returns Keras' History as before. Calls from other threads, and fits that
already log themselves (a DBLogger among the callbacks, `tensorlab.Model.fit`), pass through untouched.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable
from typing import Any

_MISSING = object()


def _has_logger(callbacks: Any) -> bool:
    from .db_logger import DBLogger

    items = callbacks if isinstance(callbacks, (list, tuple)) else [callbacks]
    return any(isinstance(item, DBLogger) for item in items)


def follow_quietly(handle: Any) -> None:
    """Wait for a run; Ctrl-C stops it after the current batch (with a final checkpoint) and is re-raised."""
    try:
        handle.wait()
    except KeyboardInterrupt:
        handle.stop()
        handle.wait()
        raise


class CellFits:
    """A context manager: `keras.Model.fit` logged on this thread until exit. `options` are Model.fit's run options
    (run_name, checkpoint, monitor, ...); `follow(handle)` blocks until the run ends (the magic shows a panel);
    `callbacks()` gives callbacks to add, read when each fit starts (a variable the cell may define first)."""

    def __init__(self, db: Any, options: dict[str, Any], follow: Callable[[Any], None] | None = None,
                 callbacks: Callable[[], Any] | None = None) -> None:
        self.db = db
        self.options = dict(options)
        self.callbacks = callbacks or (lambda: None)
        self.follow = follow or follow_quietly
        self.handles: list[Any] = []
        self._thread = threading.get_ident()
        self._saved: Any = _MISSING

    def __enter__(self) -> CellFits:
        import keras

        original = keras.Model.fit
        self._saved = keras.Model.__dict__.get("fit", _MISSING)
        cell = self

        @functools.wraps(original)
        def fit(model: Any, *args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() != cell._thread or _has_logger(kwargs.get("callbacks")):
                return original(model, *args, **kwargs)
            return cell.train(model, inspect.signature(original).bind(model, *args, **kwargs).arguments)

        keras.Model.fit = fit
        return self

    def __exit__(self, *exc_info: object) -> None:
        import keras

        if self._saved is _MISSING:
            del keras.Model.fit
        else:
            keras.Model.fit = self._saved

    def train(self, keras_model: Any, arguments: dict[str, Any]) -> Any:
        """One fit of the cell, as `Model.fit` on a training thread; Keras' History back, or its error raised."""
        from .background import train_in_background
        from .model import Model

        arguments = dict(arguments)
        arguments.pop(next(iter(arguments)))  # `self`, the model
        arguments.setdefault("verbose", 0)  # the live panel shows progress
        callbacks = [*_as_list(self.options.get("callbacks")), *_as_list(self.callbacks()),
                     *_as_list(arguments.pop("callbacks", None))]
        options = {**self.options, **arguments, "callbacks": callbacks}
        options.setdefault("epochs", 1)
        wrapped = Model(keras_model, name=options.get("run_name"), db=self.db)
        handle = train_in_background(wrapped, db=self.db, **options)
        self.handles.append(handle)
        self.follow(handle)
        handle.followed = True
        if handle.error is not None:
            raise handle.error
        return handle.result


def _as_list(callbacks: Any) -> list[Any]:
    if callbacks is None:
        return []
    return list(callbacks) if isinstance(callbacks, (list, tuple)) else [callbacks]
