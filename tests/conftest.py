"""Fixtures: one real MongoDB-protocol server for the session, one fresh database per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

import tensorlab
from tensorlab.localserver import LocalServer


@pytest.fixture(scope="session")
def server_home(tmp_path_factory: pytest.TempPathFactory):
    return tmp_path_factory.mktemp("tensorlab-server")


@pytest.fixture(scope="session")
def mongo_uri(server_home) -> Iterator[str]:
    """$TENSORLAB_MONGODB_URI when set, else a managed FerretDB in a temporary folder, stopped at the end."""
    existing = os.environ.get("TENSORLAB_MONGODB_URI")
    if existing:
        yield existing
        return
    server = LocalServer(server_home)
    info = server.start()
    os.environ["TENSORLAB_MONGODB_URI"] = info.uri  # child processes and connect() find it too
    try:
        yield info.uri
    finally:
        os.environ.pop("TENSORLAB_MONGODB_URI", None)
        server.stop()


@pytest.fixture
def db_name() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def tdb(mongo_uri: str, db_name: str) -> Iterator[tensorlab.TensorDB]:
    """A TensorDB on its own database, dropped after the test."""
    handle = tensorlab.connect(mongo_uri, db=db_name, study="test")
    try:
        yield handle
    finally:
        if not handle._closed:
            handle.flush_logs() if hasattr(handle, "flush_logs") else None
            handle.client.drop_database(db_name)
            handle.close()
