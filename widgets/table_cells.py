"""How every panel table shows a cell: padded, numbers readable, missing values as a dash (never "nan")."""

from __future__ import annotations

import math
from typing import Any

from .svgchart import number

CELL_STYLE = "padding:3px 10px;border-bottom:1px solid #eee;text-align:left;white-space:nowrap"
MISSING = "—"


def cell_text(value: Any) -> str:
    """A table cell's text: a dash for None/NaN (a run still training has no best value yet)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if isinstance(value, float):
        return number(value)
    return str(value)
