"""`train_cell`: train the Keras model a notebook cell builds — what `%%tdb_train` does, callable from code.

Why the shell's own `run_cell`: a cell is more than Python (magics, `!commands`, IPython's transforms);
rebuilding it with `ast`/`exec` broke those. The model is the cell's last expression when that is a
Keras model, else the variable `model`; the only name written into the notebook is `_tdb_run`.
Variables named on the magic's line (`--x`, `--y`, `--callbacks`, ...) are read after the cell ran, so a
cell that defines or reassigns them trains on what it left; a `model.fit(...)` inside the cell is logged
as a run itself (cell_fits.py), so a Keras example pasted into the cell runs unchanged.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
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


def _run(shell: Any, cell: str) -> tuple[Any, Any]:
    """Run `cell` in the notebook: (its last expression when that is a model, the shell's result)."""
    capture = _LastModel(sys.displayhook)
    sys.displayhook = capture
    try:
        result = shell.run_cell(cell, store_history=False)
    finally:
        sys.displayhook = capture.forward
    error = result.error_before_exec or result.error_in_exec
    if error is not None:
        raise InvalidInput(f"The cell raised {type(error).__name__}: {error} (traceback above); nothing more was "
                           "trained.")
    return capture.model, result.result


def _model_after(shell: Any, last: Any, result: Any) -> Any:
    """The model the cell built: its last expression, else the variable `model`."""
    for candidate in (last, result, shell.user_ns.get("model")):
        if _is_model(candidate):
            return candidate
    found = shell.user_ns.get("model")
    hint = f" (`model` is a {type(found).__name__})" if "model" in shell.user_ns else ""
    raise InvalidInput("%%tdb_train: the cell must end with an expression that is a Keras model (e.g. `model`, "
                       f"not `model.compile(...)`, which returns None) or define a variable `model`{hint}.")


def model_from_cell(shell: Any, cell: str) -> Any:
    """Run `cell` in the notebook and return the model it built (its last expression, else `model`)."""
    return _model_after(shell, *_run(shell, cell))


def _read_variables(shell: Any, variables: Mapping[str, Any]) -> dict[str, Any]:
    """{fit argument: notebook value} for {fit argument: variable name (or a tuple of names)}, read now."""
    def read(name: str, option: str) -> Any:
        if name not in shell.user_ns:
            raise InvalidInput(f"{option}: no variable named {name!r} in the notebook (after the cell ran).")
        return shell.user_ns[name]

    values: dict[str, Any] = {}
    for argument, name in variables.items():
        if name is None:
            continue
        option = "--" + {"validation_data": "validation-vars"}.get(argument, argument.replace("_", "-"))
        values[argument] = tuple(read(n, option) for n in name) if isinstance(name, tuple) else read(name, option)
    return values


NEEDS_DATA = ("%%tdb_train needs data: --data QUERY, --x VAR [--y VAR], or a model.fit(...) in the cell (which is "
              "then logged as a run).")
RUN_OPTIONS = ("run_name", "checkpoint", "monitor", "mode", "hyper_parameters", "device", "callbacks",
               "mixed_precision")


def train_cell(shell: Any, cell: str, db: Any, *, name: str | None = None, fork: str | None = None,
               variables: Mapping[str, Any] | None = None, follow: Callable[[Any], None] | None = None,
               **fit: Any) -> Any:
    """Train the cell's model in the background with `Model.fit(**fit)`; returns the handle, also `_tdb_run`.
    `variables`: {fit argument: notebook variable}, read after the cell ran. `fork="RUN@EPOCH"`: the cell's
    (compiled) model starts from that stored version, as a new run. Fits the cell calls itself are runs too
    (`follow(handle)` waits for each); with no data given, the last of them is the handle."""
    import keras

    from .background import train_in_background
    from .cell_fits import CellFits
    from .fit_arguments import check_fit_arguments
    from .provenance_capture import training_seed

    fit.setdefault("run_name", name)
    check_fit_arguments(db, run_name=fit.get("run_name"), resume=fit.get("resume", False),
                        device=fit.get("device"), hyper_parameters=fit.get("hyper_parameters"), data=fit.get("data"),
                        validation_data=fit.get("validation_data"), epochs=fit.get("epochs", 1),
                        batch_size=fit.get("batch_size"))  # before the cell runs or anything is stored
    variables = {k: v for k, v in (variables or {}).items() if v is not None}
    fit["seed"] = training_seed(fit.get("seed"))
    keras.utils.set_random_seed(fit["seed"])  # the cell builds its model under the run's seed: a rerun can too

    def callbacks_now() -> Any:
        return _read_variables(shell, {"callbacks": variables["callbacks"]})["callbacks"] \
            if "callbacks" in variables else None

    with CellFits(db, {k: fit[k] for k in RUN_OPTIONS if fit.get(k) is not None}, follow,
                  callbacks_now) as cell_fits:
        last, result = _run(shell, cell)
    fit.update(_read_variables(shell, variables))
    if fit.get("data") is None and fit.get("x") is None:
        if not cell_fits.handles:
            raise InvalidInput(NEEDS_DATA)
        handle = cell_fits.handles[-1]
    else:
        model = _cell_model(db, _model_after(shell, last, result), name, fork)
        fit["run_name"] = fit.get("run_name") or model.name
        handle = train_in_background(model, db=db, **fit)
    shell.user_ns[RUN_VAR] = handle
    return handle


def _cell_model(db: Any, built: Any, name: str | None, fork: str | None) -> Any:
    from .forking import parse_fork
    from .model import Model

    if fork:
        run, epoch = parse_fork(fork)
        model = Model.fork(db, run, epoch, model=built.keras_model if isinstance(built, Model) else built, name=name)
    else:
        model = built if isinstance(built, Model) else Model(built, name=name, db=db)
    if name:
        model.name = name
    return model
