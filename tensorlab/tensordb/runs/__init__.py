"""Runs: `runs` holds one document per training run, the record that logs and parameter versions point to.

May import: documents/.
"""
