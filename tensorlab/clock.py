"""UTC time for stored documents, one way everywhere.

Why `as_utc`: pymongo reads datetimes back naive (in UTC) unless the client was made tz-aware, and a
naive value cannot be compared with an aware `utc_now()`.
"""

from __future__ import annotations

from datetime import datetime, timezone


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(moment: datetime) -> datetime:
    """A datetime read from the server, made timezone-aware (UTC) if it came back naive."""
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
