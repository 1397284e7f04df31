"""Saved notebooks tell the truth (#15, #31): what GitHub, nbviewer and VS Code show without a kernel is each
panel's text/html fallback and the final curves' picture under it, read here from the committed,
nbconvert-executed demo notebook."""

from __future__ import annotations

import base64
import json
from pathlib import Path

DEMO = Path(__file__).resolve().parents[1] / "demo_notebooks" / "TensorLabDemo.ipynb"


def _live_panels(notebook: dict) -> list[tuple[dict, dict]]:
    """(the panel's output, the output after it) for every live panel."""
    found = []
    for cell in notebook["cells"]:
        outputs = [o.get("data", {}) for o in cell.get("outputs", [])]
        found += [(data, outputs[i + 1] if i + 1 < len(outputs) else {}) for i, data in enumerate(outputs)
                  if "LivePanel(" in str(data.get("text/plain", ""))]
    return found


def test_every_live_panel_in_the_saved_demo_shows_its_final_status_and_curves():
    panels = _live_panels(json.loads(DEMO.read_text()))
    assert len(panels) == 2  # mlp_small and mlp_wide
    for data, picture in panels:
        text, page = "".join(data["text/plain"]), "".join(data["text/html"])
        assert "status='finished'" in text and "epoch 6/6" in text and "run=''" not in text
        assert "finished" in page and "ETA" not in page and "waiting for data" not in page
        summary = "".join(picture["text/plain"])  # the final curves as a PNG, their figures in words (#31)
        assert base64.b64decode("".join(picture["image/png"]))[:4] == b"\x89PNG"
        assert "finished" in summary and "validation loss" in summary and "validation accuracy" in summary
