"""The successive-halving sweeps of a study that still have rungs to promote (see tensorlab/halving.py).

One small document per sweep (`halving_sweeps`, `_id` = `<study>:<sweep>`) holds its plan (metric, mode,
eta, epochs per rung, number of rungs); workers read the active ones as they poll, so promotions need
no process of their own and survive any worker's death.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bson import ObjectId

from ...clock import utc_now
from ..documents.by_id import derived_id, id_key
from ..documents.scope import Scope

HALVING = "halving_sweeps"


def halving_job_id(study: str, sweep: str, rung: int, config: int) -> ObjectId:
    """The same job id for (study, sweep, rung, configuration) in every worker: a promotion is pushed once
    (two studies with a sweep of one name used to share ids, and the second's promotions were refused)."""
    return derived_id(id_key(study, sweep, rung, config))


class HalvingStore:
    def __init__(self, scope: Scope) -> None:
        self._scope = scope

    @property
    def collection(self) -> Any:
        return self._scope.collection(HALVING)

    def _id_of(self, sweep: str) -> str:
        return id_key(self._scope.study, sweep)

    def register(self, sweep: str, plan: Mapping[str, Any]) -> None:
        self.collection.insert_one({"_id": self._id_of(sweep), "study": self._scope.study, "sweep": sweep,
                                    "active": True, "created": utc_now(), **plan})

    def active(self) -> list[dict[str, Any]]:
        return list(self.collection.find({"study": self._scope.study, "active": True}))

    def get(self, sweep: str) -> dict[str, Any] | None:
        return self.collection.find_one({"_id": self._id_of(sweep)})

    def finish(self, sweep: str) -> None:
        self.collection.update_one({"_id": self._id_of(sweep)},
                                   {"$set": {"active": False, "finished": utc_now()}})
