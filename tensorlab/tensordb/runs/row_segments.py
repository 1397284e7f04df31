"""The run table's rows, decoded and encoded: pending rows (JSON text, one per write) and packed segments.

A segment holds many rows as packed columns (packed_columns.py): ids sorted, so the bytes they share pack to
almost nothing; row_versions; a float64 column per metric; and the rows' equality keys as uint32 codes into the
segment's dictionary of keys, row i's codes ending at `ends[i]`. The dictionary is JSON text, LZ4-packed too:
keys share long prefixes (`hyper_parameters.units=n:`), and a 10,000-run study's dictionaries were 40% of its
table's bytes as plain text. Read back with numpy and `lz4` alone (packed_columns.py says how).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from bson import ObjectId

from ..documents.packed_columns import PACKING, pack_array, unpack


@dataclass
class Rows:
    ids: np.ndarray  # S12 (numpy drops trailing zero bytes: `binary_ids` restores them)
    versions: np.ndarray  # int64: the run document's row_version when the row was made
    columns: dict[str, np.ndarray]
    match: np.ndarray | None = None  # bool per row: holds every key wanted
    keys: np.ndarray | None = None  # object: a list of keys per row (decoded for folds only)


def binary_ids(ids: np.ndarray) -> list[bytes]:
    """S12 ids as the 12 bytes of their ObjectId."""
    return [bytes(x).ljust(12, b"\0") for x in ids]


def pending_rows(pending: Mapping[str, str], wanted: list[str | None] | None) -> Rows:
    """Rows put one per write, keyed `<run>_<version in hex>`, each {"m": metrics, "k": keys} as JSON."""
    names = [key.split("_") for key in pending]
    return rows_of_dicts([ObjectId(run).binary for run, _ in names], [int(version, 16) for _, version in names],
                         [json.loads(row) for row in pending.values()], wanted)


def rows_of_dicts(ids: list[bytes], versions: list[int], rows: list[dict[str, Any]],
                  wanted: list[str | None] | None) -> Rows:
    """Rows given as {"m": metrics, "k": keys} (pending rows, rebuilt rows)."""
    names = sorted(set().union(*(row["m"] for row in rows))) if rows else []
    columns = {name: np.array([row["m"].get(name, np.nan) for row in rows], "<f8") for name in names}
    match = None if wanted is None else np.array([set(wanted) <= set(row["k"]) for row in rows], bool)
    return Rows(np.array(ids, "S12"), np.array(versions, "<i8"), columns, match, _objects([row["k"] for row in rows]))


def segment_rows(part: Mapping[str, Any], wanted: list[str | None] | None, with_keys: bool) -> Rows:
    """A segment's rows, with `match` for the keys `wanted` and, `with_keys`, each row's keys."""
    packing = part.get("packing")
    ids = unpack(part["ids"], "S12", packing)
    columns = {name: unpack(column, "<f8", packing) for name, column in (part.get("columns") or {}).items()}
    dictionary = json.loads(unpack(part["keys"], "u1", packing).tobytes())
    codes, ends = unpack(part["codes"], "<u4", packing), unpack(part["ends"], "<u4", packing)
    rows = Rows(ids, unpack(part["versions"], "<i8", packing), columns)
    if wanted is not None:
        code_of = {key: code for code, key in enumerate(dictionary)}
        want = [code_of.get(key) for key in wanted]  # type: ignore[arg-type]
        if None in want:
            rows.match = np.zeros(len(ids), bool)
        else:  # a row's keys are distinct: it matches when it holds as many of them as are wanted
            owners = np.searchsorted(ends, np.flatnonzero(np.isin(codes, want)), side="right")
            rows.match = np.bincount(owners, minlength=len(ids)) == len(set(want))
    if with_keys:
        starts = np.concatenate([[0], ends[:-1]]).astype(np.int64)
        rows.keys = _objects([[dictionary[c] for c in codes[a:b]] for a, b in zip(starts, ends, strict=True)])
    return rows


def segment(rows: Rows) -> dict[str, Any]:
    """Rows (with their keys) as one segment."""
    keys = list(rows.keys) if rows.keys is not None else [[] for _ in rows.ids]
    dictionary = sorted({key for row in keys for key in row})
    code_of = {key: code for code, key in enumerate(dictionary)}
    codes = np.array([code_of[key] for row in keys for key in row], "<u4")
    ends = np.cumsum([len(row) for row in keys], dtype="<u4") if keys else np.zeros(0, "<u4")
    text = np.frombuffer(json.dumps(dictionary).encode(), "u1")
    return {"packing": PACKING, "ids": pack_array(rows.ids.astype("S12")),
            "versions": pack_array(rows.versions.astype("<i8")),
            "columns": {name: pack_array(column.astype("<f8")) for name, column in rows.columns.items()},
            "keys": pack_array(text), "codes": pack_array(codes), "ends": pack_array(ends.astype("<u4"))}


def concat(parts: Iterable[Rows], matched: bool) -> Rows:
    parts = list(parts)
    if not parts:
        return Rows(np.zeros(0, "S12"), np.zeros(0, "<i8"), {}, np.zeros(0, bool) if matched else None, _objects([]))
    names = list(dict.fromkeys(name for part in parts for name in part.columns))
    columns = {name: np.concatenate([part.columns.get(name, np.full(len(part.ids), np.nan)) for part in parts])
               for name in names}
    match = np.concatenate([part.match for part in parts]) if matched else None  # type: ignore[misc]
    keys = np.concatenate([part.keys for part in parts]) if all(p.keys is not None for p in parts) else None
    return Rows(np.concatenate([part.ids for part in parts]), np.concatenate([part.versions for part in parts]),
                columns, match, keys)


def latest(rows: Rows) -> Rows:
    """One row per run: the one of the highest version."""
    order = np.lexsort((rows.versions, rows.ids))  # by id, then version: a run's newest row ends its group
    ids = rows.ids[order]
    last = order[np.append(ids[1:] != ids[:-1], True)] if len(ids) else order
    return Rows(rows.ids[last], rows.versions[last], {name: column[last] for name, column in rows.columns.items()},
                None if rows.match is None else rows.match[last], None if rows.keys is None else rows.keys[last])


def _objects(items: list[Any]) -> np.ndarray:
    """A 1-D object array of lists (np.array would make a 2-D array of lists of one length)."""
    array = np.empty(len(items), object)
    for position, item in enumerate(items):
        array[position] = item
    return array
