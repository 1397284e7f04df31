"""Data and labels: `datastore` (index documents per sample, lz4 chunks), its imports' commit markers,
the catalog and counts kept as imports commit, chunk labels, query plans, input checks and `stream`
(batches fetched ahead through a bounded cache).

May import: documents/, payloads/.
"""
