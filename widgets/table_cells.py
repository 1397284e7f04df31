"""How every panel table shows a cell: padded, numbers readable, missing values as a dash (never "nan")."""

from __future__ import annotations

import math
from typing import Any

CELL_STYLE = "padding:3px 10px;border-bottom:1px solid #eee;text-align:left;white-space:nowrap"
MISSING = "—"


def number(value: float) -> str:
    """1,000 not 1e+03; 0.0123; 1.5e-05 only where plain digits would mislead."""
    if value == int(value) and abs(value) < 1e9:
        return f"{int(value):,}"
    if abs(value) >= 1e4:
        return f"{value:,.0f}"
    if abs(value) >= 1e-3:
        return f"{value:.4g}"
    return f"{value:.2e}"


def cell_text(value: Any) -> str:
    """A table cell's text: a dash for None/NaN (a run still training has no best value yet)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if isinstance(value, float):
        return number(value)
    return str(value)
