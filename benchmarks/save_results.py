"""Where every benchmark leaves its figures: benchmarks/results/<name>.json (gitignored)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def write_results(name: str, results: dict[str, Any]) -> Path:
    """Write `results` as benchmarks/results/<name>.json and say where."""
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{name}.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")
    return out
