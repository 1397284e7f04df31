"""TensorLab inside JupyterLab: the server half of the lab extension (the front end lives in `labextension/`).

The Jupyter server answers the side bar, run, comparison and jobs tabs from the database directly, so they
work with no kernel at all and outlive kernels and notebooks. Enabled by
`etc/jupyter/jupyter_server_config.d/tensorlab.json` (installed with the package); settings are traitlets of
the `TensorLab` class (`jupyter lab --TensorLab.mongodb_uri=...`, see connections.py).
"""

from __future__ import annotations

from typing import Any

MODULE = "tensorlab.lab"


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": MODULE}]


def _load_jupyter_server_extension(server_app: Any) -> None:
    """Register the API's handlers on the running server, with the `TensorLab` settings from its config."""
    from .connections import Connections, TensorLab
    from .routes import setup_handlers

    settings = TensorLab(parent=server_app)
    connections = Connections(settings)
    setup_handlers(server_app.web_app, connections)
    server_app.log.info("TensorLab extension loaded: server %s, database %r", connections.masked_uri(), settings.db)


# The older spelling, still looked up by some tools.
load_jupyter_server_extension = _load_jupyter_server_extension
