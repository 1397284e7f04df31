"""What a training call takes, checked before anything is stored: `Model.fit`, `train_cell` and `%%tdb_train`
save the architecture and open a run only once every argument is known to be good."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import InvalidInput, NotFound
from .tensordb.data.datastore import SAMPLE_FIELDS
from .validation import check_query, clean_tags
from .validation_values import check_name, check_number, short


def check_device(device: Any) -> None:
    """'cpu', 'gpu' or 'gpu:N' that the active backend has (None: its default)."""
    if device is None:
        return
    if not isinstance(device, str):
        raise InvalidInput(f"Invalid value for argument `device`: {short(device)}. Expected 'cpu', 'gpu', 'gpu:N' "
                           "or None.")
    from .devices import list_devices

    info = list_devices()
    name = "gpu:0" if device.lower() == "gpu" else device.lower()
    if name not in info.devices:
        raise InvalidInput(f"Invalid value for argument `device`: {device!r}. The {info.backend} backend has "
                           f"{list(info.devices)}; pass one of those or None.")


def check_resume(db: Any, resume: Any) -> None:
    """`resume=<run id or name>` must name a run that exists (True resumes `run_name` if it exists)."""
    if resume is None or isinstance(resume, bool):
        return
    if not isinstance(resume, str) and not (isinstance(resume, Mapping) and "_id" in resume) and \
            type(resume).__name__ != "ObjectId":
        raise InvalidInput(f"Invalid value for argument `resume`: {short(resume)}. Expected True, False, or a run's "
                           "id or name.")
    try:
        db.run_store.resolve(resume)
    except NotFound:
        raise NotFound(f"resume={short(resume)}: no run of that id or name in study {db.study!r}, so there is "
                       "nothing to resume (nothing was trained). List runs with db.runs(); to start a new run, drop "
                       "resume or pass a new run name.") from None


def check_fit_arguments(db: Any, *, run_name: Any = None, resume: Any = False, device: Any = None,
                        hyper_parameters: Any = None, data: Any = None, validation_data: Any = None,
                        epochs: Any = 1, batch_size: Any = None) -> None:
    """InvalidInput (or NotFound for `resume`) naming the first bad argument; reads only, writes nothing."""
    check_name(run_name, "run_name", allow_none=True)
    check_number(epochs, "epochs", integer=True, minimum=1)
    check_number(batch_size, "batch_size", integer=True, minimum=1, allow_none=True)
    clean_tags(hyper_parameters, "hyper_parameters")
    for name, query in (("data", data), ("validation_data", validation_data)):
        if isinstance(query, Mapping):
            check_query(query, name, fields=SAMPLE_FIELDS)
    check_device(device)
    check_resume(db, resume)


def callback_list(callbacks: Any) -> list[Any]:
    """`callbacks` as a list: None, one Keras callback (e.g. `%%tdb_train --callbacks cb`) or a list of them."""
    if callbacks is None:
        return []
    items = list(callbacks) if isinstance(callbacks, (list, tuple)) else [callbacks]
    for item in items:
        if not (hasattr(item, "set_model") and hasattr(item, "on_epoch_end")):
            raise InvalidInput(f"Invalid value for argument `callbacks`: {short(item)} is not a Keras callback. "
                               "Expected a keras.callbacks.Callback or a list of them.")
    return items


def check_keras_arguments(keras_args: Mapping[str, Any], *, epochs: int, streamed: bool, resume: Any) -> None:
    """Keras' own fit arguments pass through; refuse, before training, what cannot work with the others."""
    initial = keras_args.get("initial_epoch", 0)
    check_number(initial, "initial_epoch", integer=True, minimum=0)
    if initial >= epochs:
        raise InvalidInput(f"Invalid value for argument `initial_epoch`: {initial}. It must be below epochs={epochs} "
                           "(Keras trains epochs initial_epoch .. epochs-1).")
    if initial and resume:
        raise InvalidInput("Pass either resume=... (which continues at the run's next epoch) or initial_epoch=..., "
                           "not both.")
    if streamed and keras_args.get("validation_split"):
        raise InvalidInput("validation_split slices arrays, and this data is streamed from TensorDB; pass "
                           "validation_data={...} (a query of held-out samples) instead.")
