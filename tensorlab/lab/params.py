"""Query-string parameters of the lab's HTTP API, checked at the door: a bad one is an HTTP 400 naming it.

Why a module of its own: every endpoint takes a few of the same parameters (`db`, `study`, `limit`,
`cursor`, ...), and the answer to a bad one must be the same everywhere (the parameter's name, the value
as received, what is expected), as Keras' argument errors are. Handlers pass the request's arguments in
as a plain `{name: text}` mapping, so this module knows nothing of tornado.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from tensorlab.errors import InvalidInput
from tensorlab.validation import check_database_name

HEX_ID = re.compile(r"^[0-9a-fA-F]{24}$")
NAME_LIST = re.compile(r"^[^,\x00]+(,[^,\x00]+)*$")
MAX_TEXT = 2_000


class BadParameter(InvalidInput):
    """A request parameter is missing or malformed; answered with HTTP 400 and this message."""

    def __init__(self, name: str, value: Any, expected: str) -> None:
        shown = repr(value) if value is None or len(str(value)) <= 80 else repr(str(value)[:80] + "...")
        super().__init__(f"Invalid value for parameter `{name}`: {shown}. Expected {expected}.")
        self.parameter = name


Arguments = Mapping[str, str]


def text(args: Arguments, name: str, default: str | None = None, *, required: bool = False) -> str | None:
    """A free-text parameter (trimmed); `required` refuses an absent or empty one."""
    value = args.get(name)
    if value is None or value == "":
        if required:
            raise BadParameter(name, value, "a non-empty value")
        return default
    if len(value) > MAX_TEXT or "\x00" in value:
        raise BadParameter(name, value, f"text of at most {MAX_TEXT} characters without NUL")
    return value


def integer(args: Arguments, name: str, default: int, *, minimum: int = 0, maximum: int = 1_000_000) -> int:
    value = args.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value, 10)
    except ValueError:
        raise BadParameter(name, value, f"a whole number from {minimum} to {maximum}") from None
    if not minimum <= number <= maximum:
        raise BadParameter(name, value, f"a whole number from {minimum} to {maximum}")
    return number


def number(args: Mapping[str, Any], name: str, *, required: bool = True) -> float | None:
    """A finite number (a job's priority), from a query string or a JSON body."""
    value = args.get(name)
    if value is None or value == "":
        if required:
            raise BadParameter(name, value, "a number")
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise BadParameter(name, value, "a number")
    try:
        parsed = float(value)
    except ValueError:
        raise BadParameter(name, value, "a number") from None
    if parsed != parsed or parsed in (float("inf"), float("-inf")):
        raise BadParameter(name, value, "a finite number")
    return int(parsed) if parsed.is_integer() and abs(parsed) < 2 ** 53 else parsed


def choice(args: Arguments, name: str, options: Sequence[str], default: str | None = None) -> str | None:
    value = args.get(name)
    if value is None or value == "":
        return default
    if value not in options:
        raise BadParameter(name, value, f"one of {', '.join(options)}")
    return value


def identifier(value: str | None, name: str) -> str:
    """A document id as the lab's URLs carry it: 24 hexadecimal digits (ObjectId)."""
    if value is None or not HEX_ID.match(value):
        raise BadParameter(name, value, "an id of 24 hexadecimal digits")
    return value.lower()


def identifiers(args: Arguments, name: str, *, most: int = 50) -> list[str]:
    """A comma-separated list of ids (at least one)."""
    value = args.get(name)
    if not value:
        raise BadParameter(name, value, "one or more ids of 24 hexadecimal digits, separated by commas")
    ids = value.split(",")
    if len(ids) > most:
        raise BadParameter(name, value, f"at most {most} ids")
    return [identifier(item, name) for item in ids]


def names(args: Arguments, name: str) -> list[str] | None:
    """A comma-separated list of names (metrics, kinds), or None when absent."""
    value = args.get(name)
    if value is None or value == "":
        return None
    if len(value) > MAX_TEXT or not NAME_LIST.match(value):
        raise BadParameter(name, value, "names separated by commas")
    return value.split(",")


def database(args: Arguments, default: str) -> str:
    value = args["db"] if "db" in args else default  # present but empty is a mistake, not "the default"
    try:
        return check_database_name(value)
    except InvalidInput:
        raise BadParameter("db", value, "a MongoDB database name such as 'tensorlab'") from None


def study(args: Arguments, default: str) -> str:
    value = args["study"] if "study" in args else default
    if not value or len(value) > MAX_TEXT or "\x00" in value:
        raise BadParameter("study", value, "a study name")
    return value


def json_object(args: Arguments, name: str) -> dict[str, Any] | None:
    """A JSON object parameter (e.g. `filter`), or None."""
    value = text(args, name)
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except ValueError:
        raise BadParameter(name, value, "a JSON object") from None
    if not isinstance(parsed, dict):
        raise BadParameter(name, value, "a JSON object")
    return parsed


def body_object(body: bytes) -> dict[str, Any]:
    """A request body that must be a JSON object (or empty)."""
    if not body:
        return {}
    try:
        parsed = json.loads(body)
    except ValueError:
        raise BadParameter("body", body.decode("utf-8", "replace"), "a JSON object") from None
    if not isinstance(parsed, dict):
        raise BadParameter("body", parsed, "a JSON object")
    return parsed
