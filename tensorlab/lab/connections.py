"""Which server the lab extension reads, and one TensorDB per (database, study), shared by every request.

Why kept in the Jupyter server and not in a kernel: the side bar and run tabs must live on without any
kernel (a notebook closed, a kernel restarted), as jupyter-scheduler's job list does. The server is the one
`tensorlab.connect()` would pick (TENSORLAB_MONGODB_URI, else the managed local server) unless the
`TensorLab.mongodb_uri` setting names another. The URI's password stays here: what the browser sees is
always `mask_uri(...)`.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from traitlets import Float, Unicode
from traitlets.config import Configurable

from tensorlab.tensordb import TensorDB
from tensorlab.tensordb.server.connection import resolve_uri
from tensorlab.tensordb.server.uri import mask_secret, mask_uri, mask_uris_in, uri_password

STUDY_SOURCES = ("runs", "jobs", "sample_catalog")  # where a study leaves documents
STUDIES_TTL_S = 30.0  # the study list is a distinct() over these: cached, studies come and go rarely


class TensorLab(Configurable):
    """Settings of the lab's server extension (`jupyter lab --TensorLab.mongodb_uri=...`, or a config file)."""

    mongodb_uri = Unicode(None, allow_none=True, config=True,
                          help="The MongoDB URI to read (default: as tensorlab.connect() resolves it: "
                               "$TENSORLAB_MONGODB_URI, else the managed local server). Its password never "
                               "reaches the browser.")
    db = Unicode("tensorlab", config=True, help="The database the side bar opens first.")
    study = Unicode("", config=True, help="The study the side bar opens first (empty: the first with runs).")
    timeout_s = Float(3.0, config=True, help="How long a request waits for an unreachable server.")


class Connections:
    """A lazily opened client and one TensorDB per (db, study) over it."""

    def __init__(self, settings: TensorLab) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._uri: str | None = None
        self._handles: dict[tuple[str, str], TensorDB] = {}
        self._studies: dict[str, tuple[float, list[str], str | None]] = {}

    def uri(self) -> str:
        """The resolved URI (with its password: for this process only)."""
        if self._uri is None:
            self._uri = resolve_uri(self.settings.mongodb_uri or None)
        return self._uri

    def masked_uri(self) -> str:
        return mask_uri(self.settings.mongodb_uri or self._uri or "(as tensorlab.connect() resolves it)")

    def scrub(self, message: str) -> str:
        """An error message safe for the browser: every URI masked, the password removed wherever it appears."""
        secret = uri_password(self.settings.mongodb_uri or self._uri or "")
        return mask_secret(mask_uris_in(message), secret)

    def get(self, db: str, study: str) -> TensorDB:
        """The TensorDB of one study; all share the first one's client (one connection pool per server)."""
        key = (db, study)
        with self._lock:
            handle = self._handles.get(key)
            if handle is None or handle.closed:
                first = next((h for h in self._handles.values() if not h.closed), None)
                if first is None:
                    handle = TensorDB(db_name=db, studyID=study, uri=self.uri(), timeout_s=self.settings.timeout_s)
                else:
                    handle = TensorDB(db_name=db, studyID=study, client=first.client)
                    handle.uri = first.uri
                _ = handle.logbook  # built now, under the lock: requests on several threads share one reader
                self._handles[key] = handle
            return handle

    def any_client(self) -> Any:
        return self.get(self.settings.db, self.settings.study or "default").client

    def databases(self) -> list[str]:
        """Databases that hold TensorLab documents (a run, a job or an import)."""
        client = self.any_client()
        found = []
        for name in sorted(client.list_database_names()):
            if name in ("admin", "config", "local"):
                continue
            if set(STUDY_SOURCES) & set(client[name].list_collection_names()):
                found.append(name)
        return found

    def studies(self, db: str) -> tuple[list[str], str | None]:
        """The studies of one database and the one whose run started last (what the side bar opens when no
        study is configured); cached for STUDIES_TTL_S: a distinct() per collection and one sorted read."""
        cached = self._studies.get(db)
        if cached is not None and time.monotonic() - cached[0] < STUDIES_TTL_S:
            return cached[1], cached[2]
        handle = self.get(db, self.settings.study or "default")
        names: set[str] = set()
        for source in STUDY_SOURCES:
            names.update(value for value in handle.collection(source).distinct("study") if isinstance(value, str))
        newest = handle.collection("runs").find_one({}, {"study": 1}, sort=[("started", -1)])
        recent = newest.get("study") if newest else None
        self._studies[db] = (time.monotonic(), sorted(names), recent)
        return sorted(names), recent

    def forget_studies(self) -> None:
        self._studies.clear()

    def close(self) -> None:
        with self._lock:
            for handle in self._handles.values():
                if not handle.closed and handle.client is not None:
                    handle.close()
            self._handles.clear()
