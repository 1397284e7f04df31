"""`checkpoint='best'` must know which way the monitored metric improves before the first epoch trains.

DBLogger asked the metric at the first epoch end, as Keras' own callbacks do, so a custom metric
without `mode=` was refused only after an epoch had trained (and a run was stored). Before training the
compiled metrics are not built yet, so besides the name table we ask the metric objects given to
`compile()` (their `_direction`), and refuse, naming `mode=`, when nothing can tell.
"""

from __future__ import annotations

from typing import Any

from .errors import InvalidInput
from .metric_direction import base_name, known_direction


def _compiled_direction(model: Any, name: str) -> str | None:
    """'max'/'min' from a metric object passed to compile() whose name is `name`, before Keras builds it."""
    container = getattr(model, "_compile_metrics", None)
    pending = [*(getattr(container, "_user_metrics", None) or []),
               *(getattr(container, "_user_weighted_metrics", None) or [])]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, (list, tuple)):
            pending.extend(item)
        elif getattr(item, "name", None) == name and getattr(item, "_direction", None) in ("up", "down"):
            return "max" if item._direction == "up" else "min"
    return None


def check_monitor(model: Any, monitor: str, mode: str, checkpoint: str | None) -> None:
    """InvalidInput asking for `mode=` when checkpoint='best' cannot tell whether a higher `monitor` is better."""
    if checkpoint != "best" or mode != "auto":
        return
    if known_direction(monitor, model) or _compiled_direction(model, base_name(monitor)):
        return
    raise InvalidInput(f"checkpoint='best' keeps the parameters with the best {monitor!r}, and TensorLab cannot tell "
                       f"whether a higher or a lower {monitor!r} is better. Pass mode='max' (higher is better) or "
                       "mode='min' (lower is better); in %%tdb_train, --mode max|min. Nothing was trained.")
