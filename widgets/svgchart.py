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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
MAX_POINTS = 400
HOVER_POINTS = 60  # per series: points that show their value under the pointer
PADDING = (52, 20, 22, 34)  # left, right, top (below the legend), bottom
LEGEND_ROW = 14
# Hover read-out in plain SVG + CSS: no script, so it works in any notebook view and in saved output.
HOVER_STYLE = (".tl-pt circle{fill:transparent}.tl-pt .tl-tip{visibility:hidden;pointer-events:none}"
               ".tl-pt:hover circle{fill:currentColor}.tl-pt:hover .tl-tip{visibility:visible}")


def downsample(xs: Sequence[float], ys: Sequence[float], limit: int = MAX_POINTS) -> tuple[list, list]:
    """At most `limit` points, evenly spaced, always keeping the last one."""
    n = len(xs)
    if n <= limit:
        return list(xs), list(ys)
    step = n / limit
    index = [int(i * step) for i in range(limit - 1)] + [n - 1]
    return [xs[i] for i in index], [ys[i] for i in index]


def smooth(ys: Sequence[float], weight: float) -> list[float]:
    """TensorBoard's smoothing: an exponential moving average, debiased so the first points are not pulled
    towards zero. `weight` 0 returns the values unchanged."""
    if weight <= 0:
        return list(ys)
    smoothed, last, scale = [], 0.0, 0.0
    for y in ys:
        last = last * weight + (1 - weight) * y
        scale = scale * weight + (1 - weight)
        smoothed.append(last / scale)
    return smoothed


def _ticks(low: float, high: float, count: int = 4) -> list[float]:
    if high <= low:
        return [low]
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = min((m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw), default=raw)
    start = math.ceil(low / step) * step
    return [start + i * step for i in range(int((high - start) / step) + 1)]


def number(value: float) -> str:
    """A tick or read-out label: 1,000 not 1e+03; 0.0123; 1.5e-05 only where plain digits would mislead."""
    if value == int(value) and abs(value) < 1e9:
        return f"{int(value):,}"
    if abs(value) >= 1e4:
        return f"{value:,.0f}"
    if abs(value) >= 1e-3:
        return f"{value:.4g}"
    return f"{value:.2e}"


def _finite_series(series: Mapping[str, tuple[Sequence[float], Sequence[float]]], log_y: bool = False,
                   x_range: tuple[float, float] | None = None) -> dict[str, tuple[list, list]]:
    """Each series without its non-finite points (and, for a log axis, its non-positive ones), inside
    `x_range`, downsampled for display; empty series are left out. The data itself is never changed.
    In numpy: an update costs a few milliseconds at 100,000 points per series, not a Python loop over them."""
    clean: dict[str, tuple[list, list]] = {}
    for name, (xs, ys) in series.items():
        x = np.asarray(xs, dtype=float)
        if not isinstance(ys, np.ndarray) and None in ys:
            ys = [np.nan if v is None else v for v in ys]
        y = np.asarray(ys, dtype=float)
        keep = np.isfinite(x) & np.isfinite(y)
        if log_y:
            keep &= y > 0
        if x_range is not None:
            keep &= (x >= x_range[0]) & (x <= x_range[1])
        x, y = x[keep], y[keep]
        if len(x):
            if len(x) > MAX_POINTS:
                index = np.linspace(0, len(x) - 1, MAX_POINTS).astype(int)  # evenly spaced, first and last kept
                x, y = x[index], y[index]
            clean[name] = (x.tolist(), y.tolist())
    return clean


@dataclass
class _Plot:
    """Where the data range lands in the SVG: the plot rectangle and the value range it shows (for a log axis,
    in log10 units)."""

    left: float
    top: float
    width: float
    height: float
    x0: float
    x1: float
    y0: float
    y1: float
    log_y: bool = False

    @classmethod
    def around(cls, clean: dict[str, tuple[list, list]], width: int, height: int, top: float,
               log_y: bool) -> _Plot:
        all_x = [x for xs, _ in clean.values() for x in xs]
        all_y = [math.log10(y) if log_y else y for _, ys in clean.values() for y in ys]
        x0, x1, y0, y1 = min(all_x), max(all_x), min(all_y), max(all_y)
        if x1 == x0:
            x1 = x0 + 1
        if y1 == y0:
            y0, y1 = y0 - 0.5, y1 + 0.5
        left, right, _, bottom = PADDING
        return cls(left, top, width - left - right, height - top - bottom, x0, x1, y0, y1, log_y)

    def sx(self, x: float) -> float:
        return self.left + (x - self.x0) / (self.x1 - self.x0) * self.width

    def sy(self, y: float) -> float:
        value = math.log10(y) if self.log_y else y
        return self.top + (1 - (value - self.y0) / (self.y1 - self.y0)) * self.height

    def y_ticks(self) -> list[float]:
        if self.log_y:
            powers = [10.0 ** k for k in range(math.ceil(self.y0), math.floor(self.y1) + 1)]
            if len(powers) >= 2:
                return powers
            return [t for t in _ticks(10.0 ** self.y0, 10.0 ** self.y1) if t > 0]  # less than a decade shown
        return _ticks(self.y0, self.y1)


def _axes(plot: _Plot, x_label: str, y_label: str, height: int) -> list[str]:
    parts = [f'<rect x="{plot.left}" y="{plot.top}" width="{plot.width}" height="{plot.height}" fill="none" '
             'stroke="#ccc"/>']
    for tick in plot.y_ticks():
        parts.append(
            f'<line x1="{plot.left}" x2="{plot.left + plot.width}" y1="{plot.sy(tick):.1f}" y2="{plot.sy(tick):.1f}" '
            f'stroke="#eee"/><text x="{plot.left - 4}" y="{plot.sy(tick) + 4:.1f}" text-anchor="end">'
            f"{number(tick)}</text>"
        )
    for tick in _ticks(plot.x0, plot.x1):
        parts.append(f'<text x="{plot.sx(tick):.1f}" y="{plot.top + plot.height + 14}" text-anchor="middle">'
                     f"{number(tick)}</text>")
    parts.append(
        f'<text x="{plot.left + plot.width / 2}" y="{height - 4}" text-anchor="middle" fill="#555">'
        f"{html.escape(x_label)}</text>"
    )
    if y_label:
        middle = plot.top + plot.height / 2
        label = html.escape(y_label + (" (log)" if plot.log_y else ""))
        parts.append(f'<text x="12" y="{middle:.1f}" text-anchor="middle" fill="#555" '
                     f'transform="rotate(-90 12 {middle:.1f})">{label}</text>')
    return parts


def _legend(names: list[str], width: int) -> tuple[list[str], float]:
    """Swatch + name for each series in rows above the plot (never over the curves); returns the parts and
    the y where the plot may start."""
    parts, x, y = [], float(PADDING[0]), 30.0
    for index, name in enumerate(names):
        span = 18 + 6.2 * len(name) + 10
        if x + span > width and x > PADDING[0]:
            x, y = float(PADDING[0]), y + LEGEND_ROW
        color = PALETTE[index % len(PALETTE)]
        parts.append(f'<rect x="{x:.0f}" y="{y - 8}" width="12" height="3" fill="{color}"/>'
                     f'<text class="tl-legend" x="{x + 16:.0f}" y="{y - 3}" fill="#333">{html.escape(name)}</text>')
        x += span
    return parts, y + 4


def _hover_points(plot: _Plot, name: str, color: str, xs: list, ys: list) -> list[str]:
    """Points that show `name: x, y` under the pointer (CSS :hover; the values are the data, not the drawing)."""
    hx, hy = downsample(xs, ys, HOVER_POINTS)
    parts = []
    for x, y in zip(hx, hy, strict=True):
        px, py = plot.sx(x), plot.sy(y)
        anchor = "end" if px > plot.left + plot.width / 2 else "start"
        shift = -6 if anchor == "end" else 6
        parts.append(
            f'<g class="tl-pt" color="{color}"><circle cx="{px:.1f}" cy="{py:.1f}" r="4"/>'
            f'<text class="tl-tip" x="{px + shift:.1f}" y="{max(plot.top + 10, py - 6):.1f}" text-anchor="{anchor}" '
            f'fill="#111" stroke="#fff" stroke-width="3" paint-order="stroke">'
            f"{html.escape(name)}: {number(x)}, {number(y)}</text></g>")
    return parts


def _lines(plot: _Plot, clean: dict[str, tuple[list, list]], highlight: str | None, smoothing: float,
           colors: dict[str, str]) -> list[str]:
    lines, hovers = [], []
    for name, (xs, ys) in clean.items():
        color = colors[name]
        width_px = 3 if name == highlight else 1.5
        shown = smooth(ys, smoothing)
        if smoothing > 0:  # the exact values stay visible, faint, under the smoothed line
            raw = " ".join(f"{plot.sx(x):.1f},{plot.sy(y):.1f}" for x, y in zip(xs, ys, strict=True))
            lines.append(f'<polyline class="raw" fill="none" stroke="{color}" stroke-opacity="0.25" '
                         f'stroke-width="1" points="{raw}"/>')
        points = " ".join(f"{plot.sx(x):.1f},{plot.sy(y):.1f}" for x, y in zip(xs, shown, strict=True))
        lines.append(
            f'<polyline class="series" data-name="{html.escape(name)}" fill="none" stroke="{color}" '
            f'stroke-width="{width_px}" points="{points}"/>'
        )
        hovers += _hover_points(plot, name, color, xs, ys)
    return lines + hovers


def line_chart(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    title: str = "",
    x_label: str = "step",
    y_label: str = "",
    width: int = 420,
    height: int = 240,
    highlight: str | None = None,
    log_y: bool = False,
    smoothing: float = 0.0,
    hidden: Iterable[str] = (),
    x_range: tuple[float, float] | None = None,
) -> str:
    """An SVG chart of named (xs, ys) series: legend above the plot, values on hover, optional log y axis,
    smoothing (TensorBoard's EMA, raw values kept faint) and x range; `hidden` series keep their colour."""
    colors = {name: PALETTE[index % len(PALETTE)] for index, name in enumerate(series)}
    hidden = set(hidden)
    clean = _finite_series({k: v for k, v in series.items() if k not in hidden}, log_y, x_range)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="tensorlab-chart" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" style="font:11px sans-serif;background:#fff">',
        f"<style>{HOVER_STYLE}</style>",
        f'<text x="{PADDING[0]}" y="14" font-weight="bold">{html.escape(title)}</text>',
    ]
    if not clean:
        parts.append(
            f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" fill="#888">waiting for data</text></svg>'
        )
        return "".join(parts)
    legend, top = _legend(list(clean), width)
    plot = _Plot.around(clean, width, height, top, log_y)
    return "".join([*parts, *legend, *_axes(plot, x_label, y_label, height),
                    *_lines(plot, clean, highlight, smoothing, colors), "</svg>"])
