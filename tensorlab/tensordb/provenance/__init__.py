"""Provenance: what made each run. `environments` (one document per distinct set of installed packages) and
`sources` (cell sources, scripts and uncommitted git diffs), both stored once by content hash and named from
the run's `provenance` field (`records`); what differs between two runs (`run_diff`).

May import: documents/.
"""
