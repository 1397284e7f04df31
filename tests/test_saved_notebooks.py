"""Saved notebooks tell the truth (#15): what GitHub, nbviewer and VS Code show without a kernel is each
panel's text/html fallback, read here from the committed, nbconvert-executed demo notebook."""

from __future__ import annotations

import json
from pathlib import Path

DEMO = Path(__file__).resolve().parents[1] / "demo_notebooks" / "TensorLabDemo.ipynb"


def _live_panels(notebook: dict) -> list[dict]:
    return [output["data"] for cell in notebook["cells"] if cell["cell_type"] == "code"
            for output in cell.get("outputs", []) if "LivePanel(" in str(output.get("data", {}).get("text/plain", ""))]


def test_every_live_panel_in_the_saved_demo_shows_its_final_status_and_curves():
    panels = _live_panels(json.loads(DEMO.read_text()))
    assert len(panels) == 2  # mlp_small and mlp_wide
    for data in panels:
        text, page = "".join(data["text/plain"]), "".join(data["text/html"])
        assert "status='finished'" in text and "epoch 6/6" in text and "run=''" not in text
        assert "finished" in page and "ETA" not in page and "waiting for data" not in page
        assert page.count("<polyline") >= 4 and "validation loss" in page and "validation accuracy" in page
