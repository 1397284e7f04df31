"""Deployment pointers: a named pointer per study to the parameter version being served.

Moving the pointer is one write by `_id`, so a `Predictor` polling it on another machine sees the new
version on its next read and nothing else has to coordinate.
"""

from __future__ import annotations

from typing import Any

from ...clock import utc_now
from ...errors import InvalidInput, NotFound
from ..documents.by_id import id_key
from ..documents.scope import Scope

DEPLOYMENTS = "deployments"


class DeploymentStore:
    def __init__(self, scope: Scope) -> None:
        self._scope = scope

    @property
    def collection(self) -> Any:
        return self._scope.collection(DEPLOYMENTS)

    def _id(self, name: str) -> str:
        if not isinstance(name, str) or not name:
            raise InvalidInput(f"A deployment is named by a non-empty string; got {name!r}.")
        return id_key(self._scope.study, name)

    def point(self, name: str, parameters: Any, metric: str, value: Any) -> dict[str, Any]:
        """Point deployment `name` at parameter version `parameters`; returns the pointer document."""
        pointer = {"study": self._scope.study, "parameters": parameters, "metric": metric, "value": value,
                   "at": utc_now()}
        self.collection.update_one({"_id": self._id(name)}, {"$set": pointer}, upsert=True)
        return {"_id": self._id(name), **pointer}

    def get(self, name: str) -> dict[str, Any]:
        doc = self.collection.find_one({"_id": self._id(name)})
        if doc is None:
            raise NotFound(f"Nothing is deployed as {name!r} in study {self._scope.study!r}; call deploy_best first.")
        return doc

    def drop_study(self) -> int:
        return self.collection.delete_many({"study": self._scope.study}).deleted_count
