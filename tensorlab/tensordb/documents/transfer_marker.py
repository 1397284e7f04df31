"""A study being copied or imported stays invisible until the transfer is complete and verified.

A copy or import writes its marker (`tensorlab_state`, `_id` = `transfer:<study>`: a fixed prefix and the
whole study name, so two studies never share one) before its first write, and removes it only once
verification succeeded. While it exists, connecting to the study raises StudyNotReady (database.py) and
nothing builds derived documents for it (build_markers.py), so no reader can turn a partial study into a
catalog or count that outlives the transfer. A re-run of the same transfer (same origin: the server,
database and study the documents come from) resumes under the marker; a finished one leaves
`copy:<study>` naming its origin, so running it again later stays allowed (and idempotent). A study that
already holds documents of another origin is refused before anything is written, unless asked to merge.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from pymongo.errors import ConnectionFailure, OperationFailure

from ...clock import as_utc, utc_now
from ...errors import ConnectionFailed, InvalidInput, StudyNotReady
from .run_liveness import process_gone, this_process

TRANSFER = "transfer:{study}"
DONE = "copy:{study}"  # the last finished copy or import of the study (its origin)


def origin(uri: str, database: str, study: str) -> dict[str, str]:
    """Where a study's documents come from: the same for a copy from that server and an import of its export."""
    return {"uri": str(uri), "db": str(database), "study": str(study)}


def _describe(origin_doc: Any) -> str:
    if not isinstance(origin_doc, dict):
        return "an unknown source"
    return f"study {origin_doc.get('study')!r} of database {origin_doc.get('db')!r} at {origin_doc.get('uri')}"


def not_ready(marker: dict[str, Any], database: str, study: str) -> StudyNotReady:
    """The error for a study under transfer: what, from where, by whom, since when, and how to finish it."""
    kind = marker.get("kind", "copy")
    started = marker.get("started")
    since = as_utc(started).strftime("%Y-%m-%d %H:%M:%S UTC") if started is not None else "an unknown time"
    state = " (that process has ended)" if process_gone(marker) else ""
    return StudyNotReady(
        f"Study {study!r} in database {database!r} is being {'imported' if kind == 'import' else 'copied'} "
        f"(from {marker.get('source') or _describe(marker.get('origin'))}) by {marker.get('host')} pid "
        f"{marker.get('pid')}{state} since {since}; it cannot be read until that finishes. Re-running the same "
        f"`tensorlab {kind}` finishes it (it resumes where it stopped and makes the study readable once verified).")


def find_marker(state: Any, study: str) -> dict[str, Any] | None:
    return state.find_one({"_id": TRANSFER.format(study=study)})


def check_ready(state: Any, database: str, study: str) -> None:
    """Raise StudyNotReady while a copy or import of `study` is unfinished (one lookup by `_id`)."""
    marker = find_marker(state, study)
    if marker is not None:
        raise not_ready(marker, database, study)


@contextmanager
def server_lost(what: str) -> Iterator[None]:
    """A server that goes away mid-transfer becomes ConnectionFailed saying that a re-run finishes the job."""
    try:
        yield
    except (ConnectionFailure, OperationFailure) as error:  # AutoReconnect, timeouts, "shutting down"...
        raise ConnectionFailed(f"The server failed during {what} ({type(error).__name__}: {str(error)[:200]}). "
                               "Nothing is lost and the study stays hidden: once the server is back, re-run the "
                               "same command to finish (it resumes where it stopped).") from None


class Transfer:
    """The marker of one copy or import into `target` (a TensorDB connected with ignore_transfer=True)."""

    def __init__(self, target: Any, kind: str, origin_doc: dict[str, str], source: str,
                 legacy_source: str | None = None) -> None:
        self.state = target.db["tensorlab_state"]
        self.target, self.kind, self.origin, self.source = target, kind, origin_doc, source
        self.legacy_source = legacy_source  # what copies before origins recorded in `copy:<study>` (`source`)
        self.marker_id = TRANSFER.format(study=target.study)
        self.done_id = DONE.format(study=target.study)

    def _same_origin(self, doc: dict[str, Any] | None) -> bool:
        if doc is None:
            return False
        if "origin" in doc:
            return doc["origin"] == self.origin
        return self.legacy_source is not None and doc.get("source") == self.legacy_source

    def check(self, collections: Iterable[str], merge: bool = False) -> None:
        """Refuse (before any write) a target study that holds documents of another origin, or is being filled
        by another transfer; a re-run of this transfer, or of one that finished, passes."""
        marker = find_marker(self.state, self.target.study)
        if marker is not None:
            if self._same_origin(marker) or merge:
                return
            raise InvalidInput(
                f"Study {self.target.study!r} on the target is being filled from {_describe(marker.get('origin'))} "
                f"({marker.get('kind')} by {marker.get('host')} pid {marker.get('pid')}), not from "
                f"{_describe(self.origin)}. Re-run that transfer to finish it, or pass --merge to add to it.")
        if merge or self._same_origin(self.state.find_one({"_id": self.done_id})):
            return
        study = self.target.study
        holding = [name for name in collections if self.target.db[name].find_one({"study": study}, {"_id": 1})]
        if holding:
            raise InvalidInput(
                f"Study {study!r} in database {self.target.db_name!r} on the target already holds documents "
                f"({', '.join(holding[:4])}{' ...' if len(holding) > 4 else ''}) that did not come from "
                f"{_describe(self.origin)}; nothing was written. Copy into another database or study name, "
                "or pass --merge (merge=True) to add to them.")

    def begin(self) -> None:
        """Hide the study: the marker goes first, before any document or payload."""
        now = utc_now()
        self.state.update_one({"_id": self.marker_id}, {
            "$set": {"kind": self.kind, "origin": self.origin, "source": self.source, "study": self.target.study,
                     "attempt_started": now, **this_process()},
            "$setOnInsert": {"started": now}}, upsert=True)

    def finish(self, verified: bool) -> None:
        """Record the origin of the finished transfer, then show the study (the marker goes last)."""
        self.state.replace_one({"_id": self.done_id}, {
            "_id": self.done_id, "kind": self.kind, "origin": self.origin, "source": self.source,
            "state": "verified" if verified else "copied", "finished": utc_now()}, upsert=True)
        self.state.delete_one({"_id": self.marker_id})
