"""`train_cell`: train the Keras model a notebook cell builds — what `%%tdb_train` does, callable from code.

Why the shell's own `run_cell`: a cell is more than Python (magics, `!commands`, IPython's transforms);
rebuilding it with `ast`/`exec` broke those. The model is the cell's last expression when that is a
Keras model, else the variable `model`; the only name written into the notebook is `_tdb_run`.
"""

from __future__ import annotations

import sys
from typing import Any

from .errors import InvalidInput

RUN_VAR = "_tdb_run"


class _LastModel:
    """A displayhook for the cell's run: keeps a model that ends the cell, shows any other value as usual."""

    def __init__(self, forward: Any) -> None:
        self.forward = forward
        self.model: Any = None

    def __call__(self, value: Any) -> None:
        if _is_model(value):
            self.model = value
        elif self.forward is not None:
            self.forward(value)


def _is_model(value: Any) -> bool:
    if value is None or "keras" not in sys.modules:
        return False
    import keras

    from .model import Model

    return isinstance(value, (keras.Model, Model))


def model_from_cell(shell: Any, cell: str) -> Any:
    """Run `cell` in the notebook and return the model it built (its last expression, else `model`)."""
    capture = _LastModel(sys.displayhook)
    sys.displayhook = capture
    try:
        result = shell.run_cell(cell, store_history=False)
    finally:
        sys.displayhook = capture.forward
    error = result.error_before_exec or result.error_in_exec
    if error is not None:
        raise InvalidInput(f"The cell raised {type(error).__name__}: {error} (traceback above); nothing was trained.")
    for candidate in (capture.model, result.result, shell.user_ns.get("model")):
        if _is_model(candidate):
            return candidate
    found = shell.user_ns.get("model")
    hint = f" (`model` is a {type(found).__name__})" if "model" in shell.user_ns else ""
    raise InvalidInput("%%tdb_train: the cell must end with an expression that is a Keras model (e.g. `model`, "
                       f"not `model.compile(...)`, which returns None) or define a variable `model`{hint}.")


def train_cell(shell: Any, cell: str, db: Any, *, name: str | None = None, fork: str | None = None,
               **fit: Any) -> Any:
    """Train the cell's model in the background with `Model.fit(**fit)`; returns the handle, also `_tdb_run`.
    `fork="RUN@EPOCH"`: the cell's (compiled) model starts from that stored version, as a new run."""
    from .background import train_in_background
    from .fit_arguments import check_fit_arguments
    from .forking import parse_fork
    from .model import Model

    check_fit_arguments(db, run_name=fit.get("run_name", name), resume=fit.get("resume", False),
                        device=fit.get("device"), hyper_parameters=fit.get("hyper_parameters"), data=fit.get("data"),
                        validation_data=fit.get("validation_data"), epochs=fit.get("epochs", 1),
                        batch_size=fit.get("batch_size"))  # before the cell runs or anything is stored
    built = model_from_cell(shell, cell)
    if fork:
        run, epoch = parse_fork(fork)
        model = Model.fork(db, run, epoch, model=built.keras_model if isinstance(built, Model) else built, name=name)
    else:
        model = built if isinstance(built, Model) else Model(built, name=name, db=db)
    if name:
        model.name = name
    fit.setdefault("run_name", model.name)
    handle = train_in_background(model, db=db, **fit)
    shell.user_ns[RUN_VAR] = handle
    return handle
