"""MongoDB's equality for the scalars TensorLab indexes itself, and keys that follow it.

Index documents kept beside the data (data/sample_counts.py, equality_index.py, the catalog's plans) answer
equality queries without the server, so they must match exactly what MongoDB matches: numbers by value
across int and float (64 == 64.0), booleans only with booleans (True != 1), strings and ObjectIds by type
and value, and an array field by any of its elements. `canonical` gives a value the key under which it is
filed; values it cannot key (None, documents, numbers past 2**53 where int and float part ways) are never
filed, and queries on them take the exact path.
"""

from __future__ import annotations

from numbers import Number
from typing import Any

from bson import ObjectId

_EXACT_INTS = 2 ** 53  # beyond this an int and a float can be equal in Python but not in MongoDB
SCALARS = (str, int, float, bool, ObjectId)


def canonical(value: Any) -> str | None:
    """A key for a scalar that is equal exactly when MongoDB's equality says so; None when it has none."""
    if isinstance(value, bool):
        return "b:1" if value else "b:0"
    if isinstance(value, int):
        return f"n:{value}" if abs(value) < _EXACT_INTS else None
    if isinstance(value, float):
        if value != value or abs(value) >= _EXACT_INTS:
            return None
        if value.is_integer():
            return f"n:{int(value)}"
        return "n:" + repr(value).replace(".", "_")  # field names may not hold dots
    if isinstance(value, str):
        return "s:" + value.encode("utf-8", "surrogatepass").hex()
    if isinstance(value, ObjectId):
        return f"o:{value}"
    return None


def same_value(stored: Any, wanted: Any) -> bool:
    """MongoDB's equality for scalars: numbers compare across int/float, booleans only with booleans."""
    if isinstance(stored, bool) or isinstance(wanted, bool):
        return type(stored) is type(wanted) and stored == wanted
    if isinstance(stored, Number) and isinstance(wanted, Number):
        return stored == wanted
    return type(stored) is type(wanted) and stored == wanted


def field_matches(stored: Any, accepted: list[Any]) -> bool:
    """A stored field value (or any element of a stored array) equals one of the accepted scalars."""
    values = stored if isinstance(stored, list) else [stored]
    return any(same_value(value, wanted) for value in values for wanted in accepted)


def filed_values(stored: Any) -> list[Any]:
    """The scalars a stored field is filed under: the value itself, or each element of an array (once)."""
    values = stored if isinstance(stored, list) else [stored]
    keys, found = set(), []
    for value in values:
        key = canonical(value) if isinstance(value, SCALARS) else None
        if key is not None and key not in keys:
            keys.add(key)
            found.append(value)
    return found
