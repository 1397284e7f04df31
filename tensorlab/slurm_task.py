"""What a worker started by Slurm knows about its allocation: which job and array task it is, and how much of
its time limit is left.

Why the time left is asked of Slurm (`squeue -h -j $SLURM_JOB_ID -o %L`): `SLURM_JOB_END_TIME` is not set by
every Slurm version, and the limit can change while the job runs (`scontrol update TimeLimit=`). A worker stops
claiming jobs when less than its `--min-time-left` remains, so a job is not started only to be killed at the
limit; one already running when Slurm ends the task is taken over through its lease, as for any killed worker.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
from typing import Any

SQUEUE_TIMEOUT_S = 10.0
_TIME_LEFT = re.compile(r"^(?:(\d+)-)?(?:(\d+):)?(?:(\d+):)?(\d+)$")


def slurm_task(environ: Any = None) -> dict[str, Any] | None:
    """{"job", "array_job", "array_task", "node"} of the Slurm job this process runs in, or None outside Slurm."""
    environ = os.environ if environ is None else environ
    if not environ.get("SLURM_JOB_ID"):
        return None
    task = environ.get("SLURM_ARRAY_TASK_ID")
    return {"job": environ["SLURM_JOB_ID"], "array_job": environ.get("SLURM_ARRAY_JOB_ID"),
            "array_task": int(task) if task and task.isdigit() else None,
            "node": environ.get("SLURMD_NODENAME") or socket.gethostname()}


def slurm_worker_name(task: dict[str, Any]) -> str:
    """`slurm-<array job>_<task>@<node>:<pid>`, so the job documents name the array task that holds them."""
    unit = f"{task['array_job']}_{task['array_task']}" if task.get("array_job") else task["job"]
    return f"slurm-{unit}@{task['node']}:{os.getpid()}"


def parse_time_left(text: str) -> float | None:
    """Seconds from squeue's %L ('59', '4:05', '1:02:03', '2-01:02:03'); None for UNLIMITED, NOT_SET, INVALID."""
    found = _TIME_LEFT.match(text.strip())
    if not found:
        return None
    days, first, second, last = found.groups()
    parts = [int(part) for part in (first, second) if part is not None]
    hours, minutes = ([0] * (2 - len(parts)) + parts)
    return float(((int(days or 0) * 24 + hours) * 60 + minutes) * 60 + int(last))


def seconds_left(job_id: str) -> float | None:
    """What is left of the job's time limit, by squeue; None when unknown (no limit, or squeue failed)."""
    try:
        done = subprocess.run(["squeue", "-h", "-j", str(job_id), "-o", "%L"], capture_output=True, text=True,
                              timeout=SQUEUE_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = done.stdout.split()
    return parse_time_left(lines[0]) if done.returncode == 0 and lines else None


def time_guard(task: dict[str, Any], min_left_s: float) -> Any:
    """A worker's claim guard: the reason to stop claiming (too little of the limit left), or None."""
    unit = f"{task['array_job']}_{task['array_task']}" if task.get("array_job") else task["job"]

    def guard() -> str | None:
        left = seconds_left(unit)  # an array's own id would list every task
        if left is not None and left < min_left_s:
            return (f"Slurm job {unit} has {left:.0f} s of its time limit left, less than --min-time-left "
                    f"{min_left_s:g} s: no new job is claimed")
        return None
    return guard
