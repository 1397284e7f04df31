"""The kernel half of the notebook panels' charts: `ChartFeed`, an anywidget whose view is the lab extension's
own chart code (labextension/src/widget/notebookCharts.ts, bundled into widgets/static/charts.js).

Why a feed and not a picture: the kernel's work per update must not grow with the run. The feed keeps a
reference to each line's growing x and y lists (the panel's own, no copy) and remembers how many points of each
it has sent; `flush()` sends only the rest, as float64 buffers in one custom message. Everything a view does
with the points — downsampling to pixels, smoothing, log y, zoom, hover — happens in the browser. A view that
opens late asks for everything once (`sync`).
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anywidget
import numpy as np
import traitlets

STATIC = Path(__file__).resolve().parent / "static"
BUNDLE, STYLES = STATIC / "charts.js", STATIC / "charts.css"
NOT_BUILT_ESM = """
export default { render({ el }) {
  el.textContent = "TensorLab's notebook charts are not built: run `make labextension` (or `npm run build` in " +
    "labextension/) and re-run the cell.";
} };
"""


def _bundle() -> Any:
    """The built view module; a view that says how to build it when it is missing (a checkout without Node)."""
    if BUNDLE.exists():
        return BUNDLE
    warnings.warn("TensorLab: widgets/static/charts.js is not built, so panels show no charts; run "
                  "`make labextension`.", RuntimeWarning, stacklevel=2)
    return NOT_BUILT_ESM


def _floats(values: Sequence[Any]) -> bytes:
    """float64 bytes; None (a gap) becomes NaN, which the view draws as a gap."""
    return np.asarray(values, dtype=np.float64).tobytes()


class ChartFeed(anywidget.AnyWidget):
    """Line charts fed incrementally from the kernel. `charts`: [{key, title}]; `lines`: [{key, label, chart}]
    (optionally color, dash); the rest are the view's settings, settable from either side."""

    _esm = _bundle()
    _css = STYLES if STYLES.exists() else ""
    charts = traitlets.List(traitlets.Dict()).tag(sync=True)
    lines = traitlets.List(traitlets.Dict()).tag(sync=True)
    log_y = traitlets.Bool(False).tag(sync=True)
    smoothing = traitlets.Float(0.0, min=0.0, max=0.99).tag(sync=True)
    hidden = traitlets.List(traitlets.Unicode()).tag(sync=True)
    x_axis = traitlets.Unicode("step").tag(sync=True)
    x_label = traitlets.Unicode("").tag(sync=True)
    parallel = traitlets.Dict(allow_none=True, default_value=None).tag(sync=True)
    height = traitlets.Int(220).tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._data: dict[str, tuple[Sequence[Any], Sequence[Any]]] = {}
        self._sent: dict[str, int] = {}
        self._dropped: set[str] = set()
        self._reset = False
        self._lock = threading.Lock()  # the refresher thread flushes; a view's sync arrives on the kernel's
        self.points_sent = 0  # for tests and benchmarks: what went over the wire in total
        self.on_msg(self._on_view_message)

    # -- what the kernel side says ------------------------------------------------------------------
    def track(self, key: str, xs: Sequence[Any], ys: Sequence[Any]) -> None:
        """Follow a line's points. Lists the caller goes on appending to are followed as they grow (pass the same
        lists again, or not at all); a new pair of lists that extends what was sent is sent from where it left
        off; anything shorter starts the line over."""
        if key in self._data and len(xs) < self._sent.get(key, 0):
            self._dropped.add(key)
            self._sent[key] = 0
        self._data[key] = (xs, ys)

    def follow(self, lines: list[dict[str, Any]], points: dict[str, tuple[Sequence[Any], Sequence[Any]]]) -> None:
        """Show `lines` ([{key, label, chart}]) and track each one's points ({key: (xs, ys)}); then `flush()`."""
        self.lines = lines  # traitlets sends nothing when the list is unchanged
        for key, (xs, ys) in points.items():
            self.track(key, xs, ys)

    def resend_all(self) -> int:
        """Send every point again, the view emptied first: what a view that opens late asks for."""
        with self._lock:
            self._sent.clear()
            self._reset = True
            return self._flush()

    def clear(self) -> None:
        """Forget every line (the view empties at the next flush): a different x axis, a different metric."""
        self._data.clear()
        self._sent.clear()
        self._dropped.clear()
        self._reset = True

    def series(self, key: str) -> tuple[Sequence[Any], Sequence[Any]]:
        """A line's points as the kernel holds them (for the static picture at the end of a run)."""
        return self._data.get(key, ((), ()))

    def flush(self) -> int:
        """Send what the view lacks: new points only, as buffers. Returns how many points went."""
        with self._lock:
            return self._flush()

    def _flush(self) -> int:
        content: dict[str, Any] = {"type": "points", "reset": self._reset, "drop": sorted(self._dropped),
                                   "series": []}
        buffers: list[bytes] = []
        for key, (xs, ys) in self._data.items():
            start, end = self._sent.get(key, 0), min(len(xs), len(ys))
            if end > start:
                content["series"].append({"key": key, "n": end - start})
                buffers += [_floats(xs[start:end]), _floats(ys[start:end])]
                self._sent[key] = end
        if not content["series"] and not self._reset and not self._dropped:
            return 0
        self._reset, self._dropped = False, set()
        self.send(content, buffers)
        sent = sum(item["n"] for item in content["series"])
        self.points_sent += sent
        return sent

    # -- what a view says ---------------------------------------------------------------------------
    def _on_view_message(self, _widget: Any, content: Any, _buffers: list) -> None:
        if isinstance(content, dict) and content.get("type") == "sync":
            self.resend_all()  # every view gets everything again: one up to date replaces its points
