"""Moving a study: `study_copy` (between two servers), `study_export` (to and from a folder of files) and
`export_check` (every file of an export checked before an import writes anything).

May import: documents/ (its `transfer_marker` hides the study until it is verified), payloads/.
"""
