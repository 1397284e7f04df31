"""A bucket's rows as packed columns: little-endian arrays any tool reads with `numpy.frombuffer`.

Why columns of bytes: a server that keeps documents as JSON (FerretDB) rebuilds every nested object of
a reply; 500 rows as objects took 21 ms to return and as binary columns 1.5 ms (and 35 ms vs 3 ms to
rewrite). Float64 holds NaN and ±inf natively, so non-finite metrics need no workaround here.

Layout (bucket format 1): `columns.step` int64; `columns.time` float64 (Unix seconds); `columns.epoch`
and `columns.batch` float64 with NaN for "none"; `metrics.<name>` float64 per metric; `absent.<name>`
uint8 (1 = the row has no such metric), written only for metrics some rows lack.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from bson import Binary

OPTIONAL_COLUMNS = ("epoch", "batch")


def _pack(values: list[float], dtype: str) -> Binary:
    return Binary(np.asarray(values, dtype=dtype).tobytes())


def _unpack(packed: bytes, dtype: str) -> np.ndarray:
    return np.frombuffer(packed, dtype=dtype)


def row_cells(row: Mapping[str, Any]) -> int:
    """Bytes a row adds to a bucket: its fixed columns and one float per metric."""
    return 8 * (4 + len(row.get("metrics") or {}))


def encode_rows(rows: list[Mapping[str, Any]]) -> dict[str, Any]:
    """The `columns`, `metrics` and `absent` fields of a bucket holding `rows` (in order)."""
    names = sorted({name for row in rows for name in row.get("metrics") or {}})
    columns = {"step": _pack([row["step"] for row in rows], "<i8"), "time": _pack([row["time"] for row in rows], "<f8")}
    for name in OPTIONAL_COLUMNS:
        columns[name] = _pack([math.nan if row.get(name) is None else row[name] for row in rows], "<f8")
    metrics, absent = {}, {}
    for name in names:
        values = [(row.get("metrics") or {}).get(name) for row in rows]
        metrics[name] = _pack([math.nan if value is None else value for value in values], "<f8")
        if any(value is None for value in values):
            absent[name] = _pack([value is None for value in values], "u1")
    return {"columns": columns, "metrics": metrics, "absent": absent}


def decode_rows(bucket: Mapping[str, Any], start: int = 0) -> list[dict[str, Any]]:
    """Rows `start:` of a bucket as dicts: step, time, epoch/batch (None when absent), metrics, run, kind."""
    columns = bucket["columns"]
    steps = _unpack(columns["step"], "<i8")[start:].tolist()
    times = _unpack(columns["time"], "<f8")[start:].tolist()
    optional = {name: _unpack(columns[name], "<f8")[start:].tolist() for name in OPTIONAL_COLUMNS}
    metrics = {name: _unpack(packed, "<f8")[start:].tolist() for name, packed in bucket["metrics"].items()}
    absent = {name: _unpack(packed, "u1")[start:].tolist() for name, packed in (bucket.get("absent") or {}).items()}
    rows = []
    for index, step in enumerate(steps):
        row = {"run": bucket["run"], "kind": bucket["kind"], "step": step, "time": times[index],
               "metrics": {name: values[index] for name, values in metrics.items()
                           if not (name in absent and absent[name][index])}}
        for name, values in optional.items():
            row[name] = None if math.isnan(values[index]) else int(values[index])
        rows.append(row)
    return rows
