"""Line charts as SVG text: the browser draws them, the kernel only formats a string.

Why not matplotlib for live curves: rendering a figure to PNG costs tens of milliseconds of CPU
under the GIL, which a training thread on the same kernel feels; an SVG of a few hundred points per
series costs about a millisecond to format (measured in benchmarks/bench_widgets.py), is swapped
in one DOM update (no flicker), scales crisply, and still shows in a notebook saved without widget
state. matplotlib stays for static figures and PNG exports.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
MAX_POINTS = 400
PADDING = (48, 10, 22, 34)  # left, right, top, bottom


def downsample(xs: Sequence[float], ys: Sequence[float], limit: int = MAX_POINTS) -> tuple[list, list]:
    """At most `limit` points, evenly spaced, always keeping the last one."""
    n = len(xs)
    if n <= limit:
        return list(xs), list(ys)
    step = n / limit
    index = [int(i * step) for i in range(limit - 1)] + [n - 1]
    return [xs[i] for i in index], [ys[i] for i in index]


def _ticks(low: float, high: float, count: int = 4) -> list[float]:
    if high <= low:
        return [low]
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = min((m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw), default=raw)
    start = math.ceil(low / step) * step
    return [start + i * step for i in range(int((high - start) / step) + 1)]


def _label(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1e4 else f"{value:.2e}"


def _finite_series(series: Mapping[str, tuple[Sequence[float], Sequence[float]]]) -> dict[str, tuple[list, list]]:
    """Each series without its non-finite points, downsampled for display; empty series are left out."""
    clean: dict[str, tuple[list, list]] = {}
    for name, (xs, ys) in series.items():
        pairs = [
            (float(x), float(y))
            for x, y in zip(xs, ys, strict=False)
            if y is not None and math.isfinite(float(y)) and math.isfinite(float(x))
        ]
        if pairs:
            clean[name] = downsample([p[0] for p in pairs], [p[1] for p in pairs])
    return clean


@dataclass
class _Plot:
    """Where the data range lands in the SVG: the plot rectangle and the value range it shows."""

    left: float
    top: float
    width: float
    height: float
    x0: float
    x1: float
    y0: float
    y1: float

    @classmethod
    def around(cls, clean: dict[str, tuple[list, list]], width: int, height: int) -> _Plot:
        all_x = [x for xs, _ in clean.values() for x in xs]
        all_y = [y for _, ys in clean.values() for y in ys]
        x0, x1, y0, y1 = min(all_x), max(all_x), min(all_y), max(all_y)
        if x1 == x0:
            x1 = x0 + 1
        if y1 == y0:
            y0, y1 = y0 - 0.5, y1 + 0.5
        left, right, top, bottom = PADDING
        return cls(left, top, width - left - right, height - top - bottom, x0, x1, y0, y1)

    def sx(self, x: float) -> float:
        return self.left + (x - self.x0) / (self.x1 - self.x0) * self.width

    def sy(self, y: float) -> float:
        return self.top + (1 - (y - self.y0) / (self.y1 - self.y0)) * self.height


def _axes(plot: _Plot, x_label: str, height: int) -> list[str]:
    parts = [f'<rect x="{plot.left}" y="{plot.top}" width="{plot.width}" height="{plot.height}" fill="none" '
             'stroke="#ccc"/>']
    for tick in _ticks(plot.y0, plot.y1):
        parts.append(
            f'<line x1="{plot.left}" x2="{plot.left + plot.width}" y1="{plot.sy(tick):.1f}" y2="{plot.sy(tick):.1f}" '
            f'stroke="#eee"/><text x="{plot.left - 4}" y="{plot.sy(tick) + 4:.1f}" text-anchor="end">'
            f"{_label(tick)}</text>"
        )
    for tick in _ticks(plot.x0, plot.x1):
        parts.append(f'<text x="{plot.sx(tick):.1f}" y="{plot.top + plot.height + 14}" text-anchor="middle">'
                     f"{_label(tick)}</text>")
    parts.append(
        f'<text x="{plot.left + plot.width / 2}" y="{height - 4}" text-anchor="middle" fill="#555">'
        f"{html.escape(x_label)}</text>"
    )
    return parts


def _lines(plot: _Plot, clean: dict[str, tuple[list, list]], highlight: str | None) -> list[str]:
    parts = []
    for index, (name, (xs, ys)) in enumerate(clean.items()):
        color = PALETTE[index % len(PALETTE)]
        width_px = 3 if name == highlight else 1.5
        points = " ".join(f"{plot.sx(x):.1f},{plot.sy(y):.1f}" for x, y in zip(xs, ys, strict=True))
        parts.append(
            f'<polyline class="series" data-name="{html.escape(name)}" fill="none" stroke="{color}" '
            f'stroke-width="{width_px}" points="{points}"/>'
        )
        parts.append(
            f'<text x="{plot.left + 6}" y="{plot.top + 12 + 12 * index}" fill="{color}">{html.escape(name)}</text>'
        )
    return parts


def line_chart(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    title: str = "",
    x_label: str = "step",
    width: int = 420,
    height: int = 220,
    highlight: str | None = None,
) -> str:
    """An SVG chart of named (xs, ys) series; non-finite points are skipped."""
    clean = _finite_series(series)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="tensorlab-chart" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" style="font:11px sans-serif;background:#fff">',
        f'<text x="{PADDING[0]}" y="14" font-weight="bold">{html.escape(title)}</text>',
    ]
    if not clean:
        parts.append(
            f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" fill="#888">waiting for data</text></svg>'
        )
        return "".join(parts)
    plot = _Plot.around(clean, width, height)
    return "".join([*parts, *_axes(plot, x_label, height), *_lines(plot, clean, highlight), "</svg>"])
