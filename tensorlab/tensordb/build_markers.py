"""Structures added to a database after it was written (indexes, lists) are built once, then marked.

The marker (`tensorlab_state`, `_id` = `<what>-built:<study>`) is read by `_id` once per process; a
database without it gets the structure built from its existing documents, and two processes building
at the same time are harmless because every structure built this way is idempotent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pymongo.errors import DuplicateKeyError

from .scope import Scope

STATE = "tensorlab_state"


def build_once(scope: Scope, what: str, build: Callable[[], Any]) -> None:
    """Run `build` unless this study's marker for `what` exists, then write the marker."""
    state = scope.collection(STATE)
    marker = f"{what}-built:{scope.study}"
    if state.find_one({"_id": marker}) is None:
        build()
        try:
            state.insert_one({"_id": marker})
        except DuplicateKeyError:
            pass  # built by another process at the same time


def forget_built(scope: Scope, what: str) -> None:
    """Drop the marker with the study's documents, so a study recreated later is built again."""
    scope.collection(STATE).delete_one({"_id": f"{what}-built:{scope.study}"})
