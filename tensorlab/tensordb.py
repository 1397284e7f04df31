"""`TensorDB`: the one door to the database. Magics, widgets, callbacks and workers all go through it."""

from __future__ import annotations

from typing import Any

from .connection import DEFAULT_TIMEOUT_S, open_client, resolve_uri
from .errors import ConnectionFailed, InvalidInput
from .uri import mask_uri, seed_style_uri

DEFAULT_DB = "tensorlab"
DEFAULT_STUDY = "default"


class TensorDB:
    """A study inside one MongoDB database: every document TensorDB writes carries `study`.

    Two ways in: `tensorlab.connect(uri, db=..., study=...)`, or the seeds' constructor
    `TensorDB(ip=..., port=..., db_name=..., user_name=..., password=..., studyID=...)`.
    """

    def __init__(
        self,
        ip: str | None = None,
        port: int | None = None,
        db_name: str = DEFAULT_DB,
        user_name: str | None = None,
        password: str | None = None,
        studyID: str | None = None,  # noqa: N803 - the seeds' spelling
        *,
        uri: str | None = None,
        client: Any = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        **client_options: Any,
    ) -> None:
        if not isinstance(db_name, str) or not db_name or any(c in db_name for c in '/\\. "$'):
            raise InvalidInput(f"Invalid value for argument `db_name`: {db_name!r}. Expected a non-empty name "
                               "without '/', '\\', '.', ' ', '\"' or '$'.")
        study = DEFAULT_STUDY if studyID is None else studyID
        if not isinstance(study, str) or not study:
            raise InvalidInput(f"Invalid value for argument `study`: {study!r}. Expected a non-empty string.")
        if uri is None and ip is not None:
            uri = seed_style_uri(ip, port or 27017, user_name, password)
            user_name = password = None  # now inside the URI
        if client is None:
            uri = resolve_uri(uri)
            client = open_client(uri, user_name, password, timeout_s, **client_options)
        self.uri = mask_uri(uri or "")
        self.client = client
        self.db = client[db_name]
        self.db_name = db_name
        self.study = study
        self._closed = False

    def __repr__(self) -> str:
        return f"TensorDB(uri={self.uri!r}, db={self.db_name!r}, study={self.study!r})"

    @property
    def is_memory(self) -> bool:
        return self.uri.startswith("memory://")

    def collection(self, name: str) -> Any:
        """A collection of this database; raises ConnectionFailed once the connection is closed."""
        if self._closed:
            raise ConnectionFailed(f"{self!r} is closed; call tensorlab.connect() again.")
        return self.db[name]

    def scoped(self, query: dict[str, Any] | None = None) -> dict[str, Any]:
        """`query` restricted to this study (a query may name another study explicitly)."""
        query = dict(query or {})
        query.setdefault("study", self.study)
        return query

    def close(self) -> None:
        """Close the client; later calls raise ConnectionFailed."""
        if not self._closed:
            self._closed = True
            self.client.close()

    def __enter__(self) -> TensorDB:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def connect(
    uri: str | None = None,
    *,
    db: str = DEFAULT_DB,
    study: str | None = None,
    user: str | None = None,
    password: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    **client_options: Any,
) -> TensorDB:
    """Connect to TensorDB: explicit `uri`, else $TENSORLAB_MONGODB_URI, else the managed local server.

    `memory://` gives an ephemeral in-process store (mongomock) for quick tries; it is never chosen
    for you. Auth and TLS keyword options (e.g. `tls=True`, `authSource=...`) go straight to pymongo.
    """
    return TensorDB(db_name=db, user_name=user, password=password, studyID=study, uri=uri,
                    timeout_s=timeout_s, **client_options)
