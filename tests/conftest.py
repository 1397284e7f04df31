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


@pytest.fixture
def tdb(mongo_uri: str, db_name: str) -> Iterator[tensorlab.TensorDB]:
    """A TensorDB on its own database, dropped after the test."""
    handle = tensorlab.connect(mongo_uri, db=db_name, study="test")
    try:
        yield handle
    finally:
        if not handle.closed:
            handle.flush_logs() if hasattr(handle, "flush_logs") else None
            handle.client.drop_database(db_name)
            handle.close()
