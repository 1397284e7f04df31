"""Which imports a data query selects, and whether they can be trained on together.

Two imports under one tag with different sample shapes (28x28 and 32x32) made `fit(data=tag)` fail
mid-epoch with a raw numpy shape error, after the run and its architecture were stored. The data
catalog knows each import's sample shape, so the check costs a catalog read, plus one count per import
only when the study holds more than one shape (or when text labels must be listed).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import InvalidInput


def catalog_entries(db: Any) -> list[dict[str, Any]]:
    """The study's imports with ids, tags, counts, sample shapes and label counts (one catalog document)."""
    entries = list(db.data.catalog.entries())
    if not entries and db.data_count() > 0:  # a lab written before the catalog: data_summary builds it once
        db.data_summary()
        entries = list(db.data.catalog.entries())
    return entries


def selected_imports(db: Any, query: Mapping[str, Any] | None, entries: list[dict[str, Any]] | None = None
                     ) -> list[dict[str, Any]]:
    """The catalog entries of the imports holding at least one sample that `query` selects."""
    entries = catalog_entries(db) if entries is None else entries
    if len(entries) <= 1:
        return entries if entries and db.data_count(query) > 0 else []
    conditions = [query] if query else []
    return [entry for entry in entries
            if db.data_count({"$and": [*conditions, {"import_id": entry["import_id"]}]}) > 0]


def _shape(entry: Mapping[str, Any]) -> tuple[int, ...]:
    return tuple(entry.get("sample_shape") or ())


def check_sample_shapes(db: Any, query: Mapping[str, Any] | None, what: str = "data") -> None:
    """InvalidInput naming the imports and their shapes when `query` selects samples of different shapes."""
    entries = catalog_entries(db)
    if len({_shape(entry) for entry in entries}) <= 1:
        return
    chosen = selected_imports(db, query, entries)
    shapes: dict[tuple[int, ...], list[str]] = {}
    for entry in chosen:
        shapes.setdefault(_shape(entry), []).append(str(entry["import_id"]))
    if len(shapes) <= 1:
        return
    listed = "; ".join(f"{'x'.join(map(str, shape)) or 'scalar'}: import{'s' if len(ids) > 1 else ''} "
                       f"{', '.join(ids[:5])}{' …' if len(ids) > 5 else ''}" for shape, ids in shapes.items())
    raise InvalidInput(f"`{what}` {dict(query or {})!r} selects samples of {len(shapes)} different shapes ({listed}); "
                       "a model takes one. Narrow the query to one shape (e.g. add {'import_id': ...} or a tag), "
                       "resize the samples and import them again, or retag one import (db.update_data_tags). "
                       "Nothing was trained.")
