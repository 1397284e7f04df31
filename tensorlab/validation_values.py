"""Values that reach BSON: what every MongoDB-protocol server stores as given, checked before anything is written.

Why here and not in the driver: pymongo refuses some values only while encoding (an int past 64 bits, a set),
after earlier writes of the same call went through, and some servers drop the connection on others (NaN on
FerretDB). Checking at the entry point keeps a refused call from changing anything.
"""

from __future__ import annotations

import datetime as dt
import math
import numbers
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from .errors import InvalidInput

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_DEPTH = 100  # MongoDB's own nesting limit for documents; a deeper value is a mistake, not data
_SCALARS = (str, bool, int, float, type(None))


def short(value: Any, width: int = 60) -> str:
    """`repr(value)` cut to `width` characters (a 10**400 int or a 5,000-deep dict stays one line)."""
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # ints past 4,300 digits, self-nesting containers
        text = f"<{type(value).__name__}>" if not isinstance(value, int) else f"<int of {value.bit_length()} bits>"
    return text if len(text) <= width else text[: width - 3] + "..."


def is_object_id(value: Any) -> bool:
    """A bson ObjectId (this layer does not import bson)."""
    return type(value).__name__ == "ObjectId" and type(value).__module__.startswith("bson")


def check_key(key: Any, where: str) -> str:
    """A document key: a non-empty string without NUL, '.' or a leading '$'."""
    if not isinstance(key, str) or not key:
        raise InvalidInput(f"Key {short(key)} in `{where}` must be a non-empty string; got "
                           f"{type(key).__name__}. Use string keys, e.g. {{{str(key)!r}: ...}}.")
    if key.startswith("$") or "." in key or "\x00" in key:
        fixed = key.replace(".", "_").replace("\x00", "").lstrip("$") or "name"
        raise InvalidInput(f"Key {short(key)} in `{where}` is not allowed: keys may not start with '$' or contain "
                           f"'.' or NUL (MongoDB reads them as operators/paths). Rename it, e.g. {fixed!r}.")
    return key


def check_int(value: int, where: str) -> int:
    if not INT64_MIN <= value <= INT64_MAX:
        raise InvalidInput(f"{where} is {short(value)}, outside the 64-bit range MongoDB stores (-2**63 to "
                           "2**63-1). Store it as a float or a string, e.g. str(value).")
    return int(value)


def _datetime(value: Any, where: str) -> dt.datetime:
    if isinstance(value, np.datetime64):
        if np.isnat(value):
            raise InvalidInput(f"{where} is NaT (not a time); use None for a missing time.")
        micros = value.astype("datetime64[us]").astype(np.int64)
        return dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(microseconds=int(micros))
    if isinstance(value, dt.datetime):
        return value
    raise InvalidInput(f"{where} is a {type(value).__name__} ({short(value)}); MongoDB stores date and time "
                       "together: pass a datetime.datetime, e.g. datetime.datetime(2024, 1, 31, tzinfo=timezone.utc).")


def _scalar(value: Any, where: str, finite: bool) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return check_int(value, where)
    if isinstance(value, float):
        if finite and not math.isfinite(value):
            raise InvalidInput(f"{where} is {value!r}; not every MongoDB-protocol server stores non-finite "
                               "numbers. Use None or a string, or log it as a metric (metrics keep NaN/inf, flagged).")
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"{where} is a string that is not valid UTF-8 ({short(value)}); MongoDB stores UTF-8 "
                           "text only. Remove the lone surrogate characters.") from None
    return value


JSON_LIKE = "JSON-like values (str, int, float, bool, None, datetime, lists and dicts of those)"


def clean_value(value: Any, where: str, *, depth: int = 0, finite: bool = True, extra: tuple[type, ...] = (),
                what: str = JSON_LIKE) -> Any:
    """`value` as BSON will store it (numpy scalars as Python ones, np.datetime64 as a UTC datetime), or
    InvalidInput naming `where`: ints past 64 bits, NaN/inf (unless `finite=False`), sets and other objects,
    non-string keys, nesting deeper than MAX_DEPTH. `extra` types are stored as they are (e.g. bytes)."""
    if depth > MAX_DEPTH:
        raise InvalidInput(f"{'.'.join(where.split('.')[:2])} is nested more than {MAX_DEPTH} levels deep; MongoDB "
                           f"stores at most {MAX_DEPTH}. Flatten it, or store it as a string (e.g. json.dumps).")
    if isinstance(value, (np.datetime64, dt.datetime, dt.date)):
        return _datetime(value, where)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, _SCALARS):
        return _scalar(value, where, finite)
    if is_object_id(value) or (extra and isinstance(value, extra)):
        return value
    if isinstance(value, (list, tuple)):
        return [clean_value(item, f"{where}[{i}]", depth=depth + 1, finite=finite, extra=extra, what=what)
                for i, item in enumerate(value)]
    if isinstance(value, Mapping):
        return {check_key(key, where): clean_value(item, f"{where}.{key}", depth=depth + 1, finite=finite,
                                                    extra=extra, what=what)
                for key, item in value.items()}
    hint = " (a set: pass a sorted list)" if isinstance(value, (set, frozenset)) else ""
    raise InvalidInput(f"{where} has a value of type {type(value).__name__}{hint}: {short(value)}; only {what} "
                       "can be stored. Store arrays with import_data/save_parameters.")


def clean_document(value: Mapping[str, Any], where: str, *, finite: bool = True) -> dict[str, Any]:
    """A whole document (a job's result, a run's fields): like `clean_value`, bytes and compiled regexes allowed."""
    if not isinstance(value, Mapping):
        raise InvalidInput(f"`{where}` must be a dict; got {type(value).__name__} {short(value)}.")
    return clean_value(value, where, finite=finite, extra=(bytes, re.Pattern),
                       what="JSON-like values, datetimes, ids and bytes")


def check_number(value: Any, name: str, *, integer: bool = False, minimum: float | None = None,
                 above: float | None = None, maximum: float | None = None, allow_none: bool = False) -> Any:
    """An argument that must be a number (an int with `integer`) within bounds; bools, NaN and inf are refused.
    Returns it as a plain int or float."""
    if value is None and allow_none:
        return None
    kind = "an int" if integer else "a number"
    bounds = [text for text, bound in ((f">= {minimum}", minimum), (f"> {above}", above), (f"<= {maximum}", maximum))
              if bound is not None]
    expected = f"{kind}{' ' + ' and '.join(bounds) if bounds else ''}{' or None' if allow_none else ''}"
    ok_type = numbers.Integral if integer else numbers.Real
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, ok_type):
        raise InvalidInput(f"Invalid value for argument `{name}`: {short(value)}. Expected {expected}.")
    number = int(value) if isinstance(value, numbers.Integral) else float(value)
    if isinstance(number, float) and not math.isfinite(number):
        raise InvalidInput(f"Invalid value for argument `{name}`: {short(value)}. Expected a finite number"
                           f"{': ' + expected if bounds else ''}.")
    too_big = abs(number) > INT64_MAX and maximum is None
    if too_big or (minimum is not None and number < minimum) or (above is not None and number <= above) or (
            maximum is not None and number > maximum):
        raise InvalidInput(f"Invalid value for argument `{name}`: {short(value)}. Expected {expected}"
                           f"{' (within the 64-bit range MongoDB stores)' if too_big else ''}.")
    return number


def check_name(value: Any, name: str, *, allow_none: bool = False) -> str | None:
    """A name argument (a run's, a worker's): a non-empty string without NUL."""
    if value is None and allow_none:
        return None
    if not isinstance(value, str) or not value.strip() or "\x00" in value:
        raise InvalidInput(f"Invalid value for argument `{name}`: {short(value)}. Expected a non-empty string "
                           f"(without NUL){' or None' if allow_none else ''}, e.g. {name}='mlp'.")
    return value


def check_seed(seed: Any) -> int | None:
    """A random seed as Keras takes it (keras.utils.set_random_seed), or None for "draw one and record it"."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32):
        raise InvalidInput(f"Invalid value for argument `seed`: {seed!r:.40}. Expected a whole number from 0 to "
                           "2**32 - 1, or None (TensorLab draws one and records it).")
    return seed
