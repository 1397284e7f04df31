"""The one thing a store gets from its connection: a database and a study, and whether it is still open.

Stores hold a `Scope`, never the whole `TensorDB`: they cannot reach each other's collections or the
facade's conveniences, so each store's reads and writes are all in its own module.
"""

from __future__ import annotations

from typing import Any

from ...errors import ConnectionFailed, InvalidInput


class Scope:
    """A study inside one MongoDB database; `collection()` raises once the connection is closed."""

    def __init__(self, database: Any, study: str, label: str) -> None:
        self.database = database
        self.study = study
        self.label = label  # how errors name the connection (password already masked)
        self.closed = False

    def collection(self, name: str) -> Any:
        if self.closed:
            raise ConnectionFailed(f"{self.label} is closed; call tensorlab.connect() again.")
        return self.database[name]

    def scoped(self, query: dict[str, Any] | None = None) -> dict[str, Any]:
        """`query` restricted to this study; a query naming another study (or any condition on `study`)
        is refused, so no filter can read or change another study's documents."""
        query = dict(query or {})
        if query.get("study", self.study) != self.study:
            raise InvalidInput(f"Queries are scoped to this connection's study {self.study!r}; got study="
                               f"{query['study']!r}. Connect with study=... to work in another study.")
        query["study"] = self.study
        return query
