"""`tensorlab db fsck`: find and remove what killed writers left, and name what is damaged.

The next save or import already collects the leftovers of writers it can prove dead (pending_writes.py,
imports.py); fsck does the same on demand and then sweeps the whole database for anything older than the
ledgers (leftovers of versions before them): GridFS chunks and payload files that no document names,
temporaries of killed file writes, parameter versions that never completed. Unlike the everyday reads,
this reads every payload document once: it is the one place that may cost what the history costs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from .blobstore import BUCKET, PAYLOAD_FILES
from .parameters import SAVE_WRITE

TEMPORARY_GRACE_S = 3600.0  # a temporary this old cannot belong to a write still running


@dataclass
class FsckReport:
    dead_writes: int = 0
    rolled_back_imports: int = 0
    incomplete_versions: int = 0
    orphan_chunks: int = 0
    orphan_files: int = 0
    temporaries: int = 0
    stale_counts: int = 0
    missing_files: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """Nothing was left over and nothing is damaged."""
        return not (self.dead_writes or self.rolled_back_imports or self.incomplete_versions or self.orphan_chunks
                    or self.orphan_files or self.temporaries or self.stale_counts or self.missing_files)

    def lines(self) -> list[str]:
        missing = ", ".join(self.missing_files[:5]) + (" ..." if len(self.missing_files) > 5 else "")
        return [f"writes of dead processes collected: {self.dead_writes}",
                f"imports of dead processes rolled back: {self.rolled_back_imports}",
                f"parameter versions that never completed: {self.incomplete_versions}",
                f"GridFS chunks no file names: {self.orphan_chunks}",
                f"payload files no document names: {self.orphan_files}",
                f"temporaries of killed file writes: {self.temporaries}",
                f"sample count documents that disagreed with the catalog: {self.stale_counts}",
                f"payload files missing (restore them from a copy): {len(self.missing_files)}"
                + (f" [{missing}]" if self.missing_files else "")]


def fsck(db: Any, repair: bool = True) -> FsckReport:
    """Check (and with `repair`, clean) the study's imports and versions and the database's payloads."""
    report = FsckReport()
    blobs, parameters = db.blobs, db.parameters
    if repair:
        report.dead_writes = parameters.collect_dead_saves()
        report.rolled_back_imports = len(db.data.collect_dead_imports() or [])
    writing = {record.get("version") for record in blobs.pending.collection.find({"kind": SAVE_WRITE})}
    for version in list(parameters.collection.find({"study": db.study, "complete": False}, {"_id": 1})):
        if version["_id"] not in writing:  # no live save owns it: a leftover from before the ledger
            report.incomplete_versions += 1
            if repair:
                parameters.discard_incomplete(version["_id"])
    report.stale_counts = db.data.counts.refresh(db.data.catalog.entries, write=repair)
    _sweep_gridfs(db.db, blobs, report, repair)
    _sweep_files(db.db, blobs, report, repair)
    return report


def _sweep_gridfs(database: Any, blobs: Any, report: FsckReport, repair: bool) -> None:
    files = {doc["_id"] for doc in database[f"{BUCKET}.files"].find({}, {"_id": 1})}
    pending = {record.get("file_id") for record in blobs.pending.collection.find({})}
    for file_id in database[f"{BUCKET}.chunks"].distinct("files_id"):
        if file_id not in files and file_id not in pending:
            chunks = database[f"{BUCKET}.chunks"]
            report.orphan_chunks += chunks.count_documents({"files_id": file_id})
            if repair:
                chunks.delete_many({"files_id": file_id})


def _sweep_files(database: Any, blobs: Any, report: FsckReport, repair: bool) -> None:
    store = blobs.local_files
    if store is None:
        return
    listed = {str(doc["_id"]) for doc in database[PAYLOAD_FILES].find({}, {"_id": 1})}
    pending = {str(record.get("file_id")) for record in blobs.pending.collection.find({})}
    on_disk = set(store.names())
    for name in on_disk - listed - pending:
        report.orphan_files += 1
        if repair:
            store.delete(name)
    report.missing_files = sorted(listed - on_disk)
    for temporary in store.temporaries():
        if time.time() - temporary.stat().st_mtime > TEMPORARY_GRACE_S:
            report.temporaries += 1
            if repair:
                temporary.unlink(missing_ok=True)
