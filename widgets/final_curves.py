"""The picture a saved notebook keeps: a run's final curves as a PNG (matplotlib) with a text summary.

Widgets need a live kernel or saved widget state; GitHub, nbviewer, nbval and a notebook opened next month show
ordinary outputs. So when a run ends, its panel adds one: an image of the curves the panel drew, and the final
figures in words (the image's text/plain, which is also what a terminal or a text diff shows).
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

Lines = Mapping[str, tuple[Sequence[Any], Sequence[Any]]]


def curves_png(groups: Mapping[str, Lines], *, x_label: str = "training step", log_y: bool = False) -> bytes | None:
    """One subplot per group (title → {label: (xs, ys)}); None when there is nothing to draw."""
    groups = {title: lines for title, lines in groups.items() if any(len(xs) for xs, _ in lines.values())}
    if not groups:
        return None
    from matplotlib.figure import Figure  # no pyplot: no global state, safe off the main thread

    figure = Figure(figsize=(4.2 * len(groups), 3.0), dpi=90)
    for index, (title, lines) in enumerate(groups.items(), start=1):
        axes = figure.add_subplot(1, len(groups), index)
        for label, (xs, ys) in lines.items():
            if len(xs):
                points = [(x, y) for x, y in zip(xs, ys, strict=False) if y is not None and math.isfinite(y)]
                few = len(points) < 30  # an epoch-level line of a few points: show the points too
                axes.plot([p[0] for p in points], [p[1] for p in points], label=label, linewidth=1.3,
                          marker="o" if few else None, markersize=3)
        if log_y:
            axes.set_yscale("log")
        axes.set_title(title, fontsize=10)
        axes.set_xlabel(x_label, fontsize=8)
        axes.tick_params(labelsize=7)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


class FinalCurves:
    """An output of a PNG and its summary in words; displayed (or updated into a display) by the panels."""

    def __init__(self, png: bytes | None, summary: str) -> None:
        self.png, self.summary = png, summary

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        bundle = {"text/plain": self.summary}
        if self.png:
            bundle["image/png"] = base64.b64encode(self.png).decode("ascii")
        return bundle


class Placeholder:
    """An empty output reserved when a panel is shown; the run's FinalCurves replace it when the run ends."""

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"text/plain": ""}


def summary_line(name: str, status: str, where: str, finals: Mapping[str, float]) -> str:
    """'run mlp_small finished · epoch 6/6 · loss 0.312 · val_accuracy 0.951'."""
    figures = " · ".join(f"{metric} {value:.4g}" for metric, value in finals.items())
    return " · ".join(part for part in (f"run {name} {status}", where, figures) if part)
