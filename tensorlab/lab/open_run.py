"""`%tdb_open RUN`, or `tensorlab.lab.open_run(db, run)`: open a run's tab in JupyterLab from a notebook.

How it reaches the front end: the kernel displays one small output of the MIME type `OPEN_RUN_MIME` (the run,
its database and study, the time, a random nonce); the lab extension renders it as a line with a link and,
for a fresh output seen for the first time, executes the `tensorlab:open-run` command. Why not a comm or a
widget: an output needs no widget manager and no kernel state (the tab reads the database through the
Jupyter server, so it outlives the kernel), and a saved notebook shows a readable line instead of opening
tabs when it is reopened (an old output, or a nonce this browser has opened before, is not acted on).
"""

from __future__ import annotations

import secrets
import time
from typing import Any

OPEN_RUN_MIME = "application/vnd.tensorlab.open-run+json"


def open_run(db: Any, run: Any) -> dict[str, Any]:
    """Ask JupyterLab to open `run` (an id or a name) of `db`'s study in a TensorLab tab; returns the request."""
    doc = db.run_store.resolve(run)  # NotFound / InvalidInput name the run before anything is shown
    request = {"run": str(doc["_id"]), "name": doc.get("name"), "db": db.db_name, "study": db.study,
               "at": time.time(), "nonce": secrets.token_hex(8)}
    text = (f"TensorLab run {doc.get('name')!r} ({doc.get('status')}) of study {db.study!r}: its tab opens in "
            "JupyterLab with the TensorLab extension (or: command palette > TensorLab: Open a Run).")
    from IPython.display import display

    display({OPEN_RUN_MIME: request, "text/plain": text}, raw=True)
    return request
