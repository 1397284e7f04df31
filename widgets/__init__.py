"""ipywidgets panels for TensorLab, installed as `tensorlab.widgets`.

Each panel is a VBox of small widgets plus one Output for errors, refreshes off the training thread,
and carries an HTML fallback so a notebook saved without widget state still shows its result.
"""

from .comparison_panel import ComparisonPanel
from .data_panel import DataPanel
from .jobs_panel import JobQueuePanel
from .live_panel import LivePanel
from .svgchart import line_chart

__all__ = ["ComparisonPanel", "DataPanel", "JobQueuePanel", "LivePanel", "line_chart"]
