"""What a run update changes in the run index (name, job), and what it may set at all.

`update(run, name=...)` moves a run between index entries; the index files new entries before the document is
written and runs.py takes stale ones out after it (docs/CONSISTENCY.md). Status, tags and hyper-parameters are
filed in the run table instead (run_table.py), which follows every write of them.

Refused before anything is written: `study`, `_id` and `row_version` (run_table.py), and dotted paths
(`tags.sweep`, `summary.best.acc`): update() sets whole fields, as the run table makes a run's row from its whole
document. Tags and hyper-parameters set whole are cleaned as `start` cleans them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...errors import InvalidInput
from ...validation import clean_tags
from ..documents.value_keys import canonical, filed_values
from .run_table import KEYED_ROOTS, VERSION

FIXED = ("_id", "study", VERSION)


def checked_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """`fields` with tags and hyper-parameters cleaned as `start` cleans them, or InvalidInput."""
    checked = dict(fields)
    for path, value in fields.items():
        root, dot, _ = path.partition(".")
        if path in FIXED:
            raise InvalidInput(f"A run's `{path}` cannot be updated. Start a new run (or copy a study with "
                               "copy_study) instead.")
        if dot and not path.startswith("$"):
            raise InvalidInput(f"Cannot update `{path}`: update() sets whole fields. Pass `{root}` whole, e.g. "
                               f"update(run, {root}={{**old_{root}, ...}}).")
        if path in KEYED_ROOTS:
            checked[path] = clean_tags(value, path)
    return checked


def touched(fields: Mapping[str, Any], top_fields: tuple[str, ...]) -> list[str]:
    """The indexed fields an update sets."""
    return [path for path in fields if path in top_fields]


def stale(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, list[Any]]:
    """Entries (field: values) `old` has and `new` lacks, compared as the index files them."""
    found: dict[str, list[Any]] = {}
    for field, stored in old.items():
        kept = {canonical(value) for value in filed_values(new.get(field))} if field in new else set()
        gone = [value for value in filed_values(stored) if canonical(value) not in kept]
        if gone:
            found[field] = gone
    return found
