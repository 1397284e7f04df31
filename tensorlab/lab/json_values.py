"""Documents as the browser can read them: strict JSON (no NaN), ids as hex text, times as ISO 8601 in UTC.

Why here and not `json.dumps(default=str)`: Python's json writes NaN and Infinity, which `JSON.parse`
refuses; a stored NaN metric (flagged `non_finite`) must arrive as null, not break the whole answer.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

MAX_DEPTH = 20


def _is_object_id(value: Any) -> bool:
    return type(value).__name__ == "ObjectId" and hasattr(value, "generation_time")


def plain(value: Any, depth: int = 0) -> Any:
    """`value` with only JSON types left: dicts, lists, str, finite numbers, bools and None."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value if abs(value) < 2 ** 53 else str(value)  # JavaScript numbers are doubles
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if depth > MAX_DEPTH:
        return "…"
    if isinstance(value, Mapping):
        return {str(k): plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [plain(v, depth + 1) for v in value]
    if isinstance(value, dt.datetime):
        stamp = value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
        return stamp.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")
    if _is_object_id(value):
        return str(value)
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return plain(value.item(), depth + 1)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value)} bytes>"
    return str(value)
