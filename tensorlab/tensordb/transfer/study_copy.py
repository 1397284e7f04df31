"""Copy a study between any two MongoDB-protocol servers: resumable, idempotent, verified.

Why documents and payloads as they are stored (not re-encoded): the copy is exact, and the target
decides only where payloads live (files beside a managed server, GridFS elsewhere: MongoDB, Atlas).
Order: a transfer marker that hides the target study (documents/transfer_marker.py), payloads (content-addressed,
named by `_id`), primary documents, then the study's derived lists (indexes, catalog, counts, ready set) and
build markers, so a copy killed at any point leaves nothing that names a missing payload, and nobody reads
the half-copied study. Primary documents are inserted where the target lacks them; derived lists and
markers are replaced from the source (a reader may have built a partial one from a partial copy). The
verification then compares every document's content and every payload's checksum on both sides, rewrites
any document that differs (the source changed since the killed attempt), and only then shows the study.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from bson import json_util
from pymongo import ReplaceOne
from pymongo.errors import BulkWriteError

from ...errors import IntegrityError, InvalidInput
from ..documents.batched_delete import delete_matching
from ..documents.build_markers import STATE, study_markers
from ..documents.by_id import bulk_in_batches
from ..documents.transfer_marker import Transfer, origin, server_lost
from ..payloads import codec

# Primary documents, in an order where what a document names is copied before it.
PRIMARY = ("architectures", "environments", "sources", "sample_imports", "sample_chunk_data", "sample_chunk_labels",
           "sample_chunks", "samples", "runs", "parameters", "log_buckets", "log_index", "logs", "jobs", "deployments",
           "triggers", "halving_sweeps")
# Lists derived from the primary documents, copied after them (so they never name what is not there yet).
DERIVED = ("sample_catalog", "sample_counts", "run_index", "run_table", "parameter_index", "job_index", "job_ready",
           "job_recent")
# What a merge (into a study holding other documents) drops rather than copies: rebuilt from the merged
# documents on first read (their build markers go too). The ready set holds one entry per job: merged as is.
REBUILT_ON_MERGE = tuple(name for name in DERIVED if name != "job_ready")
INSERT_BATCH = 500


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


def replace_all(target: Any, docs: Iterable[dict[str, Any]], query: dict[str, Any], keep_others: bool = False,
                bar: Any = None) -> int:
    """Make the target's `query` documents exactly `docs` (upserted by `_id`; the others deleted unless
    `keep_others`): how derived lists are copied, since a reader may have built a partial one meanwhile."""
    present = {doc["_id"] for doc in target.find(query, {"_id": 1})}
    written, batch = 0, []
    for doc in [*docs, None]:
        if doc is not None:
            present.discard(doc["_id"])
            batch.append(ReplaceOne({"_id": doc["_id"]}, doc, upsert=True))
            if bar is not None:
                bar.update()
        if batch and (doc is None or len(batch) >= INSERT_BATCH):
            bulk_in_batches(target, batch)  # FerretDB froze on a bulk of over 100 replaces of present documents
            written, batch = written + len(batch), []
    stale = sorted(present, key=str) if not keep_others else []
    for start in range(0, len(stale), INSERT_BATCH):
        target.delete_many({"_id": {"$in": stale[start:start + INSERT_BATCH]}})
    return written


def reconcile(report: CopyReport, name: str, target: Any, query: dict[str, Any], source: dict[Any, str],
              fetch: Callable[[set[Any]], Iterable[dict[str, Any]]], extras_allowed: bool = False) -> None:
    """Compare the target's documents with the source's content hashes (`source`: `_id` -> hash); rewrite
    those that differ from the source documents `fetch` gives for their ids; report what still differs."""
    def hashes() -> dict[Any, str]:
        return {doc["_id"]: document_hash(doc) for doc in target.find(query, batch_size=INSERT_BATCH)}

    found = hashes()
    differing = {key for key, digest in source.items() if found.get(key) != digest}
    if differing:
        for doc in fetch(differing):
            target.replace_one({"_id": doc["_id"]}, doc, upsert=True)
        report.repaired[name] = report.repaired.get(name, 0) + len(differing)
        found = hashes()
    extra = set(found) - set(source)
    if extra and not extras_allowed:
        report.problems.append(f"{name}: {len(extra)} document(s) on the target are not on the source")
    still = [key for key, digest in source.items() if found.get(key) != digest]
    if still:
        report.problems.append(f"{name}: {len(still)} document(s) differ after repair")
    report.counts[name] = (len(source), len(found) if not extras_allowed else len(source) - len(still))


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
    for doc in database["counters"].find({}):
        if str(doc["_id"]).startswith(f"parameters:{study}:"):
            yield "counters", doc
    for doc in study_markers(database[STATE], study):
        yield STATE, doc


def put_derived(target_db: Any, study: str, derived: Callable[[str], Iterable[dict[str, Any]]],
                entries: Iterable[tuple[str, dict[str, Any]]], merge: bool = False) -> None:
    """Derived lists, counters and build markers from the source, replacing the target's (which a reader may
    have built from a partial transfer); markers the source lacks go. A merge drops the lists instead, so the
    first read rebuilds them from the merged documents."""
    query = {"study": study}
    for name in DERIVED:
        if merge and name in REBUILT_ON_MERGE:
            delete_matching(target_db[name], query)
        else:
            replace_all(target_db[name], derived(name), query, keep_others=merge)
    kept = set()
    for name, doc in entries:
        if not (merge and name == STATE):
            target_db[name].replace_one({"_id": doc["_id"]}, doc, upsert=True)
            kept.add((name, doc["_id"]))
    for doc in list(study_markers(target_db[STATE], study)):
        if (STATE, doc["_id"]) not in kept:
            target_db[STATE].delete_one({"_id": doc["_id"]})


def verified_collections(merge: bool) -> list[tuple[str, bool]]:
    """(collection, whether the target may hold documents the source lacks) that verification compares."""
    derived = [name for name in DERIVED if not (merge and name in REBUILT_ON_MERGE)]
    return [(name, merge) for name in (*PRIMARY, *derived)]


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

    def run(self, progress: bool = True, verify: bool = True, merge: bool = False) -> CopyReport:
        """Copy what the target lacks, then (by default) verify everything and repair what differs; the target
        study stays hidden until then. `merge`: copy into a study that holds other documents too."""
        source = self.source
        transfer = Transfer(self.target, "copy", origin(source.uri, source.db_name, self.study),
                            f"{source.uri} (database {source.db_name!r})", legacy_source=source.uri)
        with server_lost(f"the copy of study {self.study!r}"):
            transfer.check(PRIMARY, merge)
            transfer.begin()
            self.target.blobs.collect_dead_writes()  # leftovers of a copy killed while writing a payload
            self._copy_payloads(progress)
            for name in PRIMARY:
                self._copy_collection(name, progress)
            query = {"study": self.study}
            put_derived(self.target.db, self.study, lambda name: source.db[name].find(query, batch_size=INSERT_BATCH),
                        list(counters_and_markers(source.db, self.study)), merge)
            if verify:
                self.verify(progress, merge)
            if self.report.ok or not verify:
                transfer.finish(verified=verify)
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

    # -- verification ----------------------------------------------------------------------------
    def verify(self, progress: bool = True, merge: bool = False) -> CopyReport:
        """Every document's content hash and every payload's checksum, on both sides; differing documents
        are rewritten from the source (and counted as repaired)."""
        query = {"study": self.study}
        for name, extras_allowed in verified_collections(merge):
            collection = self.source.db[name]
            hashes = {doc["_id"]: document_hash(doc) for doc in collection.find(query, batch_size=INSERT_BATCH)}
            reconcile(self.report, name, self.target.db[name], query, hashes,
                      lambda ids, collection=collection: (d for i in ids if (d := collection.find_one({"_id": i}))),
                      extras_allowed)
        ids = list(dict.fromkeys(payload_ids(self.source.db, self.study)))
        with progress_bar(len(ids), "verify payloads", progress) as bar:
            for file_id in ids:
                self._verify_payload(file_id)
                bar.update()
        return self.report

    def _verify_payload(self, file_id: Any) -> None:
        found = self.target.blobs.stored(file_id)
        if found is None:
            self.report.problems.append(f"payload {file_id} is missing on the target")
            return
        if not intact(*found):
            self.report.problems.append(f"payload {file_id} does not match its checksum on the target")
            return
        self.report.payloads_verified += 1


def copy_study(source: Any, target: Any, *, progress: bool = True, verify: bool = True,
               merge: bool = False) -> CopyReport:
    """Copy `source`'s study into `target` (two TensorDB connections); see StudyCopy."""
    return StudyCopy(source, target).run(progress=progress, verify=verify, merge=merge)
