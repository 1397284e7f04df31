"""Queries kept inside documents: as MongoDB Extended JSON text, since `$` keys are not valid field names."""

from __future__ import annotations

from typing import Any

from bson import json_util


def query_to_text(query: Any) -> str | None:
    """Data queries may hold `$` operators, which are not valid field names: keep them as JSON text."""
    return None if query is None else json_util.dumps(query)


def query_from_text(text: str | None) -> Any:
    return None if text is None else json_util.loads(text)
