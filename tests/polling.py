"""Waiting for something that happens on another thread or process, with a bound."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(condition: Callable[[], bool], timeout: float = 60.0, interval: float = 0.05) -> bool:
    """Poll `condition` until it holds or `timeout` seconds pass; returns its last value."""
    deadline = time.time() + timeout
    while not condition() and time.time() < deadline:
        time.sleep(interval)
    return condition()


def wait_for_quiet(db, collections: tuple[str, ...], settle_s: float = 0.5, timeout: float = 30.0) -> bool:
    """Wait until the server has applied what a killed client had already sent: the documents of `collections`
    stop changing for `settle_s`. A command the client wrote just before its SIGKILL still sits in the server's
    socket buffer and is applied after the kill, later the busier the machine."""
    def snapshot() -> tuple[int, ...]:
        return tuple(db.collection(name).count_documents({}) for name in collections)

    deadline, last, since = time.time() + timeout, snapshot(), time.time()
    while time.time() < deadline:
        time.sleep(0.05)
        now = snapshot()
        if now != last:
            last, since = now, time.time()
        elif time.time() - since >= settle_s:
            return True
    return False
