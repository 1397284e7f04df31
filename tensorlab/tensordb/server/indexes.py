"""Every index TensorLab declares, in one place, created when a connection opens.

On MongoDB and Atlas these serve the reads that cannot go by `_id` alone (scans by study, the job
ready set's order, GridFS's own lookups); reads that matter for speed go by `_id` everywhere (log
buckets, run and parameter index entries, blobs), so they cost the same on every server. FerretDB
accepts the declarations; its SQLite backend answers only `_id` lookups from an index.
Tag indexes of samples are added per tag key when data is imported (DataStore.ensure_indexes).
"""

from __future__ import annotations

from typing import Any

from pymongo.errors import PyMongoError

DECLARED: dict[str, list[tuple[list[tuple[str, int]], dict[str, Any]]]] = {
    "runs": [([("study", 1), ("name", 1), ("started", -1)], {}), ([("study", 1), ("started", 1)], {})],
    "run_index": [([("study", 1)], {})],
    "run_table": [([("study", 1)], {})],
    "parameters": [([("study", 1), ("run", 1), ("version", 1)], {}), ([("arrays.blob", 1)], {})],
    "parameter_index": [([("study", 1)], {})],
    "architectures": [([("study", 1), ("name", 1), ("created", -1)], {})],
    "log_buckets": [([("study", 1), ("kind", 1)], {})],
    "log_index": [([("study", 1)], {})],
    "samples": [([("study", 1), ("chunk", 1), ("row", 1)], {}), ([("study", 1), ("label", 1)], {}),
                ([("import_id", 1)], {})],
    "sample_chunks": [([("study", 1), ("uniform", 1)], {}), ([("import_id", 1)], {})],
    "sample_chunk_labels": [([("import_id", 1)], {})],
    "sample_catalog": [([("study", 1)], {})],
    "sample_counts": [([("study", 1)], {})],
    "sample_imports": [([("study", 1), ("committed", 1)], {})],
    "jobs": [([("study", 1), ("status", 1), ("priority", -1), ("created", 1)], {}), ([("study", 1), ("sweep", 1)], {})],
    "job_ready": [([("study", 1), ("priority", -1), ("created", 1), ("_id", 1)], {})],
    "job_index": [([("study", 1)], {})],
    "job_recent": [([("study", 1)], {})],
    "deployments": [([("study", 1)], {})],
    "blobs.files": [([("filename", 1), ("uploadDate", 1)], {})],
    "blobs.chunks": [([("files_id", 1), ("n", 1)], {"unique": True})],
}


def declare_indexes(database: Any) -> list[str]:
    """Create every declared index (a no-op for those that exist); returns problems, never raises:
    a user without the createIndex privilege can still read and write, only slower on MongoDB."""
    problems = []
    for collection, indexes in DECLARED.items():
        for keys, options in indexes:
            try:
                database[collection].create_index(keys, **options)
            except PyMongoError as error:
                problems.append(f"{collection} {keys}: {error}")
    return problems
