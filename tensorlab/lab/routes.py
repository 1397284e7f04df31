"""The lab's HTTP API: which handler answers which path under `<base_url>tensorlab/api/`.

One table, so the API is readable at a glance (jupyter-scheduler keeps its handler table the same way).
Every answer is JSON; a bad parameter is a 400 whose body names it (`{"message", "parameter"}`).
"""

from __future__ import annotations

from typing import Any

from jupyter_server.utils import url_path_join

from . import handlers
from .connections import Connections

API = "tensorlab/api"
ID = r"([0-9a-zA-Z]+)"  # checked by the handler, so a malformed id is a 400 naming it, not a bare 404

ROUTES = (
    ("info", handlers.InfoHandler),  # the server (URI masked), the default db and study
    ("databases", handlers.DatabasesHandler),  # databases holding TensorLab documents, the studies of one
    ("runs", handlers.RunsHandler),  # a page of runs: status, name, filter, sort, order, offset, limit
    (f"runs/{ID}", handlers.RunHandler),  # one run: document, parameter versions, log streams
    (f"runs/{ID}/logs", handlers.LogsHandler),  # rows since `cursor`, as columns, and the next cursor
    (f"runs/{ID}/rerun", handlers.RerunHandler),  # POST: queue the run to be trained again, as a job
    ("compare", handlers.CompareHandler),  # runs side by side on one metric, the best marked
    ("diff", handlers.DiffHandler),  # what differs between two runs: hyper-parameters, code, data, packages, seed
    ("lineage", handlers.LineageHandler),  # the graph around a run or a parameter version (`of`)
    ("jobs", handlers.JobsHandler),  # queued and running jobs, the newest others, their workers
    (f"jobs/{ID}/(cancel|requeue|priority)", handlers.JobActionHandler),  # POST
    ("data", handlers.DataHandler),  # imports grouped by tags, counts, label histogram
    ("data/samples", handlers.SamplesHandler),  # the first samples of a tag group
)


def setup_handlers(web_app: Any, connections: Connections) -> None:
    base_url = web_app.settings["base_url"]
    web_app.add_handlers(".*$", [(url_path_join(base_url, API, path), handler, {"connections": connections})
                                 for path, handler in ROUTES])
