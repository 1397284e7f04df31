"""What every store shares: its `Scope`, `_id` helpers, index documents and markers.

`scope` (database + study), `by_id` (reads and writes by `_id` alone), `value_keys` and `equality_index`
(index documents read by `_id`), `query_text` (queries kept inside documents), `batched_delete`,
`build_markers` (derived structures built once), `transfer_marker` (a study hidden while it is copied) and
`run_liveness` (is the process that wrote a marker still there?).

May import: no other sub-package of tensordb (only pymongo and tensorlab's base layer). Everything else here
builds on it.
"""
