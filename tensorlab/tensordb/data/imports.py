"""The commit marker of each data import: an import is visible only once its marker says so.

An import writes many documents (payloads, chunk descriptions, one index document per sample); a
process killed half-way used to leave part of them readable (26,150 of 150,000 samples). Its marker
(`sample_imports`, `_id` = the import id) is written first with `committed: false` and flipped last,
one document write, atomic on every server. Readers drop chunks of uncommitted imports (one lookup
per import they meet, cached once committed). The next import of the study rolls back imports whose
writer process is gone (same test as for runs, documents/run_liveness.py); their markers stay, uncommitted.
Imports written before markers existed have none and stay visible.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ...clock import as_utc, utc_now
from ...errors import TensorLabError
from ..documents.run_liveness import process_gone, this_process
from ..documents.scope import Scope

IMPORTS = "sample_imports"
SWEEP_AFTER_S = 60.0  # a second rollback this long after the first catches writes that were in flight


class ImportLedger:
    def __init__(self, scope: Scope, listed: Callable[[Any], bool]) -> None:
        self._scope = scope
        self._listed = listed  # whether the study's catalog lists an import (sample_catalog.py)
        self._committed: set[Any] = set()

    @property
    def collection(self) -> Any:
        return self._scope.collection(IMPORTS)

    def begin(self, import_id: Any, samples: int, count_docs: list[str]) -> None:
        """`count_docs`: the sample-count documents the import adds to, so a rollback or a later collection
        can settle them without the import's own description (sample_counts.py)."""
        now = utc_now()
        self.collection.insert_one({"_id": import_id, "study": self._scope.study, "committed": False,
                                    "samples": samples, "count_docs": count_docs, "started": now, "heartbeat": now,
                                    **this_process()})

    def count_docs(self, import_id: Any) -> list[str]:
        return (self.collection.find_one({"_id": import_id}, {"count_docs": 1}) or {}).get("count_docs") or []

    def beat(self, import_id: Any) -> None:
        """The import is still writing: other hosts judge its writer alive by this (documents/run_liveness.py)."""
        self.collection.update_one({"_id": import_id}, {"$set": {"heartbeat": utc_now()}})

    def commit(self, import_id: Any, publish: Callable[[], None]) -> None:
        """`publish` lists the import in the catalog (what readers go by); the marker flips after it, so a
        process killed between the two leaves a listed import that the next collection marks committed."""
        marker = self.collection.find_one({"_id": import_id}, {"rolled_back": 1})
        if marker is None or marker.get("rolled_back") is not None:
            raise TensorLabError(f"Import {import_id} was rolled back while it was written (its writer looked dead: "
                              "no heartbeat for a minute); nothing of it is visible. Import the data again.")
        publish()
        self.collection.update_one({"_id": import_id}, {"$set": {"committed": True, "committed_at": utc_now()}})
        self._committed.add(import_id)

    def rolled_back(self, import_id: Any) -> None:
        """Keep the marker, uncommitted for good: a write of the dead process that the server applies after
        the rollback (it was in flight when the process died) can then never become visible."""
        self.collection.update_one({"_id": import_id}, {"$set": {"rolled_back": utc_now()}})

    def visible(self, import_ids: Iterable[Any]) -> set[Any]:
        """The imports among `import_ids` whose samples may be read: committed, or from before markers."""
        shown = set()
        for import_id in set(import_ids):
            if import_id in self._committed:
                shown.add(import_id)
                continue
            marker = self.collection.find_one({"_id": import_id}, {"committed": 1})
            if marker is None or marker.get("committed") or self._listed(import_id):
                shown.add(import_id)
                if marker is not None:
                    self._committed.add(import_id)
        return shown

    def collect_dead(self, rollback: Callable[[Any], None], listed: Callable[[Any, list[str]], None]) -> list[Any]:
        """Roll back this study's uncommitted imports whose writer is gone, and once more a minute later for
        writes that were still in flight; `listed` finishes the commit of those killed just after listing.
        Returns the ids rolled back now."""
        done = []
        for marker in self.collection.find({"study": self._scope.study, "committed": False, "swept": {"$ne": True}}):
            rolled = marker.get("rolled_back")
            if rolled is None and self._listed(marker["_id"]):
                listed(marker["_id"], marker.get("count_docs") or [])
                self.collection.update_one({"_id": marker["_id"]}, {"$set": {"committed": True}})
            elif rolled is None and process_gone(marker):
                rollback(marker["_id"])
                done.append(marker["_id"])
            elif rolled is not None and (utc_now() - as_utc(rolled)).total_seconds() > SWEEP_AFTER_S:
                rollback(marker["_id"])
                self.collection.update_one({"_id": marker["_id"]}, {"$set": {"swept": True}})
        return done

    def drop_study(self) -> None:
        self.collection.delete_many({"study": self._scope.study})
