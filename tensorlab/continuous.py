"""Continuous learning: evaluate new parameter versions, move a "deployed" pointer to the best, serve it.

The three roles of the seeds' workflow — the trainer keeps optimising, the evaluator scores each new
version, the deployment keeps pulling the best — share nothing but the database, so they can run in
threads of one notebook or on different machines.
"""

from __future__ import annotations

import threading
from typing import Any

from .errors import InvalidInput
from .keras_weights import apply_weights
from .validation import check_query


def _model_for(db: Any, version: dict) -> Any:
    if version.get("architecture") is None:
        raise InvalidInput(f"Parameter version {version['_id']} has no architecture; save it with architecture=...")
    model = db.architectures.load({"_id": version["architecture"]})
    apply_weights(model, db.parameters.load(version))
    return model


def evaluate_new_versions(db: Any, query: dict | None, validation: dict, metric: str = "accuracy",
                          loss: str = "sparse_categorical_crossentropy") -> int:
    """Score every version matching `query` that has no `eval_<metric>` yet on the validation query."""
    field = f"eval_{metric}"
    x, y = db.find_data(validation)
    scored = 0
    for version in db.parameters.find_docs({"$and": [check_query(query), {f"metrics.{field}": {"$exists": False}}]}):
        model = _model_for(db, version)
        model.compile(loss=loss, metrics=[metric])
        value = float(model.evaluate(x, y, verbose=0, return_dict=True)[metric])
        db.parameters.record_evaluation(version["_id"], {field: value}, {"evaluated": True})
        scored += 1
    return scored


def find_best_model(db: Any, query: dict | None = None, metric: str = "eval_accuracy", mode: str = "auto") -> dict:
    """The best parameter version by `metric` (a metrics field), e.g. the evaluator's eval_accuracy."""
    return db.parameters.best(query, metric, mode)


def deploy_best(db: Any, name: str, query: dict | None = None, metric: str = "eval_accuracy",
                mode: str = "auto") -> dict:
    """Point deployment `name` at the best version; returns the pointer document."""
    best = find_best_model(db, query, metric, mode)
    return db.deployments.point(name, best["_id"], metric, best["metrics"].get(metric))


class Predictor:
    """Serves deployment `name`: reloads the model whenever the pointer moves."""

    def __init__(self, db: Any, name: str) -> None:
        self.db, self.name = db, name
        self._lock = threading.Lock()
        self._loaded: Any = None
        self._model: Any = None

    def pointer(self) -> dict:
        return self.db.deployments.get(self.name)

    def model(self) -> Any:
        pointer = self.pointer()
        with self._lock:
            if pointer["parameters"] != self._loaded:
                self._model = _model_for(self.db, self.db.parameters.find_doc({"_id": pointer["parameters"]}))
                self._loaded = pointer["parameters"]
            return self._model

    @property
    def version(self) -> Any:
        return self._loaded

    def predict(self, x: Any) -> Any:
        return self.model().predict(x, verbose=0)
