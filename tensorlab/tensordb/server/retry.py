"""Writes that matter wait out a server that is restarting or stalled, instead of failing at once.

pymongo reconnects by itself, but an operation issued while the server is away fails after the server
selection timeout (3 s). A checkpoint or a run's final status is worth waiting for (a restart takes about
a second; a stalled server, as long as it is stalled), so these writes are retried with back-off on
connection errors only, up to a deadline, and then raise `ConnectionFailed` naming what was not written.
Each retried action must be safe to repeat (an upsert by `_id`, a `$set`, a save that cleans up its own
failed attempt).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from pymongo.errors import ConnectionFailure

from ...errors import ConnectionFailed

logger = logging.getLogger("tensorlab.retry")
T = TypeVar("T")
DEFAULT_DEADLINE_S = 120.0


def through_outages(action: Callable[[], T], what: str, deadline_s: float = DEFAULT_DEADLINE_S,
                    on_retry: Callable[[], None] | None = None) -> T:
    """`action()`, retried on connection errors for up to `deadline_s` seconds; `on_retry` runs (best effort)
    before each retry, e.g. to clean up the failed attempt."""
    give_up = time.monotonic() + deadline_s
    pause, attempt = 0.1, 0
    while True:
        try:
            return action()
        except ConnectionFailure as error:
            attempt += 1
            if time.monotonic() + pause > give_up:
                raise ConnectionFailed(f"Could not {what}: the server was unreachable for {deadline_s:g} s "
                                       f"({type(error).__name__}). Nothing partial is visible; retry when it is "
                                       "back.") from None
            if attempt == 1:
                logger.warning("TensorLab: the server is unreachable (%s); retrying to %s for up to %g s.",
                               type(error).__name__, what, deadline_s)
            time.sleep(pause)
            pause = min(2.0, pause * 2)
            if on_retry is not None:
                try:
                    on_retry()
                except ConnectionFailure:
                    pass  # still away: the next attempt waits again
