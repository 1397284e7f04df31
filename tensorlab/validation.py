"""Checks at the entry points: tags, queries and metric values, rejected with messages that say what to do."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .errors import InvalidInput

_SCALARS = (str, bool, int, float, type(None))
MAX_TAG_BYTES = 64 * 1024  # tags are copied into every sample's index document: keep them small


def _clean_value(value: Any, where: str) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidInput(f"Tag {where} is {value!r}; not every MongoDB-protocol server stores non-finite numbers. "
                           "Use None or a string, or log it as a metric (metrics keep NaN/inf, flagged).")
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, (list, tuple)):
        return [_clean_value(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, Mapping):
        return clean_tags(value, where)
    raise InvalidInput(
        f"Tag {where} has a value of type {type(value).__name__}; tags hold JSON-like values only "
        "(str, int, float, bool, None, lists and dicts of those). Store arrays with import_data/save_parameters."
    )


def clean_tags(tags: Mapping[str, Any] | None, where: str = "tags") -> dict[str, Any]:
    """A plain-dict copy of `tags`, or InvalidInput naming the first bad key or value."""
    if tags is None:
        return {}
    if not isinstance(tags, Mapping):
        raise InvalidInput(f"`{where}` must be a dict like {{'split': 'train'}}; got {type(tags).__name__}.")
    cleaned: dict[str, Any] = {}
    for key, value in tags.items():
        if not isinstance(key, str) or not key:
            raise InvalidInput(f"Tag key {key!r} in `{where}` must be a non-empty string.")
        if key.startswith("$") or "." in key or "\x00" in key:
            raise InvalidInput(
                f"Tag key {key!r} in `{where}` is not allowed: keys may not start with '$' or contain '.' "
                f"(MongoDB reads them as operators/paths). Rename it, e.g. {key.replace('.', '_').lstrip('$')!r}."
            )
        cleaned[key] = _clean_value(value, f"{where}.{key}")
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


QUERY_OPERATORS = frozenset({
    "$and", "$or", "$nor", "$not", "$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists",
    "$type", "$all", "$elemMatch", "$size", "$regex", "$options", "$mod"})
_SERVER_CODE = frozenset({"$where", "$function", "$accumulator", "$expr"})


def _check_operators(value: Any, path: str, what: str) -> None:
    """Every `$` key is a query operator all MongoDB-protocol servers run; server-side code never is."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(key, str) and key.startswith("$"):
                if key in _SERVER_CODE:
                    raise InvalidInput(
                        f"`{what}` uses {key} at {path or 'the top level'}: TensorLab does not send server-side "
                        "code or expressions (not every server runs them, and they can run anything). Write the "
                        "condition with comparison operators, e.g. {'metrics.loss': {'$lt': 0.5}}.")
                if key not in QUERY_OPERATORS:
                    raise InvalidInput(
                        f"`{what}` uses unknown operator {key} at {path or 'the top level'}. Known operators: "
                        f"{', '.join(sorted(QUERY_OPERATORS))}.")
            _check_operators(item, f"{path}.{key}" if path else str(key), what)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_operators(item, f"{path}[{index}]", what)


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
    _check_operators(query, "", what)
    if fields is not None:
        _check_fields(query, fields, what, nested)
    return dict(query)


def split_metrics(metrics: Mapping[str, Any]) -> tuple[dict[str, float | None], dict[str, str]]:
    """Metric values as floats, with non-finite ones stored as null and flagged by name ('nan', 'inf', '-inf').

    Not every MongoDB-protocol server accepts NaN on the wire (FerretDB closes the connection), so
    the flag map carries the value portably; `restore_metrics` puts it back when reading.
    """
    values: dict[str, float | None] = {}
    non_finite: dict[str, str] = {}
    for name, value in metrics.items():
        if not isinstance(name, str) or not name or name.startswith("$") or "." in name:
            raise InvalidInput(f"Metric name {name!r} must be a non-empty string without '.' or a leading '$'.")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise InvalidInput(f"Metric {name}={value!r} is not a number; log numbers only.") from None
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


def without_non_finite(value: Any, path: str = "") -> tuple[Any, list[dict[str, str]]]:
    """`value` with every NaN/inf (at any depth) replaced by None, and where each was: [{path, value}].

    Why: some servers refuse non-finite numbers in documents (FerretDB drops the connection), and a
    run summary holding a NaN loss would then never be written; the flags keep what the value was."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None, [{"path": path, "value": repr(value)}]
    if isinstance(value, Mapping):
        cleaned, flags = {}, []
        for key, item in value.items():
            cleaned[key], found = without_non_finite(item, f"{path}.{key}" if path else str(key))
            flags += found
        return cleaned, flags
    if isinstance(value, (list, tuple)):
        cleaned_items, flags = [], []
        for index, item in enumerate(value):
            cleaned_item, found = without_non_finite(item, f"{path}[{index}]")
            cleaned_items.append(cleaned_item)
            flags += found
        return cleaned_items, flags
    return value, []
