"""Fixtures: one real MongoDB-protocol server for the session, one fresh database per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

import tensorlab


@pytest.fixture(scope="session")
def mongo_uri() -> str:
    """The session's server: $TENSORLAB_MONGODB_URI, set by the root conftest when nothing else was."""
    return os.environ["TENSORLAB_MONGODB_URI"]


@pytest.fixture
def db_name() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


def _fresh_tdb(mongo_uri: str, db_name: str, **options) -> Iterator[tensorlab.TensorDB]:
    handle = tensorlab.connect(mongo_uri, db=db_name, study="test", **options)
    try:
        yield handle
    finally:
        if not handle.closed:
            handle.flush_logs() if hasattr(handle, "flush_logs") else None
            handle.client.drop_database(db_name)
            handle.close()


@pytest.fixture
def tdb(mongo_uri: str, db_name: str) -> Iterator[tensorlab.TensorDB]:
    """A TensorDB on its own database, dropped after the test (payloads as files beside the managed server)."""
    yield from _fresh_tdb(mongo_uri, db_name)


@pytest.fixture
def gridfs_tdb(mongo_uri: str, db_name: str) -> Iterator[tensorlab.TensorDB]:
    """The same, with payloads in GridFS: what MongoDB and Atlas get."""
    yield from _fresh_tdb(mongo_uri, db_name, payload_files=False)


@pytest.fixture(params=["files", "gridfs"])
def any_tdb(request, mongo_uri: str, db_name: str) -> Iterator[tensorlab.TensorDB]:
    """Once with each payload store."""
    yield from _fresh_tdb(mongo_uri, db_name, payload_files=request.param == "files")
