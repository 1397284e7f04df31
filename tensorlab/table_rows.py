"""One way to flatten a run or job into a table row, so every table names its columns alike.

`db.runs()`, `sweep_summary()` and the comparison panel all show hyper-parameters as `hp.<name>`
columns beside a few fixed columns and some metrics; they build their rows here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def flat_row(columns: Mapping[str, Any], hyper_parameters: Mapping[str, Any] | None,
             metrics: Mapping[str, Any] | None = None, metric_prefix: str = "") -> dict[str, Any]:
    """`columns` as they are, then `hp.<name>` for each hyper-parameter, then `<metric_prefix><name>` metrics."""
    return {
        **columns,
        **{f"hp.{name}": value for name, value in (hyper_parameters or {}).items()},
        **{f"{metric_prefix}{name}": value for name, value in (metrics or {}).items()},
    }
