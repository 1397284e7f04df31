"""Structures added to a database after it was written (indexes, lists) are built once, then marked.

The marker (`tensorlab_state`, `_id` = `<what>-built:<study>`) is read by `_id` once per process; a
database without it gets the structure built from its existing documents, and two processes building
at the same time are harmless because every structure built this way is idempotent. Nothing is built for
a study that is being copied or imported (transfer_marker.py): its documents are not all there yet, and
the transfer brings the source's own structures and markers at its end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from pymongo.errors import DuplicateKeyError

from .scope import Scope
from .transfer_marker import find_marker, not_ready

STATE = "tensorlab_state"
_BUILT = "-built:"


def marker_id(what: str, study: str) -> str:
    return f"{what}{_BUILT}{study}"


def build_once(scope: Scope, what: str, build: Callable[[], Any]) -> None:
    """Run `build` unless this study's marker for `what` exists, then write the marker (StudyNotReady while
    the study is being copied or imported)."""
    state = scope.collection(STATE)
    marker = marker_id(what, scope.study)
    if state.find_one({"_id": marker}) is None:
        transfer = find_marker(state, scope.study)
        if transfer is not None:
            raise not_ready(transfer, scope.database.name, scope.study)
        build()
        try:
            state.insert_one({"_id": marker})
        except DuplicateKeyError:
            pass  # built by another process at the same time


def forget_built(scope: Scope, what: str) -> None:
    """Drop the marker with the study's documents, so a study recreated later is built again."""
    scope.collection(STATE).delete_one({"_id": marker_id(what, scope.study)})


def study_markers(state: Any, study: str) -> Iterator[dict[str, Any]]:
    """Every build marker of `study` (exactly: never those of a study whose name merely ends like it)."""
    for doc in state.find({}):
        what, found, _ = str(doc["_id"]).partition(_BUILT)
        if found and ":" not in what and doc["_id"] == marker_id(what, study):
            yield doc
