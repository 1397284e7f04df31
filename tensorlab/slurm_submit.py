"""`tensorlab slurm submit|status|cancel`: ordinary TensorLab workers as one Slurm job array.

Why an array of plain workers, not one Slurm job per TensorLab job: the queue in MongoDB already orders,
leases and retries jobs; an array task is just a machine slot that drains it (`%K` caps how many run at once)
and leaves when the queue stays empty or its time limit nears. A task that Slurm cancels or times out loses
its lease and its job is taken over by another worker, as for any killed worker.
The script holds no password: the database URI reaches the tasks through the environment sbatch exports
($TENSORLAB_MONGODB_URI), or as a URI without a password.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InvalidInput, TensorLabError
from .tensordb.server.uri import mask_uri, uri_password

COMMAND_TIMEOUT_S = 30.0
_TIME = re.compile(r"^(\d+-)?\d+(:\d+){0,2}$")  # sbatch --time forms: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S


@dataclass
class ArraySpec:
    """What `slurm submit` asks for; checked before anything is written or submitted."""

    workers: int
    concurrent: int | None = None
    gpus_per_worker: int = 0
    cpus_per_worker: int = 1
    time_limit: str | None = None
    partition: str | None = None
    uri: str | None = None
    db: str = "tensorlab"
    study: str | None = None
    query: dict | None = None
    idle_exit_s: float = 60.0
    min_time_left_s: float = 300.0
    lease_s: float = 60.0
    allow_code: bool = False
    log_dir: str = "tensorlab-slurm"
    python: str = sys.executable
    job_name: str = "tensorlab-workers"
    hosts: int | None = None  # each array task a worker group over this many nodes (worker --multi-host)
    tasks_per_host: int = 1  # processes per node in a group (1: each process sees all of its node's GPUs)

    def check(self) -> None:
        for name in ("workers", "cpus_per_worker", "tasks_per_host") + (("hosts",) if self.hosts is not None else ()):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInput(f"Invalid value for --{name.replace('_', '-')}: {value!r}. Expected a whole "
                                   "number >= 1.")
        if self.concurrent is not None and (not isinstance(self.concurrent, int) or self.concurrent < 1):
            raise InvalidInput(f"Invalid value for --concurrent: {self.concurrent!r}. Expected a whole number >= 1.")
        if not isinstance(self.gpus_per_worker, int) or self.gpus_per_worker < 0:
            raise InvalidInput(f"Invalid value for --gpus-per-worker: {self.gpus_per_worker!r}. Expected >= 0.")
        if self.time_limit is not None and not _TIME.match(str(self.time_limit)):
            raise InvalidInput(f"Invalid value for --time: {self.time_limit!r}. Expected Slurm's forms: minutes, "
                               "M:S, H:M:S, D-H, D-H:M or D-H:M:S.")
        if self.uri and uri_password(self.uri):
            raise InvalidInput(f"--uri {mask_uri(self.uri)} holds a password, which the batch script would keep on "
                               "disk; set $TENSORLAB_MONGODB_URI (sbatch passes your environment to the tasks).")
        for name in ("idle_exit_s", "min_time_left_s", "lease_s"):
            if getattr(self, name) < 0:
                raise InvalidInput(f"--{name[:-2].replace('_', '-')} must be >= 0 seconds.")


def render_script(spec: ArraySpec) -> str:
    """The sbatch script: one array task per worker, each an ordinary `tensorlab worker`."""
    spec.check()
    last = spec.workers - 1
    lines = ["#!/bin/bash", f"#SBATCH --job-name={spec.job_name}",
             f"#SBATCH --array=0-{last}" + (f"%{spec.concurrent}" if spec.concurrent else "")]
    if spec.hosts is None:
        lines.append("#SBATCH --ntasks=1")
    else:  # one worker group: a process per node (or per tasks_per_host GPUs), started together by srun
        lines += [f"#SBATCH --nodes={spec.hosts}", f"#SBATCH --ntasks-per-node={spec.tasks_per_host}"]
    lines += [f"#SBATCH --cpus-per-task={spec.cpus_per_worker}", f"#SBATCH --output={spec.log_dir}/%A_%a.out"]
    if spec.time_limit:
        lines.append(f"#SBATCH --time={spec.time_limit}")
    if spec.partition:
        lines.append(f"#SBATCH --partition={spec.partition}")
    if spec.gpus_per_worker:
        lines.append(f"#SBATCH --gres=gpu:{spec.gpus_per_worker}")  # Slurm sets CUDA_VISIBLE_DEVICES per task
    worker = [spec.python, "-m", "tensorlab.cli", "worker", "--db", spec.db, "--idle-exit", f"{spec.idle_exit_s:g}",
              "--min-time-left", f"{spec.min_time_left_s:g}", "--lease", f"{spec.lease_s:g}"]
    if spec.uri:
        worker += ["--uri", spec.uri]
    if spec.study:
        worker += ["--study", spec.study]
    if spec.query:
        worker += ["--query", json.dumps(spec.query)]
    if spec.allow_code:
        worker.append("--allow-code")
    launch = "exec "
    if spec.hosts is not None:  # JAX finds its peers from the step (SLURM_NTASKS, SLURM_PROCID, the first node)
        worker.append("--multi-host")
        launch = "exec srun --kill-on-bad-exit=1 "
    lines += ["# The database URI: --uri, else $TENSORLAB_MONGODB_URI from the submitting environment (never here).",
              launch + " ".join(shlex.quote(part) for part in worker), ""]
    return "\n".join(lines)


def _run(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False)
    except FileNotFoundError:
        raise TensorLabError(f"`{command[0]}` is not installed here: run this on a Slurm login node.") from None
    except subprocess.TimeoutExpired:
        raise TensorLabError(f"`{' '.join(command)}` did not answer in {COMMAND_TIMEOUT_S:g} s.") from None
    if done.returncode != 0:
        raise TensorLabError(f"`{' '.join(command)}` failed: {(done.stderr or done.stdout).strip()[-500:]}")
    return done.stdout


def submit(spec: ArraySpec, folder: str | Path = ".") -> dict[str, Any]:
    """Write the script under `folder`/log_dir and submit it; {"job", "script"}."""
    script = render_script(spec)
    logs = Path(folder) / spec.log_dir
    logs.mkdir(parents=True, exist_ok=True)
    path = logs / f"workers-{time.strftime('%Y%m%d-%H%M%S')}.sbatch"
    path.write_text(script)
    job = _run(["sbatch", "--parsable", f"--chdir={Path(folder).resolve()}", str(path)]).strip().split(";")[0]
    return {"job": job, "script": str(path)}


def array_tasks(job: str) -> list[dict[str, str]]:
    """The array's tasks still known to Slurm: {"task", "state", "elapsed", "left", "node"}."""
    out = _run(["squeue", "-h", "-r", "-j", str(job), "-o", "%i|%T|%M|%L|%N"])
    rows = [line.split("|") for line in out.splitlines() if line.strip()]
    return [{"task": row[0], "state": row[1], "elapsed": row[2], "left": row[3], "node": row[4]} for row in rows]


def cancel(job: str, task: int | None = None) -> None:
    """End the array (or one task of it): each worker gets SIGTERM, checkpoints and requeues its job."""
    _run(["scancel", f"{job}_{task}" if task is not None else str(job)])
