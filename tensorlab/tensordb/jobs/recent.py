"""The newest jobs of a study, kept in small documents, so a queue panel never reads the whole history.

Ids of pushed jobs go into documents of at most `PER_DOC` ids (`_id` = `<study>:<seq>`), and a head
document holds the sequence number being filled. Reading the newest N jobs is the head, a few id
documents and the N jobs, each by `_id`. (Why not one capped array: FerretDB 1.x ignores `$push`'s
`$slice` without an error, so a capped array would grow forever.)
"""

from __future__ import annotations

from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from ..documents.build_markers import build_once, forget_built
from ..documents.by_id import id_key
from ..documents.scope import Scope

RECENT = "job_recent"
PER_DOC = 100


class RecentJobs:
    def __init__(self, scope: Scope) -> None:
        self._scope = scope
        self._checked_built = False

    @property
    def collection(self) -> Any:
        return self._scope.collection(RECENT)

    def _head_id(self) -> str:
        return id_key(self._scope.study, "head")

    def add(self, job_id: Any) -> None:
        head = self.collection.find_one({"_id": self._head_id()}) or {}
        seq = int(head.get("seq", 0))
        change = {"$addToSet": {"ids": job_id}, "$set": {"study": self._scope.study, "seq": seq}}
        identifier = id_key(self._scope.study, seq)
        try:
            doc = self.collection.find_one_and_update({"_id": identifier}, change, upsert=True,
                                                      return_document=ReturnDocument.AFTER)
        except DuplicateKeyError:  # a racing first upsert: the document exists now
            doc = self.collection.find_one_and_update({"_id": identifier}, change, return_document=ReturnDocument.AFTER)
        if len(doc["ids"]) >= PER_DOC:  # `$max`: a slower process can never move the head back
            self.collection.update_one({"_id": self._head_id()},
                                       {"$max": {"seq": seq + 1}, "$set": {"study": self._scope.study}}, upsert=True)

    def newest(self, limit: int) -> list[Any]:
        """Ids of up to `limit` most recently pushed jobs, oldest first."""
        head = self.collection.find_one({"_id": self._head_id()}) or {}
        ids: list[Any] = []
        for seq in range(int(head.get("seq", 0)), -1, -1):
            doc = self.collection.find_one({"_id": id_key(self._scope.study, seq)})
            ids[:0] = (doc or {}).get("ids", [])
            if len(ids) >= limit:
                break
        return ids[-limit:] if limit else []

    def ensure_built(self, jobs: Any) -> None:
        """A database from before this list gets it once, from its newest jobs (one read of `jobs`)."""
        if not self._checked_built:
            build_once(self._scope, RECENT, lambda: self._build(jobs))
            self._checked_built = True

    def _build(self, jobs: Any) -> None:
        if self.collection.find_one({"_id": self._head_id()}) is None:
            newest = jobs.find({"study": self._scope.study}, {"_id": 1}, sort=[("created", -1)], limit=PER_DOC)
            for job in reversed(list(newest)):
                self.add(job["_id"])

    def drop_study(self) -> None:
        self.collection.delete_many({"study": self._scope.study})
        forget_built(self._scope, RECENT)
