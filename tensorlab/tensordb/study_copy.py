"""Copy a study between any two MongoDB-protocol servers: resumable, idempotent, verified.

Why documents and payloads as they are stored (not re-encoded): the copy is exact, and the target
decides only where payloads live (files beside a managed server, GridFS elsewhere: MongoDB, Atlas).
Order: payloads first (content-addressed, named by `_id`), then primary documents, then the
study's derived lists (indexes, catalog, ready set) and build markers, so a copy killed at any point
leaves nothing that names a missing payload. Re-running inserts only what the target lacks;
verification then compares every document's content and every payload's checksum on both sides
and rewrites any document that differs (the source changed since the killed attempt).
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from bson import json_util
from pymongo.errors import BulkWriteError

from ..errors import IntegrityError, InvalidInput
from . import codec
from .build_markers import STATE

# Primary documents, in an order where what a document names is copied before it.
PRIMARY = ("architectures", "sample_imports", "sample_chunk_data", "sample_chunk_labels", "sample_chunks",
           "samples", "runs", "parameters", "log_buckets", "log_index", "logs", "jobs", "deployments", "triggers",
           "halving_sweeps")
# Lists derived from the primary documents, copied after them (so they never name what is not there yet).
DERIVED = ("sample_catalog", "sample_counts", "run_index", "parameter_index", "job_index", "job_ready", "job_recent")
INSERT_BATCH = 500
COPY_MARKER = "copy:{study}"


@dataclass
class CopyReport:
    """What a copy did and what verification found; `ok` when every count and hash matches."""

    study: str
    inserted: dict[str, int] = field(default_factory=dict)
    repaired: dict[str, int] = field(default_factory=dict)
    payloads_copied: int = 0
    payloads_verified: int = 0
    counts: dict[str, tuple[int, int]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and all(source == target for source, target in self.counts.values())

    def lines(self) -> list[str]:
        lines = [f"{name}: {target:,} of {source:,} documents" + (f" ({self.inserted.get(name, 0):,} copied now)")
                 for name, (source, target) in self.counts.items() if source or target]
        lines.append(f"payloads: {self.payloads_copied:,} copied now, {self.payloads_verified:,} verified by checksum")
        lines += [f"PROBLEM: {problem}" for problem in self.problems]
        lines.append("verified: every document and payload matches" if self.ok else "NOT verified")
        return lines


def document_hash(doc: dict[str, Any]) -> str:
    """A content hash that servers' number widths cannot change (int32 vs int64 read back as one number)."""
    text = json_util.dumps(doc, sort_keys=True, json_options=json_util.RELAXED_JSON_OPTIONS)
    return hashlib.sha256(text.encode()).hexdigest()


def insert_missing(target: Any, docs: Iterable[dict[str, Any]], query: dict[str, Any], bar: Any = None) -> int:
    """Insert the documents whose `_id` the target's `query` lacks; returns how many were inserted."""
    present = {doc["_id"] for doc in target.find(query, {"_id": 1})}
    inserted, batch = 0, []
    for doc in docs:
        if bar is not None:
            bar.update()
        if doc["_id"] not in present:
            batch.append(doc)
        if len(batch) >= INSERT_BATCH:
            inserted, batch = inserted + _insert(target, batch), []
    return inserted + _insert(target, batch)


def _insert(target: Any, docs: list[dict[str, Any]]) -> int:
    if not docs:
        return 0
    try:
        return len(target.insert_many(docs, ordered=False).inserted_ids)
    except BulkWriteError as error:  # another copy inserted some at the same moment: keep theirs
        if any(e.get("code") != 11000 for e in error.details.get("writeErrors", [])):
            raise
        return error.details.get("nInserted", 0)


def portable_metadata(doc: dict[str, Any]) -> dict[str, Any]:
    """A payload's metadata without `chunk_ids`: those name chunks of one server's GridFS only."""
    return {key: value for key, value in (doc.get("metadata") or {}).items() if key != "chunk_ids"}


def intact(doc: dict[str, Any], payload: bytes | bytearray) -> bool:
    """Whether stored bytes still match the CRC-32 their document records (true when none was recorded)."""
    expected = (doc.get("metadata") or {}).get("crc32")
    return expected is None or codec.checksum(payload) == expected


def payload_ids(source_db: Any, study: str) -> Iterator[Any]:
    """Every payload the study's documents name: parameter arrays (by digest) and large sample chunks."""
    for doc in source_db["parameters"].find({"study": study}, {"arrays.blob": 1}):
        for entry in doc.get("arrays") or []:
            yield entry["blob"]
    for doc in source_db["sample_chunk_data"].find({"study": study}, {"x.file": 1, "y.file": 1}):
        for part in ("x", "y"):
            file_id = (doc.get(part) or {}).get("file")
            if file_id is not None:
                yield file_id


def counters_and_markers(database: Any, study: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(collection, document) of the study's version counters (`parameters:<study>:<run>`) and build markers."""
    for name, mine in (("counters", lambda key: key.startswith(f"parameters:{study}:")),
                       (STATE, lambda key: key.endswith(f"-built:{study}"))):
        for doc in database[name].find({}):
            if mine(str(doc["_id"])):
                yield name, doc


def progress_bar(total: int, desc: str, progress: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="doc", file=sys.stderr, disable=not progress, leave=False)


class StudyCopy:
    """`StudyCopy(source_db, target_db).run()`: both are TensorDB connections to the same study name."""

    def __init__(self, source: Any, target: Any) -> None:
        if source.study != target.study:
            raise InvalidInput(f"Source study {source.study!r} and target study {target.study!r} differ; connect "
                               "both with the study to copy.")
        if source.client is target.client and source.db_name == target.db_name:
            raise InvalidInput("Source and target are the same database; copy to another server or database.")
        self.source, self.target, self.study = source, target, source.study
        self.report = CopyReport(self.study)

    def run(self, progress: bool = True, verify: bool = True) -> CopyReport:
        """Copy what the target lacks, then (by default) verify everything and repair what differs."""
        marker = {"_id": COPY_MARKER.format(study=self.study)}
        state = self.target.db[STATE]
        state.update_one(marker, {"$set": {"state": "copying", "source": self.source.uri,
                                           "started": datetime.now(timezone.utc)}}, upsert=True)
        self.target.blobs.collect_dead_writes()  # leftovers of a copy killed while writing a payload
        self._copy_payloads(progress)
        for name in (*PRIMARY, *DERIVED):
            self._copy_collection(name, progress)
        self._copy_counters_and_markers()
        if verify:
            self.verify(progress)
        state.update_one(marker, {"$set": {"state": "verified" if self.report.ok else "copied",
                                           "finished": datetime.now(timezone.utc)}})
        return self.report

    # -- payloads --------------------------------------------------------------------------------
    def _copy_payloads(self, progress: bool) -> None:
        ids = list(dict.fromkeys(payload_ids(self.source.db, self.study)))
        with progress_bar(len(ids), "payloads", progress) as bar:
            for file_id in ids:
                if not self.target.blobs.is_stored(file_id):
                    self._copy_payload(file_id)
                    self.report.payloads_copied += 1
                bar.update()

    def _copy_payload(self, file_id: Any) -> None:
        found = self.source.blobs.stored(file_id)
        if found is None:
            raise IntegrityError(f"Payload {file_id} is named by study {self.study!r} but missing on the source; "
                                 "run `tensorlab db fsck` there first.")
        doc, payload = found
        if not intact(doc, payload):
            raise IntegrityError(f"Payload {file_id} is corrupt on the source (checksum mismatch); nothing copied.")
        self.target.blobs.put_bytes(doc.get("filename") or str(file_id), payload, portable_metadata(doc),
                                    file_id=file_id)

    # -- documents -------------------------------------------------------------------------------
    def _copy_collection(self, name: str, progress: bool) -> None:
        query = {"study": self.study}
        source = self.source.db[name]
        with progress_bar(source.count_documents(query), name, progress) as bar:
            inserted = insert_missing(self.target.db[name], source.find(query, batch_size=INSERT_BATCH), query, bar)
        self.report.inserted[name] = self.report.inserted.get(name, 0) + inserted

    def _copy_counters_and_markers(self) -> None:
        for name, doc in counters_and_markers(self.source.db, self.study):
            self.target.db[name].replace_one({"_id": doc["_id"]}, doc, upsert=True)

    # -- verification ----------------------------------------------------------------------------
    def verify(self, progress: bool = True) -> CopyReport:
        """Every document's content hash and every payload's checksum, on both sides; differing documents
        are rewritten from the source (and counted as repaired)."""
        for name in (*PRIMARY, *DERIVED):
            self._verify_collection(name, progress)
        ids = list(dict.fromkeys(payload_ids(self.source.db, self.study)))
        with progress_bar(len(ids), "verify payloads", progress) as bar:
            for file_id in ids:
                self._verify_payload(file_id)
                bar.update()
        return self.report

    def _hashes(self, collection: Any, query: dict[str, Any]) -> dict[Any, str]:
        return {doc["_id"]: document_hash(doc) for doc in collection.find(query, batch_size=INSERT_BATCH)}

    def _verify_collection(self, name: str, progress: bool) -> None:
        query = {"study": self.study}
        source, target = self._hashes(self.source.db[name], query), self._hashes(self.target.db[name], query)
        differing = [key for key, digest in source.items() if target.get(key) != digest]
        for key in differing:
            doc = self.source.db[name].find_one({"_id": key})
            if doc is not None:
                self.target.db[name].replace_one({"_id": key}, doc, upsert=True)
        if differing:
            self.report.repaired[name] = len(differing)
            target = self._hashes(self.target.db[name], query)
        extra = set(target) - set(source)
        if extra:
            self.report.problems.append(f"{name}: {len(extra)} document(s) on the target are not on the source")
        still = [key for key, digest in source.items() if target.get(key) != digest]
        if still:
            self.report.problems.append(f"{name}: {len(still)} document(s) differ after repair")
        self.report.counts[name] = (len(source), len(target))

    def _verify_payload(self, file_id: Any) -> None:
        found = self.target.blobs.stored(file_id)
        if found is None:
            self.report.problems.append(f"payload {file_id} is missing on the target")
            return
        if not intact(*found):
            self.report.problems.append(f"payload {file_id} does not match its checksum on the target")
            return
        self.report.payloads_verified += 1


def copy_study(source: Any, target: Any, *, progress: bool = True, verify: bool = True) -> CopyReport:
    """Copy `source`'s study into `target` (two TensorDB connections); see StudyCopy."""
    return StudyCopy(source, target).run(progress=progress, verify=verify)
