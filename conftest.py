"""One throw-away MongoDB-protocol server for the whole pytest session: tests and nbval notebooks alike.

When TENSORLAB_MONGODB_URI is already set, that server is used. Otherwise a managed FerretDB is started
in a temporary folder and the variable is exported, so notebook kernels started by nbval inherit it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

_started: dict = {}
# Notebook kernels started by nbval use the demo profile (C++ log lines stay out of cell outputs).
os.environ.setdefault("IPYTHONDIR", str(Path(__file__).resolve().parent / "demo_notebooks" / "ipython"))


def pytest_sessionstart(session) -> None:
    if os.environ.get("TENSORLAB_MONGODB_URI"):
        return
    from tensorlab.tensordb.server.localserver import LocalServer

    home = tempfile.mkdtemp(prefix="tensorlab-test-server-")
    server = LocalServer(home)
    os.environ["TENSORLAB_MONGODB_URI"] = server.start().uri
    _started["server"], _started["home"] = server, home


def pytest_sessionfinish(session, exitstatus) -> None:
    server = _started.pop("server", None)
    if server is not None:
        os.environ.pop("TENSORLAB_MONGODB_URI", None)
        server.stop()
        shutil.rmtree(_started.pop("home"), ignore_errors=True)  # a run leaves gigabytes of test data otherwise
