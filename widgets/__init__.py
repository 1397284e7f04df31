"""ipywidgets panels for TensorLab, installed as `tensorlab.widgets`.

Each panel is a VBox of small widgets plus one Output for errors, refreshes off the training thread,
and carries an HTML fallback so a notebook saved without widget state still shows its result.
`LivePanel` hooks into Keras training, so it (and Keras) load on first use only: `%tdb_jobs` and the
other panels never import Keras or TensorFlow.
"""

from __future__ import annotations

from typing import Any

from .comparison_panel import ComparisonPanel
from .data_panel import DataPanel
from .jobs_panel import JobQueuePanel
from .svgchart import line_chart

__all__ = ["ComparisonPanel", "DataPanel", "JobQueuePanel", "LivePanel", "line_chart"]


def __getattr__(name: str) -> Any:
    if name == "LivePanel":
        from .live_panel import LivePanel

        return LivePanel
    raise AttributeError(f"module 'tensorlab.widgets' has no attribute {name!r}")
