"""TensorLab's exception tree: catch `TensorLabError` to catch everything we raise."""

from __future__ import annotations


class TensorLabError(Exception):
    """Base class of every error TensorLab raises on purpose."""


class ConnectionFailed(TensorLabError):
    """The database could not be reached or refused us."""


class AuthenticationFailed(ConnectionFailed):
    """The server answered but rejected the credentials."""


class ServerError(TensorLabError):
    """The managed local server could not be installed, started or stopped."""


class NotFound(TensorLabError, LookupError):
    """A query or id matched nothing."""


class InvalidInput(TensorLabError, ValueError):
    """An argument has the wrong type, shape or content; nothing was stored."""


class UnsafeOperation(TensorLabError):
    """Running code or unpickling data from the database needs an explicit opt-in."""


class JobError(TensorLabError):
    """A job-queue operation is not valid in the job's current state."""


class IntegrityError(TensorLabError):
    """Stored bytes no longer match their checksum or content hash: the item is named, nothing is returned."""


class StudyNotReady(TensorLabError):
    """The study is being copied or imported: it is not readable until that transfer finishes (re-running the
    same `tensorlab copy` or `tensorlab import` finishes an interrupted one)."""


class StorageFull(TensorLabError):
    """The disk under the server or its payload files is full: the write was undone, nothing partial is visible."""
