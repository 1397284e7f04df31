"""Is the process behind a `running` run still there? So that a killed run reads `crashed`, not `running`.

On the run's own host the answer is immediate: its pid must be alive *and* have the start time recorded
when the run began (a recycled pid has another). Elsewhere, the run's heartbeat must be younger than
`STALE_AFTER_S`; DBLogger beats every `HEARTBEAT_S` from a small thread, also through long epochs.
"""

from __future__ import annotations

import os
import socket
from datetime import timedelta
from pathlib import Path
from typing import Any

from ...clock import as_utc, utc_now

HEARTBEAT_S = 10.0
STALE_AFTER_S = 60.0


def process_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux /proc), or None where that is unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[19])  # field 22 of stat(5); fields[0] here is field 3
    except (OSError, IndexError, ValueError):
        return None


def this_process() -> dict[str, Any]:
    """What a new run records about the process writing it."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "pid_started": process_start(os.getpid())}


def process_gone(run: dict[str, Any]) -> bool:
    """True when the run's process has certainly ended (or has not beaten for STALE_AFTER_S elsewhere)."""
    if run.get("host") == socket.gethostname() and run.get("pid"):
        started = process_start(int(run["pid"]))
        if started is None:
            try:
                os.kill(int(run["pid"]), 0)
            except ProcessLookupError:
                return True
            except PermissionError:
                return False
            return False if run.get("pid_started") is None else _stale(run)
        return run.get("pid_started") is not None and started != run["pid_started"]
    return _stale(run)


def _stale(run: dict[str, Any]) -> bool:
    beat = run.get("heartbeat")
    return beat is not None and utc_now() - as_utc(beat) > timedelta(seconds=STALE_AFTER_S)
