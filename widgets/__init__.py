"""ipywidgets panels for TensorLab, installed as `tensorlab.widgets`.

Each panel is a VBox of small widgets plus one Output for errors, refreshes off the training thread,
and carries an HTML fallback so a notebook saved without widget state still shows its result. Charts are
`ChartFeed` widgets: the lab extension's chart code in the browser, fed only new points by the kernel.
`LivePanel` hooks into Keras training, so it (and Keras) load on first use only: `%tdb_jobs` and the
other panels never import Keras or TensorFlow.
"""

from __future__ import annotations

from typing import Any

from .charts import ChartFeed
from .comparison_panel import ComparisonPanel
from .data_panel import DataPanel
from .jobs_panel import JobQueuePanel

__all__ = ["ChartFeed", "ComparisonPanel", "DataPanel", "JobQueuePanel", "LivePanel"]


def __getattr__(name: str) -> Any:
    if name == "LivePanel":
        from .live_panel import LivePanel

        return LivePanel
    raise AttributeError(f"module 'tensorlab.widgets' has no attribute {name!r}")
