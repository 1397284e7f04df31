"""What DBLogger writes about a run besides its metrics: where it ran, what it is, and how it ended.

Kept apart from the callback so that the callback holds only the Keras hooks. "How it ended" matters
because a run stopped by EarlyStopping has *finished* (it did what it was asked), while one stopped by
the user has *stopped*; both used to read `stopped`.
"""

from __future__ import annotations

import platform
from typing import Any

import keras

from .errors import InvalidInput


def device_name() -> str:
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


def run_name_of(run_name: Any) -> str | None:
    """A run name; TensorLayer's order, `DBLogger(db, model)`, names the run after the model."""
    if run_name is None or (isinstance(run_name, str) and run_name):
        return run_name
    name = getattr(run_name, "name", None)
    if isinstance(run_name, keras.Model) or (hasattr(run_name, "keras_model") and isinstance(name, str)):
        return name
    raise InvalidInput(f"DBLogger's second argument is the run name (a non-empty string) or the model whose name "
                       f"the run takes; got {type(run_name).__name__} {run_name!r:.60}.")


def run_details(model: Any, params: dict | None) -> dict[str, Any]:
    """The model and software a run starts with."""
    optimizer = getattr(model, "optimizer", None)
    return {
        "optimizer": optimizer.__class__.__name__ if optimizer is not None else None,
        "parameter_count": int(model.count_params()) if model.built else None,
        "backend": keras.config.backend(), "keras_version": keras.__version__,
        "python_version": platform.python_version(), "epochs_planned": (params or {}).get("epochs"),
    }


def stop_reason(callbacks: list[Any], epoch: int) -> str:
    """Which callback set `model.stop_training`, in words (EarlyStopping says what it watched)."""
    for callback in callbacks:
        if getattr(callback, "stopped_epoch", 0):
            monitor = getattr(callback, "monitor", None)
            patience = getattr(callback, "patience", None)
            watched = f": {monitor!r} did not improve for {patience} epoch(s)" if monitor is not None else ""
            return f"{type(callback).__name__} stopped training after epoch {epoch}{watched}"
    named = [type(c).__name__ for c in callbacks if type(c).__name__ in ("TerminateOnNaN",)]
    by = named[0] if named else "a callback"
    return f"{by} set model.stop_training after epoch {epoch}"
