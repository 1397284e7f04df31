"""Failures of the server, the network or the disk, raised as TensorLab errors that say what to do.

A full disk surfaced as a raw `OSError: [Errno 28]` (payload files) or pymongo's `OperationFailure ... database
or disk is full` (the server's own files), and a lost server as `AutoReconnect`. Every public `TensorDB` call
goes through `translated` (database.py), which turns these into `StorageFull` and `ConnectionFailed`; the
write that failed has already undone itself (imports roll back, saves discard their version), so the message
can say that nothing partial is visible.
"""

from __future__ import annotations

import errno
import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from pymongo.errors import ConnectionFailure, OperationFailure

from ...errors import ConnectionFailed, StorageFull, TensorLabError

F = TypeVar("F", bound=Callable[..., Any])
_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
_DISK_FULL_CODES = frozenset({14031})  # MongoDB's OutOfDiskSpace
_DISK_FULL_TEXT = ("disk is full", "no space left", "out of disk space")


def _is_disk_full(error: BaseException) -> bool:
    if isinstance(error, OSError) and error.errno in _DISK_FULL_ERRNOS:
        return True
    if isinstance(error, OperationFailure):
        return error.code in _DISK_FULL_CODES or any(text in str(error).lower() for text in _DISK_FULL_TEXT)
    return False


def translate(error: BaseException, what: str) -> TensorLabError | None:
    """The TensorLab error for a low-level one, or None when it is not ours to translate."""
    if isinstance(error, TensorLabError):
        return None
    if _is_disk_full(error):
        where = getattr(error, "filename", None) or "the server's data folder"
        return StorageFull(f"{what} failed: the disk holding {where} is full. Nothing partial of it is visible. "
                           "Free space on that disk and retry (the server needs some to delete, too).")
    if isinstance(error, ConnectionFailure):
        return ConnectionFailed(f"{what} failed: the connection to the server was lost ({type(error).__name__}). "
                                "Nothing partial of it is visible; retry once the server is back "
                                "(`tensorlab server status`).")
    return None


def translated(method: F) -> F:
    """Raise `method`'s low-level failures as TensorLab errors (generators are left as they are)."""
    if inspect.isgeneratorfunction(method):
        return method

    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except (OSError, OperationFailure, ConnectionFailure) as error:
            better = translate(error, f"{method.__name__}()")
            if better is None:
                raise
            raise better from None  # the message names the cause; the raw chain only hides it

    return call  # type: ignore[return-value]


def translate_public_methods(cls: type) -> type:
    """Apply `translated` to every public method defined on `cls` (the facade: the one door to the database)."""
    for name, value in list(vars(cls).items()):
        if not name.startswith("_") and inspect.isfunction(value):
            setattr(cls, name, translated(value))
    return cls
