"""Data and labels in two layers: a small index document per sample, arrays packed in lz4 chunks.

`samples` holds one document per sample (study, chunk, row, label, tags) so any MongoDB query can pick
samples. `sample_chunks` describes runs of consecutive samples and `sample_chunk_data` holds their arrays,
compressed together (inline up to a few MB, in GridFS beyond) so reads are bulk and no document
nears the 16 MB limit. Payloads live apart from the chunk descriptions because some servers
(FerretDB) read whole documents even for a projection: planning must not touch the bytes.

Queries that only touch chunk-level fields (study, tags, import_id, and `label` by equality or `$in`,
see chunk_labels.py) are answered from the chunk documents alone while every sample of a chunk still
carries its import's tags (`uniform`); tag edits and deletes through this API mark chunks non-uniform
first, so such chunks fall back to the per-sample index. That keeps streaming fast on servers where
per-document reads are slow.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
from bson import Binary, ObjectId

from ...errors import InvalidInput, NotFound
from ...validation import check_query, clean_tags
from ...validation_values import check_number
from ..documents.batched_delete import delete_matching, tried
from ..documents.by_id import find_by_ids
from ..documents.scope import Scope
from ..payloads import codec
from ..payloads.blobstore import FILE_MIN_BYTES, BlobStore
from .chunk_labels import LABELS, chunk_label_index, selected_count, split_label_condition
from .imports import ImportLedger
from .sample_catalog import SampleCatalog, catalog_equalities, entry_matches, new_entry
from .sample_counts import SampleCounts
from .sample_input import scalar_labels, validate_samples
from .sample_plan import ChunkSelection, group_rows, has_label_counts, is_chunk_level, select_in_uniform

SAMPLES = "samples"
SAMPLE_FIELDS = ("_id", "study", "tags", "label", "import_id", "chunk", "row", "created")  # what queries may name
CHUNKS = "sample_chunks"
CHUNK_DATA = "sample_chunk_data"
TARGET_CHUNK_BYTES = 4 * 1024 * 1024
INLINE_LIMIT_BYTES = 8 * 1024 * 1024
INSERT_BATCH = 5000
LOAD_THREADS = 4


@dataclass(frozen=True)
class ImportResult:
    import_id: ObjectId
    count: int
    chunks: int


class DataStore:
    """Import, query, stream and delete samples of one study."""

    def __init__(self, scope: Scope, blobs: BlobStore) -> None:
        self._scope = scope
        self._blobs = blobs
        self._indexed: set[str] = set()
        self.catalog = SampleCatalog(scope)
        self.counts = SampleCounts(scope)
        self.ledger = ImportLedger(scope, self.catalog.listed)
        self._unfinished_rollbacks: set[ObjectId] = set()

    @property
    def samples(self) -> Any:
        return self._scope.collection(SAMPLES)

    @property
    def chunks(self) -> Any:
        return self._scope.collection(CHUNKS)

    @property
    def chunk_data(self) -> Any:
        return self._scope.collection(CHUNK_DATA)

    @property
    def chunk_labels(self) -> Any:
        return self._scope.collection(LABELS)

    def ensure_indexes(self, tag_keys: Iterable[str] = ()) -> None:
        wanted = ["study", "import_id", "chunk", *(f"tags.{key}" for key in tag_keys)]
        for field in wanted:
            if field in self._indexed:
                continue
            if field != "chunk":
                self.chunks.create_index([("study", 1), (field, 1)] if field != "study" else [("study", 1)])
            self.samples.create_index([("study", 1), (field, 1)] if field != "study" else [("study", 1)])
            self._indexed.add(field)

    # -- writing ---------------------------------------------------------------------------------
    def import_data(self, X: Any, y: Any = None, tags: Mapping[str, Any] | None = None,  # noqa: N803
                    chunk_bytes: int = TARGET_CHUNK_BYTES) -> ImportResult:
        """Store samples X (first axis) with labels y and shared tags; all or nothing."""
        X, y = validate_samples(X, y)
        tags = clean_tags(tags)
        self.ensure_indexes(tags)
        self._ensure_catalog()
        self.collect_dead_imports()
        self._blobs.collect_dead_writes()  # payloads half-written by a killed import
        import_id = ObjectId()
        count_docs = self.counts.doc_ids(tags)
        self.ledger.begin(import_id, len(X), count_docs)
        per_sample = max(1, X[0].nbytes + (y[0].nbytes if y is not None else 0))
        rows_per_chunk = max(1, int(chunk_bytes // per_sample))
        labels = scalar_labels(y) if y is not None else None
        now = datetime.now(timezone.utc)
        described: list[dict[str, Any]] = []
        try:
            index_docs: list[dict[str, Any]] = []
            for start in range(0, len(X), rows_per_chunk):
                stop = min(start + rows_per_chunk, len(X))
                chunk_id = ObjectId()
                data = {"_id": chunk_id, "study": self._scope.study, "import_id": import_id,
                        "x": self._pack(X[start:stop], import_id, chunk_id, "x")}
                if y is not None:
                    data["y"] = self._pack(y[start:stop], import_id, chunk_id, "y")
                self.chunk_data.insert_one(data)
                chunk = {"_id": chunk_id, "study": self._scope.study, "import_id": import_id, "tags": tags,
                         "count": stop - start, "uniform": True, "created": now, "dtype": X.dtype.str,
                         "sample_shape": list(X.shape[1:]), "labels": y is not None}
                if labels is not None:
                    chunk["label_counts"], label_rows = chunk_label_index(labels[start:stop])
                    self.chunk_labels.insert_one({"_id": chunk_id, "study": self._scope.study,
                                                  "import_id": import_id, "rows": label_rows})
                self.chunks.insert_one(chunk)
                described.append(chunk)
                for row in range(stop - start):
                    doc = {"study": self._scope.study, "chunk": chunk_id, "row": row, "tags": tags,
                           "import_id": import_id, "created": now}
                    if labels is not None:
                        doc["label"] = labels[start + row]
                    index_docs.append(doc)
                if len(index_docs) >= INSERT_BATCH:
                    self.samples.insert_many(index_docs, ordered=False)
                    self.ledger.beat(import_id)
                    index_docs = []
            if index_docs:
                self.samples.insert_many(index_docs, ordered=False)
            entry = new_entry(import_id, tags, described)
            self.counts.add(import_id, entry, count_docs)  # trusted by readers only once settled
            # listing the import in the catalog is the one write that makes every sample of it visible
            self.ledger.commit(import_id, lambda: self.catalog.publish(entry))
            self.counts.settle(import_id, count_docs, entry)
        except BaseException:
            self.rollback_import(import_id)
            raise
        return ImportResult(import_id, len(X), len(described))

    def _pack(self, array: np.ndarray, import_id: ObjectId, chunk_id: ObjectId, part: str) -> dict[str, Any]:
        payload, meta = codec.encode(array)
        packed = {**meta.to_doc(), "frames": codec.frame_count(array.nbytes), "crc32": codec.checksum(payload)}
        if len(payload) <= (FILE_MIN_BYTES if self._blobs.uses_files else INLINE_LIMIT_BYTES):
            packed["payload"] = Binary(payload)
        else:
            packed["file"] = self._blobs.put_bytes(f"sample-chunk:{chunk_id}:{part}", payload,
                                                   {"import_id": import_id, "chunk": chunk_id})
        return packed

    def _unpack(self, packed: Mapping[str, Any], what: str) -> np.ndarray:
        payload = packed["payload"] if "payload" in packed else self._blobs.get_bytes(packed["file"])
        return codec.verified_decode(payload, codec.ArrayMeta.from_doc(packed), packed.get("frames", 1),
                                     packed.get("crc32"), what)

    def rollback_import(self, import_id: ObjectId) -> None:
        """Best-effort removal of a failed import, so no partial dataset stays visible. Its payload files go
        first (on a full disk their space is what the other deletes need); every step is tried even when one
        fails, and an import not wholly removed is tried again at the next collection."""
        steps = (lambda: self._blobs.release_files({"metadata.import_id": import_id}),
                 lambda: self.catalog.unlist(import_id),
                 lambda: self.counts.undo(import_id, self.ledger.count_docs(import_id)),
                 lambda: delete_matching(self.samples, {"import_id": import_id}),
                 lambda: self.chunks.delete_many({"import_id": import_id}),
                 lambda: self.chunk_labels.delete_many({"import_id": import_id}),
                 lambda: [self._delete_chunk_files(data) for data in
                          self.chunk_data.find({"import_id": import_id}, {"x.file": 1, "y.file": 1})],
                 lambda: self.chunk_data.delete_many({"import_id": import_id}),
                 lambda: self._blobs.delete_matching({"metadata.import_id": import_id}),  # written before named
                 lambda: self.ledger.rolled_back(import_id))
        if all([tried(step) for step in steps]):
            self._unfinished_rollbacks.discard(import_id)
        else:
            self._unfinished_rollbacks.add(import_id)

    def collect_dead_imports(self) -> list[ObjectId]:
        """Roll back imports of dead writers (and settle the counts of those killed just after listing), and
        finish this process's own rollbacks that a failure (a full disk) cut short."""
        for import_id in list(self._unfinished_rollbacks):
            self.rollback_import(import_id)
        return self.ledger.collect_dead(self.rollback_import, lambda import_id, count_docs: self.counts.settle(
            import_id, count_docs, self.catalog.entry(import_id)))

    def _delete_chunk_files(self, chunk: Mapping[str, Any]) -> None:
        for part in ("x", "y"):
            file_id = (chunk.get(part) or {}).get("file")
            if file_id is not None:
                self._blobs.delete_by_id(file_id)

    # -- reading ---------------------------------------------------------------------------------
    def plan(self, query: Any = None, need_rows: bool = True) -> list[ChunkSelection]:
        """The chunks and rows a query selects, in storage order (`need_rows=False`: sizes for counting only;
        a selection may then stand for a whole import)."""
        scoped = self._scope.scoped(check_query(query, fields=SAMPLE_FIELDS))
        split = split_label_condition(scoped)
        selections = None
        if split is not None and (wanted := catalog_equalities(split[0])) is not None:
            selections = self._plan_by_catalog(scoped, wanted, split[1], need_rows)
        elif split is not None and is_chunk_level(split[0]):
            selections = self._plan_by_chunk(scoped, *split, need_rows)
        if selections is None:
            docs = list(self.samples.find(scoped, {"chunk": 1, "row": 1, "_id": 0}))
            chunks = self._visible(self.chunks.find({"_id": {"$in": list({d["chunk"] for d in docs})}},
                                                    {"count": 1, "import_id": 1}))
            counts = {doc["_id"]: doc["count"] for doc in chunks}
            selections = group_rows([d for d in docs if d["chunk"] in counts], counts)
        return sorted(selections, key=lambda selection: selection.chunk_id)

    def _ensure_catalog(self) -> None:
        self.catalog.ensure_built(lambda: self._visible(self.chunks.find({"study": self._scope.study})))
        self.counts.ensure_built(self.catalog.entries)

    def _plan_by_catalog(self, scoped: dict[str, Any], wanted: dict[str, list[Any]], allowed: list[Any] | None,
                         need_rows: bool) -> list[ChunkSelection]:
        """Answer from the study's catalog: its imports that match, then their chunks by `_id`."""
        self._ensure_catalog()
        selections: list[ChunkSelection] = []
        unsure: list[ObjectId] = []  # chunks of imports the catalog cannot answer for
        entries = self.counts.entries_for(wanted)  # one tag value: its imports only (sample_counts.py)
        for entry in entries if entries is not None else self.catalog.entries():
            counted = not entry["labelled"] or entry["label_counts"] is not None
            if not entry["uniform"] or (allowed is not None and not counted):
                unsure += [chunk["id"] for chunk in entry["chunks"]]
            elif not entry_matches(entry, wanted):
                continue
            elif allowed is None:
                selections += [ChunkSelection(chunk["id"], chunk["count"], None) for chunk in entry["chunks"]]
            elif not need_rows:
                if chosen := selected_count(entry, allowed):
                    selections.append(ChunkSelection(entry["chunks"][0]["id"], entry["count"], None, chosen))
            elif selected_count(entry, allowed):
                docs = find_by_ids(self.chunks, [chunk["id"] for chunk in entry["chunks"]])
                selections += select_in_uniform(docs, allowed, need_rows, self._label_rows)
        if unsure:
            docs = find_by_ids(self.chunks, unsure)
            answerable = [d for d in docs if d.get("uniform") and (allowed is None or has_label_counts(d))]
            selections += select_in_uniform([d for d in answerable if entry_matches(d, wanted)], allowed, need_rows,
                                            self._label_rows)
            rest = {d["_id"]: d["count"] for d in docs if d not in answerable}
            if rest:
                restrict = {"$and": [scoped, {"chunk": {"$in": list(rest)}}]}
                selections += group_rows(self.samples.find(restrict, {"chunk": 1, "row": 1, "_id": 0}), rest)
        return selections

    def _label_rows(self, chunk_id: ObjectId) -> dict[str, Any] | None:
        return self.chunk_labels.find_one({"_id": chunk_id})

    def _plan_by_chunk(self, scoped: dict[str, Any], rest: dict[str, Any], allowed: list[Any] | None,
                       need_rows: bool) -> list[ChunkSelection] | None:
        """Answer from chunk descriptions (tags, label counts); None when a chunk predates label counts."""
        fields = {"_id": 1, "count": 1, "label_counts": 1, "labels": 1, "import_id": 1}
        uniform = self._visible(self.chunks.find({"$and": [rest, {"uniform": True}]}, fields))
        if allowed is not None and not all(has_label_counts(doc) for doc in uniform):
            return None  # written before label counts existed: the per-sample index answers
        selections = select_in_uniform(uniform, allowed, need_rows, self._label_rows)
        mixed = {doc["_id"]: doc["count"] for doc in self._visible(
            self.chunks.find({"study": scoped["study"], "uniform": False}, {"_id": 1, "count": 1, "import_id": 1}))}
        if mixed:
            restrict = {"$and": [scoped, {"chunk": {"$in": list(mixed)}}]}
            selections += group_rows(self.samples.find(restrict, {"chunk": 1, "row": 1, "_id": 0}), mixed)
        return selections

    def _visible(self, chunks: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Chunk documents of committed imports only (a half-written import is never read)."""
        chunks = list(chunks)
        shown = self.ledger.visible(chunk["import_id"] for chunk in chunks)
        return [chunk for chunk in chunks if chunk["import_id"] in shown]

    def load_chunks(self, chunk_ids: list[ObjectId]) -> dict[ObjectId, tuple[np.ndarray, np.ndarray | None]]:
        """Decoded (X, y) of several chunks, fetched with one query."""
        # One `_id` lookup each, in parallel: the only lookup every server answers without scanning
        # every payload (FerretDB 1.x pushes down nothing else), and replies stay small.
        def load(chunk_id: ObjectId) -> tuple[ObjectId, Any]:
            doc = self.chunk_data.find_one({"_id": chunk_id})
            if doc is None:
                return chunk_id, None
            what = f"Sample chunk {chunk_id} of import {doc.get('import_id')} in study {self._scope.study!r}"
            return chunk_id, (self._unpack(doc["x"], f"{what} (samples)"),
                              self._unpack(doc["y"], f"{what} (labels)") if "y" in doc else None)

        if len(chunk_ids) == 1:
            pairs = [load(chunk_ids[0])]
        else:
            with ThreadPoolExecutor(min(LOAD_THREADS, len(chunk_ids))) as pool:
                pairs = list(pool.map(load, chunk_ids))
        return {chunk_id: item for chunk_id, item in pairs if item is not None}

    def count_from_documents(self, query: Any = None) -> int | None:
        """The count as the study's count documents give it (sample_counts.py); None when they cannot answer."""
        split = split_label_condition(self._scope.scoped(check_query(query, fields=SAMPLE_FIELDS)))
        if split is None:
            return None
        self._ensure_catalog()
        return self.counts.count(*split)

    def count(self, query: Any = None) -> int:
        answer = self.count_from_documents(query)
        return answer if answer is not None else sum(selection.size for selection in self.plan(query, need_rows=False))

    def find_data(self, query: Any = None, limit: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """All samples matching `query` as (X, y); y is None when they were imported without labels."""
        limit = check_number(limit, "limit", integer=True, minimum=1, allow_none=True)
        selections = self.plan(query)
        if not selections:
            raise NotFound(f"No samples match {query!r} in study {self._scope.study!r}. "
                           "List what is there with db.data_summary().")
        xs, ys = [], []
        remaining = limit if limit is not None else float("inf")
        for start in range(0, len(selections), 16):
            group = selections[start:start + 16]
            loaded = self.load_chunks([selection.chunk_id for selection in group])
            for selection in group:
                if remaining <= 0:
                    break
                x, y = loaded[selection.chunk_id]
                rows = selection.rows if selection.rows is not None else slice(None)
                xs.append(x[rows][: int(min(remaining, selection.size))])
                ys.append(None if y is None else y[rows][: len(xs[-1])])
                remaining -= len(xs[-1])
        X = np.concatenate(xs)
        y = None if any(part is None for part in ys) else np.concatenate(ys)
        return X, y

    def summary(self) -> list[dict[str, Any]]:
        """One row per import: tags, sample count, dtype and sample shape."""
        self._ensure_catalog()
        return [{"import_id": str(entry["import_id"]), "tags": entry["tags"], "samples": entry["count"],
                 "dtype": entry["dtype"], "sample_shape": tuple(entry["sample_shape"] or ()),
                 "created": entry["created"]}
                for entry in sorted(self.catalog.entries(), key=lambda entry: entry["import_id"])]

    # -- changing --------------------------------------------------------------------------------
    def _affected(self, scoped: Mapping[str, Any], new_tags: Any = None) -> tuple[list[ObjectId], set[ObjectId]]:
        """The chunks and imports holding samples that match, marked non-uniform (with the count documents of
        their tags and of `new_tags`) before samples change."""
        docs = list(self.samples.find(scoped, {"chunk": 1, "import_id": 1, "_id": 0}))
        chunks, imports = list({doc["chunk"] for doc in docs}), {doc["import_id"] for doc in docs}
        self._ensure_catalog()
        self.counts.mark_mixed(imports, self.catalog.entries(), new_tags)
        self.catalog.mark_mixed(imports)
        self.chunks.update_many({"_id": {"$in": chunks}}, {"$set": {"uniform": False}})
        return chunks, imports

    def update_tags(self, query: Any, tags: Mapping[str, Any]) -> int:
        """Set tags on the matching samples; returns how many changed."""
        scoped = self._scope.scoped(check_query(query, fields=SAMPLE_FIELDS))
        tags = clean_tags(tags)
        if not tags:
            raise InvalidInput("`tags` is empty; pass the tags to set, e.g. {'split': 'valid'}.")
        self.ensure_indexes(tags)
        self._affected(scoped, tags)
        result = self.samples.update_many(scoped, {"$set": {f"tags.{k}": v for k, v in tags.items()}})
        return result.modified_count

    def delete_data(self, query: Any) -> int:
        """Delete matching samples; chunks left with no sample are deleted with their blobs."""
        if query is None:
            raise InvalidInput("delete_data needs a query naming what to delete, e.g. {'tags.split': 'old'}; "
                               "pass {} to delete every sample of the study.")
        scoped = self._scope.scoped(check_query(query, fields=SAMPLE_FIELDS))
        affected, imports = self._affected(scoped)
        deleted = delete_matching(self.samples, scoped)
        for chunk_id in affected:
            if self.samples.count_documents({"chunk": chunk_id}, limit=1) == 0:
                self.chunks.delete_one({"_id": chunk_id})
                self.chunk_labels.delete_one({"_id": chunk_id})
                data = self.chunk_data.find_one({"_id": chunk_id}, {"x.file": 1, "y.file": 1})
                if data:
                    self._delete_chunk_files(data)
                    self.chunk_data.delete_one({"_id": chunk_id})
        emptied = False
        for entry in self.catalog.entries():
            if entry["import_id"] in imports:
                remaining = find_by_ids(self.chunks, [chunk["id"] for chunk in entry["chunks"]])
                self.catalog.keep_chunks(entry["import_id"], remaining)
                emptied |= not remaining
        if emptied:  # imports deleted whole no longer make count documents fall back
            self.counts.refresh(self.catalog.entries)
        return deleted
