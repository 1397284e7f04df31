"""`Model.fit(..., mixed_precision=True)`: train the model in mixed precision, and leave nothing changed behind.

Setting Keras' global policy changes only layers built afterwards, so the model being trained stayed
float32 while the policy stayed `mixed_float16` for everything the notebook built next. Here the model
is rebuilt from its config with every float32 layer policy made `mixed_float16` (variables stay float32,
so weights and checkpoints fit the original architecture), compiled from its compile config (Keras then
adds loss scaling), trained, and its weights are copied back into the caller's model; the global policy
is the caller's throughout. A model Keras cannot rebuild from its config is refused, naming the fix.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from .architecture_save import build_model
from .errors import InvalidInput

MIXED = "mixed_float16"


def _mixed(node: Any) -> Any:
    """A Keras config with every float32 DTypePolicy made mixed_float16 (input dtypes, plain strings, stay)."""
    if isinstance(node, dict):
        if node.get("class_name") == "DTypePolicy" and (node.get("config") or {}).get("name") == "float32":
            return {**node, "config": {**node["config"], "name": MIXED}}
        return {key: _mixed(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_mixed(value) for value in node]
    return node


def serialised_config(model: Any, option: str, rebuilt: str, fix: str) -> dict[str, Any]:
    """The model's serialised config, for a fit `option` that trains a copy of it `rebuilt` some other way; or
    InvalidInput naming the `fix` (called before anything is stored)."""
    import keras

    try:
        return keras.saving.serialize_keras_object(model)
    except (NotImplementedError, TypeError, ValueError) as error:
        raise InvalidInput(f"{option} trains a copy of model {model.name!r} rebuilt {rebuilt}, and Keras cannot "
                           f"serialise this model ({type(error).__name__}). {fix}") from None


def _config(model: Any) -> dict[str, Any]:
    return serialised_config(model, "mixed_precision=True", f"under the '{MIXED}' policy",
                             f"Build the model after keras.mixed_precision.set_global_policy('{MIXED}') and fit it "
                             "without mixed_precision=True (then set the policy back to 'float32').")


def check_mixable(model: Any, mixed: bool) -> None:
    """Refuse, before training, a mixed-precision fit of a model that cannot be rebuilt under the policy."""
    if mixed and model.dtype_policy.name != MIXED:
        _config(model)


def mixed_copy(model: Any) -> Any:
    """`model` rebuilt under mixed_float16 with its weights and compile settings; the global policy is unchanged."""
    return rebuilt_copy(model, _mixed(_config(model)), MIXED)


def rebuilt_copy(model: Any, config: dict[str, Any], policy: str | None = None) -> Any:
    """`model` rebuilt from `config` (its serialised config, changed) with its weights and compile settings,
    under the global dtype `policy` while it is built (None: as it is); the global policy is left as it was."""
    import keras

    config = dict(config)
    config.pop("compile_config", None)
    previous = keras.config.dtype_policy()
    if policy is not None:
        keras.config.set_dtype_policy(policy)  # sub-layers a subclassed model makes in __init__ take it
    try:
        copy = keras.saving.deserialize_keras_object(config)
    finally:
        keras.config.set_dtype_policy(previous)
    if model.weights:
        build_model(copy, model.get_build_config() if model.built else None)
        copy.set_weights(model.get_weights())
    compile_config = model.get_compile_config() if getattr(model, "compiled", False) else None
    if compile_config:
        copy.compile_from_config(compile_config)
    return copy


def copy_back(trained: Any, model: Any) -> None:
    """The trained copy's weights into the caller's model (building it first if it never was)."""
    if not trained.weights:
        return
    if not model.weights:
        build_model(model, trained.get_build_config() if trained.built else None)
    model.set_weights(trained.get_weights())


@contextlib.contextmanager
def precision(model: Any, mixed: bool) -> Iterator[Any]:
    """Yield the Keras model to train: `model` itself, or its mixed-precision copy whose weights (even after an
    error or a stop) are copied back into `model` at the end. The global dtype policy is never changed."""
    if not mixed or model.dtype_policy.name == MIXED:
        yield model
        return
    copy = mixed_copy(model)
    try:
        yield copy
    finally:
        copy_back(copy, model)
