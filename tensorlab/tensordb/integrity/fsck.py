"""`tensorlab db fsck`: find and remove what killed writers left, and name what is damaged.

The next save or import already collects the leftovers of writers it can prove dead (payloads/pending_writes.py,
data/imports.py); fsck does the same on demand and then sweeps the whole database for anything older than the
ledgers (leftovers of versions before them): GridFS chunks and payload files that no document names,
temporaries of killed file writes, parameter versions that never completed. It also reads every payload
the study names (payload files, GridFS blobs and inline sample chunks) and checks it against the CRC-32 its
document records (a parameter blob without one: against its SHA-256 name), and names every damaged one; a
damaged payload is never deleted (restore it from a copy). Unlike the everyday reads, this reads every
payload once: it is the one place that may cost what the history costs. A study being copied or imported
is left to that transfer: only named, its payloads still checked.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ...errors import IntegrityError
from ..documents.build_markers import STATE
from ..documents.transfer_marker import find_marker, not_ready
from ..models.parameters import SAVE_WRITE
from ..payloads import codec
from ..payloads.blobstore import BUCKET, PAYLOAD_FILES
from ..transfer.study_copy import payload_ids

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
    payloads_checked: int = 0
    damaged: list[str] = field(default_factory=list)  # "<payload> (<where>): <what is wrong>"
    transfer: str | None = None  # the study is being copied or imported: what StudyNotReady says

    @property
    def clean(self) -> bool:
        """Nothing was left over and nothing is damaged."""
        return not (self.dead_writes or self.rolled_back_imports or self.incomplete_versions or self.orphan_chunks
                    or self.orphan_files or self.temporaries or self.stale_counts or self.missing_files
                    or self.damaged or self.transfer)

    @property
    def needs_attention(self) -> bool:
        """What a repair cannot fix: damaged or missing payloads, an unfinished transfer."""
        return bool(self.damaged or self.missing_files or self.transfer)

    def lines(self) -> list[str]:
        missing = ", ".join(self.missing_files[:5]) + (" ..." if len(self.missing_files) > 5 else "")
        lines = [f"being copied or imported: {self.transfer}"] if self.transfer else []
        return lines + [f"writes of dead processes collected: {self.dead_writes}",
                f"imports of dead processes rolled back: {self.rolled_back_imports}",
                f"parameter versions that never completed: {self.incomplete_versions}",
                f"GridFS chunks no file names: {self.orphan_chunks}",
                f"payload files no document names: {self.orphan_files}",
                f"temporaries of killed file writes: {self.temporaries}",
                f"sample count documents that disagreed with the catalog: {self.stale_counts}",
                f"payload files missing (restore them from a copy): {len(self.missing_files)}"
                + (f" [{missing}]" if self.missing_files else ""),
                f"payloads checked against their checksum: {self.payloads_checked}",
                f"payloads damaged (kept; restore them from a copy or re-import the item): {len(self.damaged)}",
                *(f"  DAMAGED {entry}" for entry in self.damaged)]


def fsck(db: Any, repair: bool = True) -> FsckReport:
    """Check (and with `repair`, clean) the study's imports and versions and the database's payloads."""
    report = FsckReport()
    blobs, parameters = db.blobs, db.parameters
    transfer = find_marker(db.db[STATE], db.study)
    if transfer is not None:  # its documents are not all there yet: nothing of the study is judged or changed
        report.transfer = str(not_ready(transfer, db.db_name, db.study))
    else:
        if repair:
            report.dead_writes = parameters.collect_dead_saves()
            report.rolled_back_imports = len(db.data.collect_dead_imports() or [])
        writing = {record.get("version") for record in blobs.pending.live({"kind": SAVE_WRITE})}
        for version in list(parameters.collection.find({"study": db.study, "complete": False}, {"_id": 1})):
            if version["_id"] not in writing:  # no live save owns it: a leftover from before the ledger
                report.incomplete_versions += 1
                if repair:
                    parameters.discard_incomplete(version["_id"])
        report.stale_counts = db.data.counts.refresh(db.data.catalog.entries, write=repair)
    _sweep_gridfs(db.db, blobs, report, repair)
    _sweep_files(db.db, blobs, report, repair)
    _check_payloads(db, report)
    return report


def _check_payloads(db: Any, report: FsckReport) -> None:
    """Every payload the study names, against the CRC-32 recorded for it (damaged ones are named, never deleted)."""
    expected: dict[Any, int | None] = {}  # payload -> the CRC-32 the sample chunk naming it records
    for chunk in db.db["sample_chunk_data"].find({"study": db.study}):
        for part in ("x", "y"):
            packed = chunk.get(part) or {}
            if "payload" in packed:
                report.payloads_checked += 1
                if packed.get("crc32") is not None and codec.checksum(bytes(packed["payload"])) != packed["crc32"]:
                    report.damaged.append(f"sample chunk {chunk['_id']} ({part}, inline): checksum mismatch")
            elif packed.get("file") is not None:
                expected[packed["file"]] = packed.get("crc32")
    missing = set(report.missing_files)
    for file_id in dict.fromkeys([*payload_ids(db.db, db.study), *expected]):
        if str(file_id) in missing:
            continue  # already named as missing
        problem = _payload_problem(db.blobs, file_id, expected.get(file_id))
        report.payloads_checked += 1
        if problem is not None:
            report.damaged.append(f"{file_id} ({_where(db.blobs, file_id)}): {problem}")


def _payload_problem(blobs: Any, file_id: Any, expected_crc: int | None) -> str | None:
    """What is wrong with one stored payload, or None."""
    try:
        found = blobs.stored(file_id)
        if found is None:
            return "missing (no payload document names it)"
        doc, payload = found
        crc = (doc.get("metadata") or {}).get("crc32", expected_crc)
        if crc is not None:
            return None if codec.checksum(payload) == crc else "checksum mismatch"
        if (doc.get("metadata") or {}).get("dtype") is not None and isinstance(file_id, str) and len(file_id) == 64:
            blobs.get_array(file_id)  # a parameter blob without a CRC: its name is its content's SHA-256
    except IntegrityError as error:
        return str(error)
    return None


def _where(blobs: Any, file_id: Any) -> str:
    if blobs.local_files is not None and blobs.local_files.exists(str(file_id)):
        return f"payload file {blobs.local_files.path(str(file_id))}"
    return f"GridFS bucket {BUCKET!r}"


def _sweep_gridfs(database: Any, blobs: Any, report: FsckReport, repair: bool) -> None:
    files = {doc["_id"] for doc in database[f"{BUCKET}.files"].find({}, {"_id": 1})}
    pending = {record.get("file_id") for record in blobs.pending.live()}
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
    pending = {str(record.get("file_id")) for record in blobs.pending.live()}
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
