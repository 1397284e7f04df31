"""Query operands: every `$` operator's argument checked before a query reaches the server.

Why: a server refuses `{'$in': 5}`, `{'$size': -1}`, `{'$and': 'x'}` or an invalid regex with an OperationFailure
far from the call (and FerretDB drops the connection on NaN); here each gets a message naming where it is.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from .errors import InvalidInput
from .validation_values import MAX_DEPTH, check_int, clean_value, short

QUERY_OPERATORS = frozenset({
    "$and", "$or", "$nor", "$not", "$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists",
    "$type", "$all", "$elemMatch", "$size", "$regex", "$options", "$mod"})
_SERVER_CODE = frozenset({"$where", "$function", "$accumulator", "$expr"})
_LOGICAL = ("$and", "$or", "$nor")
_REGEX_OPTIONS = set("imsxu")


def _refuse(what: str, path: str, message: str) -> InvalidInput:
    return InvalidInput(f"`{what}` at {path or 'the top level'}: {message}")


def _operand(value: Any, path: str, what: str, depth: int) -> Any:
    """A value compared with stored ones, as BSON stores it (or a compiled regex); never NaN/inf."""
    if isinstance(value, re.Pattern):
        return value
    if isinstance(value, float) and not math.isfinite(value):
        raise _refuse(what, path, f"{value!r} never matches: TensorLab stores NaN/inf as null, flagged (see "
                      "`non_finite`). Compare with None instead.")
    try:
        return clean_value(value, f"`{what}` at {path}", depth=depth, extra=(bytes,),
                           what="JSON-like values, datetimes, ids and compiled regexes")
    except InvalidInput as error:
        raise InvalidInput(f"{error} Query values must be what documents store.") from None


def _regex(value: Any, options: Any, path: str, what: str) -> Any:
    if isinstance(value, re.Pattern):
        return value
    if not isinstance(value, str):
        raise _refuse(what, path, f"$regex takes a string pattern; got {short(value)}.")
    try:
        re.compile(value)
    except re.error as error:
        raise _refuse(what, path, f"$regex {short(value)} is not a valid regular expression ({error}). Escape "
                      "special characters with re.escape(...) to match text literally.") from None
    if options is not None and (not isinstance(options, str) or set(options) - _REGEX_OPTIONS):
        raise _refuse(what, path, f"$options {short(options)} may hold only the letters i, m, s, x and u.")
    return value


def _whole(value: Any, path: str, what: str, message: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _refuse(what, path, f"{message}; got {short(value)}.")
    return check_int(value, f"`{what}` at {path}")


def _mod(value: Any, path: str, what: str) -> list[Any]:
    ok = isinstance(value, (list, tuple)) and len(value) == 2 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    if not ok or value[0] == 0:
        raise _refuse(what, path, f"$mod takes [divisor, remainder] with a non-zero divisor; got {short(value)}.")
    return [check_int(v, f"`{what}` at {path}") if isinstance(v, int) else v for v in value]


def _type(value: Any, path: str, what: str) -> Any:
    items = value if isinstance(value, (list, tuple)) else [value]
    if not items or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in items):
        raise _refuse(what, path, f"$type takes a type name or number (or a list of them), e.g. 'string'; "
                      f"got {short(value)}.")
    return value


def _listed(key: str, value: Any, where: str, what: str, depth: int) -> list[Any]:
    if not isinstance(value, (list, tuple)):
        raise _refuse(what, where, f"{key} takes a list, e.g. {{'label': {{'{key}': [1, 2]}}}}; got "
                      f"{type(value).__name__} {short(value)}.")
    return [_condition(item, f"{where}[{i}]", what, depth + 1) if key == "$all" and isinstance(item, Mapping)
            else _operand(item, f"{where}[{i}]", what, depth + 1) for i, item in enumerate(value)]


def _operator(key: str, value: Any, expression: Mapping[str, Any], path: str, what: str, depth: int) -> Any:
    """One operator's argument, checked (and as BSON stores it)."""
    where = f"{path}.{key}"
    if key in ("$in", "$nin", "$all"):
        return _listed(key, value, where, what, depth)
    if key == "$size":
        return _whole(value, where, what, "$size takes a whole number >= 0 (an array's length)")
    if key == "$regex":
        return _regex(value, expression.get("$options"), where, what)
    if key == "$options" and "$regex" not in expression:
        raise _refuse(what, where, "$options goes with $regex, e.g. {'$regex': 'tr', '$options': 'i'}.")
    if key == "$options":
        return value
    if key == "$exists" and value not in (True, False, 0, 1):
        raise _refuse(what, where, f"$exists takes True or False; got {short(value)}.")
    if key == "$exists":
        return bool(value)
    if key == "$mod":
        return _mod(value, where, what)
    if key == "$type":
        return _type(value, where, what)
    if key in ("$not", "$elemMatch"):
        allowed = (Mapping, re.Pattern) if key == "$not" else (Mapping,)
        if not isinstance(value, allowed):
            raise _refuse(what, where, f"{key} takes a dict of conditions such as {{'$gt': 1}}; got {short(value)}.")
        return _condition(value, where, what, depth + 1)
    if key in _LOGICAL:
        raise _refuse(what, where, f"{key} belongs at the top level of a query (or of $elemMatch), e.g. "
                      f"{{'{key}': [{{'label': 1}}, {{'label': 2}}]}}.")
    return _operand(value, where, what, depth + 1)  # $eq, $ne, $gt, $gte, $lt, $lte


def check_operator_name(key: str, path: str, what: str) -> None:
    """Every `$` key is a query operator all MongoDB-protocol servers run; server-side code never is."""
    if key in _SERVER_CODE:
        raise InvalidInput(
            f"`{what}` uses {key} at {path or 'the top level'}: TensorLab does not send server-side "
            "code or expressions (not every server runs them, and they can run anything). Write the "
            "condition with comparison operators, e.g. {'metrics.loss': {'$lt': 0.5}}.")
    if key not in QUERY_OPERATORS:
        raise InvalidInput(f"`{what}` uses unknown operator {key} at {path or 'the top level'}. Known operators: "
                           f"{', '.join(sorted(QUERY_OPERATORS))}.")


def _too_deep(what: str, path: str) -> InvalidInput:
    return _refuse(what, path, f"the query is nested more than {MAX_DEPTH} levels deep; MongoDB reads at most "
                   f"{MAX_DEPTH}. Flatten it.")


def _condition(value: Any, path: str, what: str, depth: int) -> Any:
    """What a field is compared with: an operator expression ({'$gt': 1}), a filter (inside $elemMatch), or a
    value matched by equality."""
    if depth > MAX_DEPTH:
        raise _too_deep(what, path)
    if isinstance(value, Mapping):
        bad = [key for key in value if not isinstance(key, str)]
        if bad:
            raise _refuse(what, path, f"field names and operators are strings; got key {short(bad[0])} "
                          f"({type(bad[0]).__name__}).")
    if not isinstance(value, Mapping) or not any(key.startswith("$") for key in value):
        if path.endswith(".$elemMatch") and isinstance(value, Mapping):
            return check_filter(value, what, path, depth)
        return _operand(value, path, what, depth)
    if path.endswith(".$elemMatch") and not all(key.startswith("$") for key in value):
        return check_filter(value, what, path, depth)
    cleaned = {}
    for key, item in value.items():
        if not key.startswith("$"):
            raise _refuse(what, path, f"{key!r} is mixed with operators; put a plain value under $eq, e.g. "
                          f"{{'$eq': {{{key!r}: ...}}}}.")
        check_operator_name(key, path, what)
        cleaned[key] = _operator(key, item, value, path, what, depth)
    return cleaned


def check_filter(query: Mapping[str, Any], what: str, path: str = "", depth: int = 0) -> dict[str, Any]:
    """A whole filter, as BSON will carry it; InvalidInput names the first problem and where it is."""
    if depth > MAX_DEPTH:
        raise _too_deep(what, path)
    cleaned = {}
    for key, value in query.items():
        if not isinstance(key, str) or not key or "\x00" in key:
            raise _refuse(what, path, f"field names are non-empty strings without NUL; got key {short(key)} "
                          f"({type(key).__name__}). Write it as a string, e.g. {{{str(key)!r}: ...}}.")
        where = f"{path}.{key}" if path else key
        if key in _LOGICAL:
            if not isinstance(value, (list, tuple)) or not value or not all(isinstance(v, Mapping) for v in value):
                raise _refuse(what, where, f"{key} takes a non-empty list of filters, e.g. {{'{key}': [{{'label': "
                              f"1}}, {{'label': 2}}]}}; got {short(value)}.")
            cleaned[key] = [check_filter(part, what, f"{where}[{i}]", depth + 1) for i, part in enumerate(value)]
        elif key.startswith("$"):
            check_operator_name(key, path, what)
            raise _refuse(what, path, f"{key} follows a field name, e.g. {{'label': {{'{key}': ...}}}}.")
        else:
            cleaned[key] = _condition(value, where, what, depth + 1)
    return cleaned
