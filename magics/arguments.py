"""Parsing what magics take on their line: queries as JSON or k=v pairs, tags, grids."""

from __future__ import annotations

import json
from typing import Any

from IPython.core.error import UsageError


def unquote(text: str | None) -> str | None:
    """`'x'` or `"x"` as x: IPython's magic arguments keep the quotes (so `--study ''` would name a study `''`)."""
    if isinstance(text, str) and len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def parse_value(text: str) -> Any:
    """JSON when it parses (numbers, true, lists...), else the text itself."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_pairs(pairs: list[str] | None, what: str) -> dict[str, Any]:
    """['k=v', 'n=3'] -> {'k': 'v', 'n': 3}."""
    result: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"{what} {pair!r} is not key=value (e.g. {what} split=train).")
        result[key] = parse_value(value)
    return result


def parse_query(text: str | list[str] | None) -> dict[str, Any] | None:
    """A MongoDB filter from JSON ('{"tags.split": "train"}') or k=v pairs ('tags.split=train label=3')."""
    if text is None:
        return None
    if isinstance(text, list):
        text = " ".join(text)
    text = text.strip()
    if not text:
        return None
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            raise UsageError(f"Query is not valid JSON: {error}. Example: '{{\"tags.split\": \"train\"}}'") from None
        if not isinstance(value, dict):
            raise UsageError("A query must be a JSON object.")
        return value
    return parse_pairs(text.split(), "query")


def parse_grid(items: list[str] | None) -> dict[str, list[Any]]:
    """['lr=0.1,0.01', 'units=32,64'] -> {'lr': [0.1, 0.01], 'units': [32, 64]}."""
    grid: dict[str, list[Any]] = {}
    for item in items or []:
        key, sep, values = item.partition("=")
        if not sep or not key or not values:
            raise UsageError(f"--grid {item!r} is not key=v1,v2,... (e.g. --grid lr=0.1,0.01).")
        grid[key] = [parse_value(v) for v in values.split(",")]
    return grid


def require_positive(args: Any, *options: str) -> None:
    """UsageError naming the first option (e.g. `--epochs`) whose value is below 1: never train 0 epochs
    or push no job silently."""
    for option in options:
        value = getattr(args, option.lstrip("-").replace("-", "_"))
        if value is not None and value < 1:
            raise UsageError(f"{option} must be 1 or more; got {value}.")
