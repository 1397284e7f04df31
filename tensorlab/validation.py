"""Checks at the entry points: tags, queries and metric values, rejected with messages that say what to do."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .errors import InvalidInput
from .validation_queries import QUERY_OPERATORS, check_filter
from .validation_values import MAX_DEPTH, check_key, clean_value, short

__all__ = ["MAX_DEPTH", "QUERY_OPERATORS", "check_database_name", "check_query", "clean_tags", "restore_metrics",
           "split_metrics", "without_non_finite"]

MAX_TAG_BYTES = 64 * 1024  # tags are copied into every sample's index document: keep them small


def clean_tags(tags: Mapping[str, Any] | None, where: str = "tags") -> dict[str, Any]:
    """A plain-dict copy of `tags`, or InvalidInput naming the first bad key or value."""
    if tags is None:
        return {}
    if not isinstance(tags, Mapping):
        raise InvalidInput(f"`{where}` must be a dict like {{'split': 'train'}}; got {type(tags).__name__}.")
    cleaned: dict[str, Any] = {check_key(key, where): clean_value(value, f"Tag {where}.{key}" if where == "tags"
                                                                else f"{where}.{key}", depth=1)
                               for key, value in tags.items()}
    if where == "tags" and (size := _approximate_bytes(cleaned)) > MAX_TAG_BYTES:
        raise InvalidInput(
            f"`tags` take about {size / 1024:,.0f} KB; tags are limited to {MAX_TAG_BYTES // 1024} KB (they are "
            "copied into every sample's index document, and a MongoDB document holds at most 16 MB). Keep tags to "
            "short labels; store large values with import_data or save_parameters.")
    return cleaned


def _approximate_bytes(value: Any) -> int:
    """About the BSON size of a cleaned tag value: enough to refuse what no server would store."""
    if isinstance(value, str):
        return len(value.encode("utf-8", "surrogatepass")) + 8
    if isinstance(value, Mapping):
        return sum(len(key) + 2 + _approximate_bytes(item) for key, item in value.items()) + 8
    if isinstance(value, list):
        return sum(_approximate_bytes(item) + 4 for item in value) + 8
    return 9


def _check_fields(query: Mapping[str, Any], fields: Sequence[str], what: str, nested: Sequence[str]) -> None:
    """Top-level names (also inside $and/$or/$nor) must be fields the documents have.

    Why: the seeds write {'type': 'train'} for a tag; MongoDB matches a missing field with nothing, so
    reads came back empty and deletes removed nothing, silently.
    """
    for key, value in query.items():
        if key in ("$and", "$or", "$nor"):
            for part in value if isinstance(value, (list, tuple)) else []:
                if isinstance(part, Mapping):
                    _check_fields(part, fields, what, nested)
            continue
        if key.startswith("$") or any(key == field or key.startswith(field + ".") for field in fields):
            continue
        fixes = " or ".join(f"{{'{prefix}.{key}': {value!r:.40}}}" for prefix in nested)
        raise InvalidInput(f"`{what}` names field {key!r}, which these documents do not have (their fields: "
                           f"{', '.join(fields)}). {' and '.join(nested).capitalize()} live under their own "
                           f"field: did you mean {fixes}?")


def check_query(query: Any, what: str = "query", *, fields: Sequence[str] | None = None,
                nested: Sequence[str] = ("tags",)) -> dict[str, Any]:
    """A query must be a dict (a MongoDB filter) of operators every server runs; None means everything.

    With `fields`, every top-level name must be one of them (or a path inside one), and the error for a
    bare name suggests it under `nested` (e.g. 'tags.type').
    """
    if query is None:
        return {}
    if not isinstance(query, Mapping):
        raise InvalidInput(
            f"`{what}` must be a MongoDB filter dict such as {{'tags.split': 'train'}}; got {type(query).__name__} "
            f"{query!r:.60}."
        )
    query = check_filter(query, what)
    if fields is not None:
        _check_fields(query, fields, what, nested)
    return query


_GOOD_METRIC_NAMES: set[str] = set()  # names found good: a training loop logs the same few 100,000s of times


def is_metric_name(name: Any) -> bool:
    """A metric name becomes a field name: a non-empty string without NUL, '.' or a leading '$' (cached)."""
    if name in _GOOD_METRIC_NAMES:
        return True
    good = isinstance(name, str) and bool(name) and "\x00" not in name and "." not in name and not name.startswith("$")
    if good and len(_GOOD_METRIC_NAMES) < 10_000:
        _GOOD_METRIC_NAMES.add(name)
    return good


def split_metrics(metrics: Mapping[str, Any]) -> tuple[dict[str, float | None], dict[str, str]]:
    """Metric values as floats, with non-finite ones stored as null and flagged by name ('nan', 'inf', '-inf').

    Not every MongoDB-protocol server accepts NaN on the wire (FerretDB closes the connection), so
    the flag map carries the value portably; `restore_metrics` puts it back when reading.
    """
    values: dict[str, float | None] = {}
    non_finite: dict[str, str] = {}
    for name, value in metrics.items():
        if not is_metric_name(name):
            raise InvalidInput(f"Metric name {short(name)} must be a non-empty string without '.', NUL or a leading "
                               "'$'; rename it, e.g. 'val_loss'.")
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            raise InvalidInput(f"Metric {name}={short(value)} is not a number a float holds; log numbers only.") \
                from None
        if not math.isfinite(number):
            non_finite[name] = repr(number)
            values[name] = None
        else:
            values[name] = number
    return values, non_finite


def restore_metrics(values: Mapping[str, Any], non_finite: Mapping[str, str] | None) -> dict[str, Any]:
    """Inverse of `split_metrics`: flagged nulls become float('nan'/'inf'/'-inf') again."""
    restored = dict(values)
    for name, text in (non_finite or {}).items():
        restored[name] = float(text)
    return restored


def without_non_finite(value: Any, path: str = "", depth: int = 0) -> tuple[Any, list[dict[str, str]]]:
    """`value` with every NaN/inf (at any depth) replaced by None, and where each was: [{path, value}].

    Why: some servers refuse non-finite numbers in documents (FerretDB drops the connection), and a
    run summary holding a NaN loss would then never be written; the flags keep what the value was."""
    if depth > MAX_DEPTH:
        raise InvalidInput(f"`{path.split('.')[0]}` is nested more than {MAX_DEPTH} levels deep; MongoDB stores at "
                           "most 100. Flatten it, or store it as a string (e.g. json.dumps).")
    if isinstance(value, np.generic) and not isinstance(value, np.datetime64):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None, [{"path": path, "value": repr(value)}]
    if isinstance(value, Mapping):
        cleaned, flags = {}, []
        for key, item in value.items():
            cleaned[key], found = without_non_finite(item, f"{path}.{key}" if path else str(key), depth + 1)
            flags += found
        return cleaned, flags
    if isinstance(value, (list, tuple)):
        cleaned_items, flags = [], []
        for index, item in enumerate(value):
            cleaned_item, found = without_non_finite(item, f"{path}[{index}]", depth + 1)
            cleaned_items.append(cleaned_item)
            flags += found
        return cleaned_items, flags
    return value, []


_DATABASE_NAME_CHARACTERS = '/\\. "$*<>:|?'


def check_database_name(name: Any) -> str:
    """A MongoDB database name: 1 to 63 bytes, none of /\\. "$*<>:|? or control characters (checked at connect,
    where the first write would otherwise fail)."""
    bad = isinstance(name, str) and sorted({c for c in name if c in _DATABASE_NAME_CHARACTERS or ord(c) < 32})
    if not isinstance(name, str) or not name or bad or len(name.encode("utf-8", "replace")) > 63:
        why = (f"it holds {', '.join(map(repr, bad))}" if bad else "it is over 63 bytes" if isinstance(name, str)
               and name else "it is empty or not a string")
        raise InvalidInput(f"Invalid database name (argument `db`, `db_name`): {short(name)} ({why}). Expected "
                           "a name of 1 to 63 bytes without '/', '\\', '.', ' ', '\"', '$', '*', '<', '>', ':', '|', "
                           "'?' or control characters, e.g. 'tensorlab'.")
    return name
