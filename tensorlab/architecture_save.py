"""Storing a model's architecture so that `Model.from_db` can rebuild it, and rebuilding it with weights.

Subclassed models are how people write GANs and wrappers (a layer passed to `__init__`). Keras can only
serialise those with `get_config()`, and only rebuild them where the class is registered; a raw
`NotImplementedError` from `to_json()` used to stop training before it began. Now training never
depends on it: a model whose architecture cannot be stored trains and stores its weights, with a
warning saying what restoring needs. Only pushing a job refuses such a model, since a worker could
not rebuild it.

A subclassed model is built by its first batch, after `fit` began; its rebuilt copy is unbuilt and has
no weights to set. So every run records its model's build config, and `load_version` builds a rebuilt
model from it (or from `input_shape`) before setting weights.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .errors import InvalidInput, NotFound
from .keras_weights import apply_weights

RESTORE_FIX = ("To store and restore it, register the class with @keras.saving.register_keras_serializable() and "
               "give it get_config() returning every __init__ argument (a layer as "
               "keras.saving.serialize_keras_object(layer)) and, for layer arguments, a from_config() that "
               "deserialises them (keras.saving.deserialize_keras_object).")


def _reason(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text[:240]}{'…' if len(text) > 240 else ''}"


def _custom_classes(node: Any, found: list[str]) -> list[str]:
    """Class names in a Keras config that Keras itself does not provide (its `module` is not keras')."""
    if isinstance(node, Mapping):
        if "class_name" in node and "config" in node and not str(node.get("module") or "").startswith("keras"):
            found.append(str(node.get("registered_name") or node["class_name"]))
        for key, value in node.items():
            if key not in ("compile_config", "build_config"):
                _custom_classes(value, found)
    elif isinstance(node, list):
        for value in node:
            _custom_classes(value, found)
    return found


def architecture_problem(model: Any) -> tuple[str | None, str | None]:
    """(config JSON or None, why it cannot be stored or rebuilt here, or None when it can)."""
    try:
        text = model.to_json()
    except (NotImplementedError, TypeError, ValueError, AttributeError, KeyError) as error:
        return None, _reason(error)
    config = json.loads(text)
    if not _custom_classes(config, []):
        return text, None
    import keras

    config.pop("build_config", None)  # rebuilt unbuilt: no weights are made just to check
    config.pop("compile_config", None)
    try:
        keras.saving.deserialize_keras_object(config)
    except Exception as error:  # noqa: BLE001 - whatever Keras raises, the answer is "cannot be rebuilt"
        return text, _reason(error)
    return text, None


def save_architecture(db: Any, model: Any, name: str | None = None, tags: dict | None = None) -> Any:
    """The stored architecture's id; None, with a warning naming the fix, when the model cannot be stored."""
    text, problem = architecture_problem(model)
    if text is None:
        warnings.warn(f"TensorLab: the architecture of model {model.name!r} cannot be stored ({problem}). Training "
                      "goes on and its weights are stored with the run, but Model.from_db cannot rebuild it. "
                      + RESTORE_FIX, RuntimeWarning, stacklevel=3)
        return None
    if problem is not None:
        warnings.warn(f"TensorLab: the architecture of model {model.name!r} is stored, but Keras cannot rebuild it "
                      f"here ({problem}); Model.from_db will fail until it can. " + RESTORE_FIX, RuntimeWarning,
                      stacklevel=3)
    return db.save_model_architecture(model, tags, name=name)


def check_pushable(model: Any, what: str = "model") -> None:
    """InvalidInput naming the fix when a worker could not rebuild `model` from its stored architecture."""
    _, problem = architecture_problem(model)
    if problem is not None:
        raise InvalidInput(f"`{what}` ({type(model).__name__}) cannot be pushed as a job: a worker rebuilds the "
                           f"model from its stored architecture, and Keras cannot store or rebuild this one "
                           f"({problem}). {RESTORE_FIX} Or push model-building code (%%tdb_push_job with a cell "
                           "defining build_model()) for workers started with --allow-code. Nothing was pushed.")


def _stored_build_config(db: Any, version: Mapping[str, Any]) -> dict | None:
    """The build config recorded by the run that saved `version` (DBLogger stores it once the model is built)."""
    if version.get("run") is None:
        return None
    try:
        return db.run_store.resolve(version["run"]).get("build_config")
    except NotFound:
        return None


def build_model(model: Any, build_config: Mapping[str, Any] | None = None,
                input_shape: Sequence[int] | None = None) -> None:
    """Build an unbuilt Keras model from a build config, or by calling it on a zero batch of `input_shape`
    (one sample's shape, as in keras.Input(shape))."""
    if build_config and not model.weights:
        try:
            model.build_from_config(dict(build_config))
        except Exception:  # noqa: BLE001 - some subclassed models only build by being called; tried below
            pass
        if not input_shape and build_config.get("input_shape"):
            input_shape = list(build_config["input_shape"])[1:]
    if input_shape is not None and not model.weights:
        model(np.zeros((1, *[int(n) for n in input_shape]), dtype="float32"))


def load_version(db: Any, model: Any, version: Mapping[str, Any], input_shape: Sequence[int] | None = None) -> None:
    """Set the weights of a parameter version into `model`, building it first when it is not built yet."""
    arrays = db.parameters.load(version)
    if len(model.weights) != len(arrays):
        build_model(model, _stored_build_config(db, version), input_shape)
        if not model.weights and arrays:
            raise InvalidInput(f"Model {model.name!r} is not built, so it has no weights to set, and no input shape "
                               "is stored with this parameter version's run. Pass input_shape=(...) (one sample's "
                               "shape) to Model.from_db, or build the model by calling it on a batch first.")
    apply_weights(model, arrays)
