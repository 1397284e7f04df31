"""Environments and sources, each stored once by content hash: a run names them, never holds them.

Why apart from the run: a package list is hundreds of entries and a cell, script or git diff up to 256 KB,
while the runs list, the lab's side bar and `db.runs()` read whole run documents. Thousands of runs made in
one environment, or from one cell, share one document (Sacred de-duplicates its source files the same way).
Both collections carry `study`, so copies, exports and `drop_study` treat them like any study document.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from pymongo.errors import DuplicateKeyError

from ...clock import utc_now
from ...errors import InvalidInput
from ...validation_values import clean_document
from ..documents.by_id import id_key
from ..documents.scope import Scope

ENVIRONMENTS = "environments"
SOURCES = "sources"


def environment_digest(environment: Mapping[str, Any]) -> str:
    """SHA-256 hex of the environment as sorted JSON (its sorted package list, Python version and implementation):
    the same software gives the same digest on every machine."""
    return hashlib.sha256(json.dumps(environment, sort_keys=True, default=str).encode()).hexdigest()


def text_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class ProvenanceRecords:
    """`environments` and `sources` of one study; each write is an insert whose `_id` is derived from the content,
    so a second writer of the same content (another run, a retry) changes nothing."""

    def __init__(self, scope: Scope) -> None:
        self._scope = scope
        self._known: set[str] = set()  # digests this process stored already: later runs skip the round trip

    def _insert_once(self, collection: str, digest: str, fields: Mapping[str, Any]) -> None:
        key = f"{collection}:{digest}"
        if key in self._known:
            return
        doc = clean_document({"_id": id_key(self._scope.study, digest), "study": self._scope.study,
                              "sha256": digest, "created": utc_now(), **fields}, collection)
        try:
            self._scope.collection(collection).insert_one(doc)
        except DuplicateKeyError:
            pass  # stored before, by this or another process: the content is the same
        self._known.add(key)

    def put_environment(self, environment: Mapping[str, Any]) -> str:
        """Store an environment (`python`, `implementation`, `packages`: sorted `name==version` strings) once;
        returns its digest, which runs keep as `provenance.environment`."""
        if not isinstance(environment, Mapping) or not isinstance(environment.get("packages"), list):
            raise InvalidInput("An environment is a dict with `packages`: a list of 'name==version' strings.")
        digest = environment_digest(environment)
        self._insert_once(ENVIRONMENTS, digest, environment)
        return digest

    def put_text(self, text: str, kind: str, digest: str | None = None) -> str:
        """Store a source text (`kind`: 'code' or 'diff') once; returns its SHA-256, which runs keep."""
        if not isinstance(text, str):
            raise InvalidInput(f"A source is text; got {type(text).__name__}.")
        digest = digest or text_digest(text)
        self._insert_once(SOURCES, digest, {"kind": kind, "text": text, "bytes": len(text.encode("utf-8", "replace"))})
        return digest

    def environment(self, digest: str | None) -> dict[str, Any] | None:
        """The environment a run names (None when it names none or it is not stored)."""
        if not digest:
            return None
        return self._scope.collection(ENVIRONMENTS).find_one({"_id": id_key(self._scope.study, digest)})

    def text(self, digest: str | None) -> str | None:
        """A stored source text by its SHA-256 (None when it names none or it is not stored)."""
        if not digest:
            return None
        doc = self._scope.collection(SOURCES).find_one({"_id": id_key(self._scope.study, digest)}, {"text": 1})
        return None if doc is None else doc.get("text")

    def read(self, run: Mapping[str, Any]) -> dict[str, Any]:
        """The run document's `provenance` with its texts and environment read back in full."""
        found = dict(run.get("provenance") or {})
        if isinstance(found.get("code"), Mapping):
            found["code"] = {**found["code"], "text": self.text(found["code"].get("sha256"))}
        if isinstance(found.get("git"), Mapping):
            found["git"] = {**found["git"], "diff": self.text(found["git"].get("diff_sha256")) or ""}
        if found.get("environment"):
            found["environment"] = self.environment(found["environment"])
        return found

    def drop_study(self) -> int:
        self._known.clear()
        return sum(self._scope.collection(name).delete_many({"study": self._scope.study}).deleted_count
                   for name in (ENVIRONMENTS, SOURCES))
