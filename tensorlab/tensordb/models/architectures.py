"""Model architectures: a Keras JSON config (safe to load, no code) or Python source kept as text.

Unlike the seeds, nothing from the database is executed unless the caller passes `trust=True`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from ...errors import InvalidInput, NotFound, UnsafeOperation
from ...validation import check_query, clean_tags
from ...validation_values import check_name
from ..documents.scope import Scope

ARCHITECTURES = "architectures"
KERAS_JSON = "keras_json"
PYTHON_SOURCE = "python_source"


def _is_keras_model(value: Any) -> bool:
    return hasattr(value, "to_json") and hasattr(value, "get_weights")


class ArchitectureStore:
    def __init__(self, scope: Scope) -> None:
        self._scope = scope

    @property
    def collection(self) -> Any:
        return self._scope.collection(ARCHITECTURES)

    def save(self, model_or_code: Any, tags: Mapping[str, Any] | None = None, name: str | None = None) -> Any:
        """Store a Keras model's config or Python source text; returns the architecture id."""
        tags, name = clean_tags(tags), check_name(name, "name", allow_none=True)
        doc: dict[str, Any] = {"study": self._scope.study, "tags": tags, "created": datetime.now(timezone.utc)}
        if _is_keras_model(model_or_code):
            doc.update(kind=KERAS_JSON, config=model_or_code.to_json(), name=name or model_or_code.name,
                       parameters=int(model_or_code.count_params()) if model_or_code.built else None)
        elif isinstance(model_or_code, str):
            if not model_or_code.strip():
                raise InvalidInput("Architecture source is empty; pass a Keras model or non-empty Python source.")
            doc.update(kind=PYTHON_SOURCE, source=model_or_code, name=name or "source")
        else:
            raise InvalidInput(f"`model_or_code` must be a Keras model or Python source text; got "
                               f"{type(model_or_code).__name__}.")
        return self.collection.insert_one(doc).inserted_id

    def find(self, query: Any = None) -> dict[str, Any]:
        """The newest architecture document matching `query`."""
        doc = self.collection.find_one(self._scope.scoped(check_query(query)), sort=[("created", -1), ("_id", -1)])
        if doc is None:
            raise NotFound(f"No architecture matches {query!r} in study {self._scope.study!r}.")
        return doc

    def load(self, query: Any = None, trust: bool = False) -> Any:
        """A Keras model rebuilt from config; for source, the text (or, with trust=True, the model it builds)."""
        doc = self.find(query)
        if doc["kind"] == KERAS_JSON:
            return model_from_config(doc)
        if not trust:
            return doc["source"]
        return build_from_source(doc["source"], trust=True)


def model_from_config(doc: Mapping[str, Any]) -> Any:
    """Rebuild a stored Keras config, or InvalidInput saying why it cannot be (bad JSON, unknown layer)."""
    what = f"Architecture {doc.get('_id')} ({doc.get('name')!r})"
    try:
        json.loads(doc["config"])
    except (TypeError, ValueError) as error:
        raise InvalidInput(f"{what} holds a config that is not valid JSON ({error}). Save it again from the "
                           "model: db.save_model_architecture(model).") from None
    import keras

    try:
        return keras.models.model_from_json(doc["config"])
    except (TypeError, ValueError, KeyError, AttributeError) as error:
        raise InvalidInput(f"{what} cannot be rebuilt by Keras: {str(error)[:300]}. A custom layer must be "
                           "importable and registered (keras.saving.register_keras_serializable) before loading; "
                           "or store the architecture as Python source.") from None


def build_from_source(source: str, trust: bool = False) -> Any:
    """Run model-building source (defining `build_model()` or a `model` variable) and return the model."""
    if not trust:
        raise UnsafeOperation("This architecture is Python source; running it executes code from the database. "
                              "Pass trust=True only for sources you trust.")
    namespace: dict[str, Any] = {"__name__": "tensorlab_architecture"}
    exec(compile(source, "<tensorlab architecture>", "exec"), namespace)  # noqa: S102 - explicit opt-in above
    if callable(namespace.get("build_model")):
        return namespace["build_model"]()
    if "model" in namespace:
        return namespace["model"]
    raise InvalidInput("Architecture source defines neither `build_model()` nor `model`.")


def config_summary(config_json: str) -> dict[str, Any]:
    """Layer count and class names of a Keras JSON config, for tables and panels."""
    config = json.loads(config_json)
    layers = config.get("config", {}).get("layers", [])
    return {"class_name": config.get("class_name"), "layers": [layer.get("class_name") for layer in layers]}
