"""Open a pymongo client that fails fast with a clear, password-free message."""

from __future__ import annotations

import warnings
from typing import Any

import pymongo
from pymongo.errors import ConfigurationError, OperationFailure, PyMongoError

from ...errors import AuthenticationFailed, ConnectionFailed, InvalidInput
from ..documents.by_id import LOOKUP_THREADS, warm_up
from .localserver import ensure_local_server
from .uri import MEMORY_SCHEME, mask_secret, mask_uri, uri_from_environment, uri_password

DEFAULT_TIMEOUT_S = 3.0
_AUTH_FAILED_CODES = {18, 11}  # AuthenticationFailed, UserNotFound


def resolve_uri(uri: str | None) -> str:
    """Explicit URI, then $TENSORLAB_MONGODB_URI, then the managed local server (started on demand)."""
    if uri is not None:
        if not isinstance(uri, str) or not uri.strip():
            raise InvalidInput(f"Invalid value for argument `uri`: {uri!r}. Expected a 'mongodb://...' string or None.")
        return uri.strip()
    return uri_from_environment() or ensure_local_server()


def _memory_client() -> Any:
    try:
        import mongomock
        import mongomock.gridfs
    except ImportError as error:  # pragma: no cover - mongomock is a dependency
        raise ConnectionFailed("memory:// needs the `mongomock` package: pip install mongomock") from error
    mongomock.gridfs.enable_gridfs_integration()
    return mongomock.MongoClient()


def open_client(
    uri: str,
    user: str | None = None,
    password: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    **client_options: Any,
) -> Any:
    """A connected client for `uri`, or ConnectionFailed/AuthenticationFailed naming the masked address."""
    if uri.startswith(MEMORY_SCHEME):
        return _memory_client()
    secret = password or uri_password(uri)
    shown = mask_uri(uri)
    options: dict[str, Any] = {
        "serverSelectionTimeoutMS": int(timeout_s * 1000),
        "connectTimeoutMS": int(timeout_s * 1000),
        "maxConnecting": LOOKUP_THREADS,  # parallel lookups' connections open at once (by_id.warm_up), not 2 by 2
        **client_options,
    }
    if user is not None:
        options["username"] = user
    if password is not None:
        options["password"] = password
    try:
        client = pymongo.MongoClient(uri, **options)
    except (ConfigurationError, ValueError) as error:
        raise InvalidInput(f"Invalid MongoDB URI {shown}: {mask_secret(str(error), secret)}") from None
    try:
        client.admin.command("ping")
    except OperationFailure as error:
        client.close()
        if error.code in _AUTH_FAILED_CODES or "auth" in str(error).lower():
            raise AuthenticationFailed(
                f"MongoDB at {shown} rejected the credentials for user {user or '(from URI)'!r}. "
                "Check the user name and password (or the authSource option)."
            ) from None
        raise ConnectionFailed(f"MongoDB at {shown} refused `ping`: {mask_secret(str(error), secret)}") from None
    except PyMongoError as error:
        client.close()
        raise ConnectionFailed(
            f"Cannot reach MongoDB at {shown} within {timeout_s:g} s ({type(error).__name__}). "
            "Check the address and that the server runs; for the local server run `tensorlab server start`, "
            "or set TENSORLAB_MONGODB_URI."
        ) from None
    _warn_if_updates_not_atomic(client, shown)
    warm_up(client)
    return client


_WARNED: set[str] = set()


def _warn_if_updates_not_atomic(client: Any, shown: str) -> None:
    """FerretDB 1.x builds other than the managed server's apply an update as a read and a separate write, so
    two processes updating one document lose changes; TensorLab's derived documents (catalog, counts,
    indexes) need MongoDB's single-document atomicity (docs/CONSISTENCY.md). Say so once per address."""
    try:
        info = client.admin.command("buildInfo")
    except PyMongoError:
        return
    if "ferretdbVersion" in info and not info.get("tensorlabAtomicWrites") and shown not in _WARNED:
        _WARNED.add(shown)
        warnings.warn(
            f"The server at {shown} is FerretDB {info['ferretdbVersion']} without TensorLab's atomic-writes fix: "
            "concurrent writers can lose updates of one document there (counts, catalogs and indexes may drift). "
            "Use the managed server (`tensorlab server install` builds FerretDB with the fix), MongoDB or Atlas.",
            RuntimeWarning, stacklevel=3)
