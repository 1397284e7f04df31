"""Parallel coordinates as SVG: one vertical axis per hyper-parameter and one for the metric, one line per run.

Why: a grid of runs is read by the eye along its hyper-parameters, not down a table. Numbers sit on a
min-max axis; text values are spaced evenly in sorted order; the best run is drawn on top, thicker, and
every line shows `run: metric` under the pointer (the same CSS read-out as the line charts).
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

from .svgchart import HOVER_STYLE, PALETTE, number

MARGIN = (40, 30, 40, 30)  # left, right, top, bottom


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _axis_positions(values: list[Any]) -> tuple[dict[Any, float], list[tuple[float, str]]]:
    """Each value's place on its axis (0 = bottom, 1 = top) and the axis' tick labels."""
    present = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if present and all(_is_number(v) for v in present):
        low, high = min(present), max(present)
        span = (high - low) or 1.0
        places = {v: (v - low) / span if high > low else 0.5 for v in present}
        return places, [(0.0, number(low)), (1.0, number(high))] if high > low else [(0.5, number(low))]
    ordered = sorted({str(v) for v in present})
    spacing = {v: (i / (len(ordered) - 1) if len(ordered) > 1 else 0.5) for i, v in enumerate(ordered)}
    return {v: spacing[str(v)] for v in present}, [(spacing[v], v) for v in ordered]


def parallel_chart(rows: Sequence[Mapping[str, Any]], axes: Sequence[str], *, label: str = "run",
                   highlight: str | None = None, width: int = 640, height: int = 240) -> str:
    """An SVG of `rows` (dicts) across `axes` (their keys); a row missing a value breaks its line there."""
    left, right, top, bottom = MARGIN
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="tensorlab-parallel" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}" style="font:11px sans-serif;background:#fff">',
             f"<style>{HOVER_STYLE}</style>"]
    if len(axes) < 2 or not rows:
        parts.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" fill="#888">'
                     "parallel coordinates need runs with hyper-parameters</text></svg>")
        return "".join(parts)
    gap = (width - left - right) / (len(axes) - 1)
    plot_height = height - top - bottom
    layout = {axis: _axis_positions([row.get(axis) for row in rows]) for axis in axes}
    for index, axis in enumerate(axes):
        x = left + index * gap
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + plot_height}" stroke="#999"/>'
                     f'<text x="{x:.1f}" y="{top - 16}" text-anchor="middle" font-weight="bold">'
                     f"{html.escape(axis)}</text>")
        for place, text in layout[axis][1]:
            y = top + (1 - place) * plot_height
            parts.append(f'<text x="{x + 4:.1f}" y="{y + 4:.1f}" fill="#555">{html.escape(str(text))}</text>')
    ordered = sorted(rows, key=lambda row: row.get(label) == highlight)  # the best run is drawn last, on top
    for index, row in enumerate(ordered):
        best = row.get(label) == highlight
        color = "#d62728" if best else PALETTE[index % len(PALETTE)]
        points = []
        for position, axis in enumerate(axes):
            place = layout[axis][0].get(row.get(axis))
            if place is not None:
                points.append((left + position * gap, top + (1 - place) * plot_height))
        if not points:
            continue
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        tip = f"{row.get(label)}: {axes[-1]} {number(row[axes[-1]]) if _is_number(row.get(axes[-1])) else '—'}"
        last_x, last_y = points[-1]
        name = html.escape(str(row.get(label)))
        parts.append(f'<g class="tl-pt" color="{color}"><polyline class="run" data-name="{name}" '
                     f'fill="none" stroke="{color}" stroke-width="{3 if best else 1.5}" points="{path}"/>'
                     f'<circle cx="{last_x:.1f}" cy="{last_y:.1f}" r="4"/>'
                     f'<text class="tl-tip" x="{last_x - 6:.1f}" y="{last_y - 6:.1f}" text-anchor="end" fill="#111" '
                     f'stroke="#fff" stroke-width="3" paint-order="stroke">{html.escape(tip)}</text></g>')
    parts.append("</svg>")
    return "".join(parts)
