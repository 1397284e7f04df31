"""Training logs: `logbook` (train_log / valid_log / test_log), the asynchronous `logwriter`, rows stored as
`log_buckets` of packed `log_columns`, `log_reader` (rows since a step, cursors) and `log_migration` from
the first layout.

May import: documents/.
"""
